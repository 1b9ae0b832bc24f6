"""One configuration at a time in plain PyTorch: nn.Module, DataLoader, torch.optim.

This is the alternative the population engine is measured against (``lrsearch bench``), written the way
Optuna's and d2l's PyTorch examples train, and the reference the tests hold population members to: given
a member's seed it starts from the same weights and sees the same batches, so the numbers must agree.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

from lrsearch.engine.config import TrainConfig
from lrsearch.engine.data import Split
from lrsearch.engine.models import MLP, StackedModel
from lrsearch.engine.modules import ModuleModel
from lrsearch.engine.networks import blobs_mlp
from lrsearch.engine.population import EpochMetrics, member_seeds
from lrsearch.engine.problems import Problem
from lrsearch.engine.schedules import update_rates
from lrsearch.errors import ConfigError

__all__ = ["PerItemImages", "PlainResult", "Shuffle", "plain_module", "train_plain"]

TORCH_OPTIMIZERS = {
    "sgd": lambda p, s: torch.optim.SGD(
        p, lr=0.0, momentum=s["momentum"], nesterov=s["nesterov"], weight_decay=s["weight_decay"]
    ),
    "rmsprop": lambda p, s: torch.optim.RMSprop(
        p, lr=0.0, alpha=s["alpha"], eps=s["eps"], momentum=s["momentum"], weight_decay=s["weight_decay"]
    ),
    "adagrad": lambda p, s: torch.optim.Adagrad(p, lr=0.0, eps=s["eps"], weight_decay=s["weight_decay"]),
    "adam": lambda p, s: torch.optim.Adam(
        p, lr=0.0, betas=(s["beta1"], s["beta2"]), eps=s["eps"], weight_decay=s["weight_decay"]
    ),
    "adamw": lambda p, s: torch.optim.AdamW(
        p, lr=0.0, betas=(s["beta1"], s["beta2"]), eps=s["eps"], weight_decay=s["weight_decay"]
    ),
    "nadamw": lambda p, s: torch.optim.NAdam(
        p,
        lr=0.0,
        betas=(s["beta1"], s["beta2"]),
        eps=s["eps"],
        weight_decay=s["weight_decay"],
        momentum_decay=s["momentum_decay"],
        decoupled_weight_decay=True,
    ),
}


def plain_module(model: StackedModel) -> nn.Module:
    """The nn.Module a stacked model trains (its parameters, then its buffers, in ``init``'s order)."""
    if isinstance(model, ModuleModel):
        return model.factory()
    if isinstance(model, MLP):
        return blobs_mlp(model.inputs, model.hidden, model.classes)
    raise TypeError(f"no plain module for {type(model).__name__}")


class PerItemImages(torch.utils.data.Dataset):
    """Images converted one item at a time, as torchvision's ToTensor + Normalize do in d2l's loader."""

    def __init__(self, split: Split, mean: float, std: float) -> None:
        # Back to uint8 pixels, so that every item pays the conversion the way a torchvision dataset does;
        # read from the host whatever device the split is on (a DataLoader's items are made there).
        self.mean, self.std = mean, std
        raw = split.x.squeeze(1).cpu().numpy() * std + mean
        self.pixels = np.round(raw * 255).clip(0, 255).astype(np.uint8)
        self.labels = split.y.cpu().numpy()
        self._scale = 1.0 / 255.0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(self.pixels[i].astype(np.float32) * self._scale).unsqueeze(0)
        return (image - self.mean) / self.std, int(self.labels[i])


class Shuffle(Sampler[int]):
    """One permutation per epoch from ``generator``: the population's data order. (RandomSampler draws a
    second, empty permutation each epoch, so its orders drift from the second epoch on.)"""

    def __init__(self, size: int, generator: torch.Generator) -> None:
        self.size, self.generator = size, generator

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        yield from torch.randperm(self.size, generator=self.generator).tolist()


@torch.no_grad()
def _evaluate(module: nn.Module, split: Split, chunk: int = 2048) -> tuple[float, float]:
    loss, correct = 0.0, 0
    for start in range(0, len(split), chunk):
        logits = module(split.x[start : start + chunk])
        target = split.y[start : start + chunk]
        loss += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(1) == target).sum())
    return loss / len(split), correct / len(split)


@dataclasses.dataclass(frozen=True)
class PlainResult:
    """What a population member reports, from the plain loop (see ``MemberResult``)."""

    history: list[EpochMetrics]
    selected_epoch: int | None
    val_metric: float | None
    test_metric: float | None


def train_plain(
    problem: Problem,
    config: TrainConfig,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    per_item: bool = False,
    num_workers: int = 0,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    optimizers: Mapping[str, Callable[[Any, dict[str, Any]], torch.optim.Optimizer]] = TORCH_OPTIMIZERS,
) -> PlainResult:
    """Train one configuration and report it as a population member would (the same history, selected
    epoch and test accuracy). ``per_item`` feeds images through a per-item dataset (d2l's torchvision
    loader) instead of tensors; ``on_epoch`` sees each epoch's metrics (an Optuna objective reports and
    prunes there, and may raise to stop). ``optimizers``: how each optimizer is made by name; one with
    ``train()`` and ``eval()`` (schedule-free) is switched to its evaluation point to be evaluated."""
    epochs = problem.epochs if epochs is None else epochs
    batch_size = problem.batch_size if batch_size is None else batch_size
    train, val = problem.dataset.train, problem.dataset.val
    n_updates = math.ceil(len(train) / batch_size)
    init_seed, data_seed, _ = member_seeds(config.seed)
    module = plain_module(problem.model)
    with torch.no_grad():
        init = problem.model.init(torch.Generator().manual_seed(init_seed))
        for tensor, value in zip([*module.parameters(), *module.buffers()], init, strict=True):
            tensor.copy_(value.reshape(tensor.shape))
    module.to(problem.device)
    if config.optimizer not in optimizers:
        raise ConfigError(f"the plain loop trains with torch.optim, which has no {config.optimizer} optimizer")
    optimizer = optimizers[config.optimizer](module.parameters(), config.optimizer_settings())
    switches = hasattr(optimizer, "train") and hasattr(optimizer, "eval")
    schedule = config.build_schedule(config.horizon(epochs, n_updates))
    rates = update_rates(
        schedule,
        n_updates=epochs * n_updates,
        updates_per_epoch=n_updates,
        unit=config.schedule_unit,
        decay=config.decay,
    )
    plateau = schedule.tracker()
    data = problem.dataset
    dataset = PerItemImages(train, data.mean, data.std) if per_item else TensorDataset(train.x.cpu(), train.y.cpu())
    sampler = Shuffle(len(dataset), torch.Generator().manual_seed(data_seed))
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers)
    history: list[EpochMetrics] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None  # val accuracy, epoch, weights
    update = 0
    for epoch in range(1, epochs + 1):
        module.train()
        if switches:
            optimizer.train()  # type: ignore[attr-defined]
        loss_sum, correct = 0.0, 0
        for x, y in loader:
            x, y = x.to(problem.device), y.to(problem.device)
            for group in optimizer.param_groups:
                group["lr"] = float(rates[update])
            logits = module(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            update += 1
        if switches:
            optimizer.eval()  # type: ignore[attr-defined]
        val_loss, val_acc = _evaluate(module.eval(), val)
        history.append(
            EpochMetrics(
                epoch, float(rates[update - 1]), loss_sum / len(train), correct / len(train), val_loss, val_acc
            )
        )
        if not (math.isfinite(loss_sum) and math.isfinite(val_loss)):
            history.pop()  # a diverged epoch is not part of the history
            return PlainResult(history, None, None, None)
        if on_epoch is not None:
            on_epoch(history[-1])
        if plateau is not None:
            rates[update:] *= plateau.step(val_loss)
        if not problem.restore_best or best is None or val_acc > best[0]:
            best = (val_acc, epoch, copy.deepcopy(module.state_dict()))
    assert best is not None
    module.load_state_dict(best[2])
    return PlainResult(history, best[1], best[0], _evaluate(module.eval(), problem.dataset.test)[1])
