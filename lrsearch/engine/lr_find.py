"""The learning-rate range test (Smith 2015; fastai's ``lr_find``; seed 003's "start large and halve until
the loss stops changing"): raise the rate exponentially every update from ``start`` to ``end`` and watch
the loss; stop once it has clearly diverged.

Several seeds train at once (one population) and their smoothed losses are averaged, so the suggestion
is not one initialisation's accident. Suggested rate: where the averaged loss falls fastest against log
rate (measured over a window, past the noisy first tenth), never past the minimum; search range: a tenth
of that up to the rate at the minimum loss.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import torch

from lrsearch.checks import MAX_RATE, integer, number
from lrsearch.engine import Problem, check_run_length, member_seeds, update_seed
from lrsearch.engine.config import TrainConfig
from lrsearch.engine.flat import FlatLayout
from lrsearch.engine.optim import create_optimizer
from lrsearch.errors import ConfigError

__all__ = ["RangeTest", "lr_range_test"]

#: Exponential smoothing of each member's loss (fastai's beta).
SMOOTHING = 0.98
#: The test stops once the smoothed loss is this many times its minimum.
DIVERGED = 4.0
#: The longest test, and the most initialisations averaged.
MAX_UPDATES = 100_000
MAX_SEEDS = 64


@dataclasses.dataclass(frozen=True)
class RangeTest:
    rates: np.ndarray  # the rate of each update run
    losses: np.ndarray  # the smoothed loss after each update, averaged over the seeds
    diverged: bool  # stopped early because the loss blew up
    lr_at_minimum: float
    suggested: float
    low: float
    high: float


def _smooth(raw: np.ndarray) -> np.ndarray:
    """Bias-corrected exponential moving average along the last axis."""
    out = np.empty_like(raw)
    average = np.zeros(raw.shape[0])
    for u in range(raw.shape[1]):
        average = SMOOTHING * average + (1 - SMOOTHING) * raw[:, u]
        out[:, u] = average / (1 - SMOOTHING ** (u + 1))
    return out


def _update_seeds(noise_seeds: list[int], update: int) -> list[int]:
    return [update_seed(n, update) for n in noise_seeds]


def lr_range_test(
    problem: Problem,
    config: TrainConfig,
    *,
    start: float = 1e-7,
    end: float = 10.0,
    updates: int = 300,
    seeds: int = 3,
    batch_size: int | None = None,
) -> RangeTest:
    """Run the test with ``config``'s optimizer settings (its rate and schedule are ignored)."""
    number("start", start, 0.0, MAX_RATE, low_open=True)
    number("end", end, 0.0, MAX_RATE, low_open=True)
    if not start < end:
        raise ConfigError(f"the range test needs start < end but got start={start}, end={end}")
    integer("updates", updates, 10, MAX_UPDATES)
    integer("seeds", seeds, 1, MAX_SEEDS)
    check_run_length(None, batch_size)
    batch = batch_size or problem.batch_size
    model, device, train = problem.model, problem.device, problem.dataset.train
    rates = start * (end / start) ** (np.arange(updates) / (updates - 1))
    members = [dataclasses.replace(config, seed=config.seed + s) for s in range(seeds)]
    generators, noise_seeds, inits = [], [], []
    for member in members:
        init_seed, data_seed, noise_seed = member_seeds(member.seed)
        inits.append(model.init(torch.Generator().manual_seed(init_seed)))
        generators.append(torch.Generator().manual_seed(data_seed))
        noise_seeds.append(noise_seed)
    stacked = [torch.stack([init[i] for init in inits]).to(device) for i in range(len(inits[0]))]
    layout = FlatLayout([shape for _, shape in model.shapes[: model.trainable]])
    flat = layout.pack(stacked[: model.trainable]).contiguous()
    # The trained tensors as leaves sharing the flat buffer the optimizer updates.
    params = [v.detach().requires_grad_(model.needs_autograd) for v in layout.views(flat)]
    params += stacked[model.trainable :]
    optimizer = create_optimizer(config.optimizer, [m.optimizer_settings() for m in members], flat)
    optimizer.begin_epoch(np.tile(rates, (seeds, 1)), np.zeros(seeds, dtype=int))
    order = torch.empty(seeds, 0, dtype=torch.long)
    raw = np.full((seeds, updates), np.nan)
    best = math.inf
    diverged = False
    for u in range(updates):
        if order.shape[1] < batch:
            fresh = torch.stack([torch.randperm(len(train), generator=g) for g in generators])
            order = torch.cat([order, fresh], dim=1)
        x, target = model.batch(train, order[:, :batch].to(device))
        order = order[:, batch:]
        loss, _, grads = model.loss_and_grads(params, x, target, functools.partial(_update_seeds, noise_seeds, u))
        with torch.no_grad():
            optimizer.step(flat, layout.pack(grads), u)
        raw[:, u] = (loss / batch).cpu().numpy()
        smoothed = float(np.mean(_smooth(raw[:, : u + 1])[:, -1]))
        if not math.isfinite(smoothed) or smoothed > DIVERGED * best:
            diverged = True
            break
        best = min(best, smoothed)
    ran = u if diverged else updates  # a diverged update is not part of the curve
    if ran < 10:
        raise ConfigError(f"the loss diverged within {ran} updates: start the range test lower than {start:g}")
    losses = np.mean(_smooth(raw[:, :ran]), axis=0)
    minimum = int(np.argmin(losses))
    # Slopes over a window (k updates each side) after the first tenth: the first updates are noise.
    skip, k = ran // 10, max(1, ran // 30)
    centres = np.arange(skip + k, minimum - k)
    if len(centres):
        log_rates = np.log(rates)
        slope = (losses[centres + k] - losses[centres - k]) / (log_rates[centres + k] - log_rates[centres - k])
        suggested = float(rates[centres[int(np.argmin(slope))]])
    else:  # the loss never fell for long: a tenth of the best rate tried
        suggested = float(rates[minimum]) / 10
    return RangeTest(
        rates=rates[:ran],
        losses=losses,
        diverged=diverged,
        lr_at_minimum=float(rates[minimum]),
        suggested=suggested,
        low=suggested / 10,
        high=float(rates[minimum]),
    )
