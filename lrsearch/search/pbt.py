"""Population-based training over a population's trials (Jaderberg et al. 2017; Ray Tune's rules): which
members take whose weights (exploit), the hyperparameters they go on with (explore), and, once trained, the
schedule a member actually followed, through every member whose weights it took (its lineage), as a
``piecewise`` schedule a study file can name.

A trial records what it followed: ``lr_history`` (its own rate per epoch), ``pbt_exploits`` (per exploit,
the epoch after which it took the donor trial's weights, the donor's number, and the new hyperparameters)
and ``pbt_schedule`` (the rates its weights followed, its donors' before each exploit, as a schedule a
repeat replays from scratch).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial

from lrsearch.engine.config import TrainConfig
from lrsearch.spec.pbt import PBTSettings
from lrsearch.spec.space import FloatRange, SearchSpace

__all__ = ["EXPLOITS", "Explorer", "followed_schedule", "lineage", "piecewise", "replayed", "study_snippet"]

#: The user attr that lists a PBT trial's exploits.
EXPLOITS = "pbt_exploits"
#: What exploring changes, and the bounds a perturbed value is kept in where the space does not search it.
_EXPLORED = {"lr": (1e-8, 1e4), "momentum": (0.0, 0.999), "decay": (0.0, 1e6)}


class Explorer:
    """Exploit and explore for one population, drawing from its own seeded generator."""

    def __init__(self, settings: PBTSettings, space: SearchSpace, seed: int) -> None:
        self.settings, self.space = settings, space
        self.rng = np.random.default_rng(seed)

    def plan(self, scores: Mapping[int, float], *, maximize: bool) -> list[tuple[int, int]]:
        """(recipient, donor) pairs: each member of the bottom quantile by ``scores`` (a NaN is the worst)
        and a donor drawn from the top quantile."""
        ranked = sorted(scores, key=lambda m: _rank_key(scores[m], maximize))
        count = self.settings.exploited(len(ranked))
        if count == 0:
            return []
        top, bottom = ranked[:count], ranked[-count:]
        return [(member, int(self.rng.choice(top))) for member in bottom]

    def explore(self, config: TrainConfig) -> TrainConfig:
        """``config``'s lr, momentum and decay, each resampled from the space (with the resample probability,
        where the space searches it) or multiplied by a perturbation factor, kept within the space's bounds."""
        changes: dict[str, float] = {}
        for name, (low, high) in _EXPLORED.items():
            searched = self.space.params.get(name)
            bounds = (searched.low, searched.high) if isinstance(searched, FloatRange) else (low, high)
            current = float(getattr(config, name))
            if isinstance(searched, FloatRange) and self.rng.random() < self.settings.resample_probability:
                value = _draw(self.rng, searched)
            elif current == 0.0:
                continue  # a zero stays zero under any factor: the optimizer's choice, not a value to explore
            else:
                value = current * float(self.rng.choice(self.settings.perturbations))
            changes[name] = min(max(value, bounds[0]), bounds[1])
        return dataclasses.replace(config, **changes)


def _rank_key(score: float, maximize: bool) -> float:
    if math.isnan(score):
        return math.inf
    return -score if maximize else score


def _draw(rng: np.random.Generator, param: FloatRange) -> float:
    if param.log:
        return float(math.exp(rng.uniform(math.log(param.low), math.log(param.high))))
    return float(rng.uniform(param.low, param.high))


def lineage(trials: Mapping[int, FrozenTrial], number: int) -> list[tuple[int, int]]:
    """Trial ``number``'s ancestry as (trial number, the last epoch of its own it contributed) pieces, oldest
    first: before each exploit, the weights were the donor's (and before the donor's own exploits, its
    donors')."""
    pieces: list[tuple[int, int]] = []
    current, until = number, len(trials[number].user_attrs.get("lr_history", []))
    while True:
        pieces.append((current, until))
        exploits = [e for e in trials[current].user_attrs.get(EXPLOITS, []) if e["epoch"] < until]
        if not exploits:
            return pieces[::-1]
        last = max(exploits, key=lambda e: e["epoch"])
        current, until = int(last["donor"]), int(last["epoch"])


def followed_schedule(rates: Sequence[float], config: TrainConfig) -> dict[str, Any]:
    """What a PBT member's weights followed: the per-epoch ``rates`` (its donors' up to each exploit, then its
    own) as ``piecewise``, with the momentum it ended with."""
    return {**piecewise(rates), "momentum": config.momentum}


def replayed(config: TrainConfig, found: Mapping[str, Any]) -> TrainConfig:
    """``config`` training from scratch on a discovered schedule (``followed_schedule``): its rates per epoch,
    warmup and any decay folded into them, with the momentum found."""
    return dataclasses.replace(
        config,
        lr=float(found["lr"]),
        schedule=found["schedule"],
        schedule_params=found.get("piecewise", {}),
        schedule_unit="epoch",
        warmup=0,
        decay=0.0,
        momentum=float(found.get("momentum", config.momentum)),
    )


def piecewise(rates: Sequence[float]) -> dict[str, Any]:
    """Per-epoch ``rates`` (one above 0 at least) as ``piecewise``: ``lr`` the highest, values multiples of
    it (0 for an epoch at rate 0, a warmup's first), a boundary where one changes."""
    lr = float(max(rates))
    if not lr > 0:
        raise ValueError(f"rates must hold one above 0 but got {list(rates)}")
    boundaries, values = [], [float(rates[0]) / lr]
    for epoch in range(1, len(rates)):
        if not math.isclose(rates[epoch], rates[epoch - 1], rel_tol=1e-9):
            boundaries.append(epoch - 1)  # piecewise: values[k] up to and at boundaries[k] (0-based steps)
            values.append(float(rates[epoch]) / lr)
    if not boundaries:
        return {"schedule": "constant", "lr": lr}
    return {"schedule": "piecewise", "lr": lr, "piecewise": {"boundaries": boundaries, "values": values}}


def study_snippet(found: Mapping[str, Any]) -> str:
    """A discovered schedule (``followed_schedule``'s result) as the lines a study file fixes it with (a fixed
    list is one list)."""
    lines = ["[fixed]", f'schedule = "{found["schedule"]}"', f"lr = {found['lr']:.6g}"]
    if found.get("momentum"):
        lines.append(f"momentum = {found['momentum']:.6g}")
    if found["schedule"] == "piecewise":
        params = found["piecewise"]
        lines += [
            "",
            "[space.piecewise]",
            f"boundaries = [{', '.join(str(b) for b in params['boundaries'])}]",
            f"values = [{', '.join(f'{v:.6g}' for v in params['values'])}]",
        ]
    return "\n".join(lines) + "\n"
