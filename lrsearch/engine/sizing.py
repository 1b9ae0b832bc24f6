"""How many members to train at once on this device: measured, not guessed.

A tiny model is all overhead one member at a time, and trains many more members a second in a population
of hundreds; a model that fills the device (LeNet on a CPU) trains no faster at eight than at one, and
the larger population only delays the sampler's feedback. So the size is found by timing an epoch of a few
updates and an evaluation at 1, 2, 4, ... members (the third epoch less the first: a population's set-up,
once per run, is not what a long run pays for), doubling while doubling trains at least ``gain`` times as
many member-updates a second.
"""

from __future__ import annotations

import dataclasses

from lrsearch.engine.config import TrainConfig
from lrsearch.engine.data import Split
from lrsearch.engine.devices import release_memory, timed
from lrsearch.engine.faults import is_out_of_memory
from lrsearch.engine.population import train_population
from lrsearch.engine.problems import Problem

__all__ = ["Sizing", "fastest_population"]


@dataclasses.dataclass(frozen=True)
class Sizing:
    """The size chosen, and the member-updates a second measured at each size tried."""

    size: int
    rates: dict[int, float]

    def describe(self) -> str:
        """The measurements, in a line."""
        return "member-updates/s by population size: " + ", ".join(f"{n}: {r:,.0f}" for n, r in self.rates.items())


def fastest_population(
    problem: Problem, *, most: int, batch_size: int | None = None, batches: int = 4, gain: float = 1.1
) -> Sizing:
    """Of 1, 2, 4, ... members (and ``most``, the largest allowed), the size past which doubling no longer
    trains ``gain`` times as many member-updates a second; each size timed (the faster of two) over an
    epoch of ``batches`` updates of ``batch_size`` (the problem's by default) and the epoch's evaluation, on
    a slice of the data."""
    if most < 1:
        raise ValueError(f"most must be at least 1 but got {most}")
    probe = _slice(problem, batches, batch_size or problem.batch_size)
    sizes = [1 << k for k in range(most.bit_length()) if 1 << k < most] + [most]
    rates: dict[int, float] = {}
    chosen = sizes[0]
    for size in sizes:
        try:
            seconds = min(_epoch(probe, size, batch_size) for _ in range(2))
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            release_memory(problem.device)
            break  # this size does not fit: the last that did
        rates[size] = size * batches / seconds
        if size > chosen and rates[size] < gain * rates[chosen]:
            break
        chosen = size
    return Sizing(chosen, rates)


def _slice(problem: Problem, batches: int, size: int) -> Problem:
    """``problem`` on ``batches`` batches of ``size`` of its training data, as much validation data for
    each example as it has, and a batch of test data."""
    dataset = problem.dataset
    train = min(batches * size, len(dataset.train))
    val = max(1, round(train * len(dataset.val) / len(dataset.train)))
    return dataclasses.replace(
        problem,
        dataset=dataclasses.replace(
            dataset,
            train=Split(dataset.train.x[:train], dataset.train.y[:train]),
            val=Split(dataset.val.x[:val], dataset.val.y[:val]),
            test=Split(dataset.test.x[:size], dataset.test.y[:size]),
        ),
    )


def _epoch(problem: Problem, size: int, batch_size: int | None) -> float:
    """The seconds of one epoch of ``size`` members, past the population's set-up and its final test."""
    return max((_timed(problem, size, batch_size, 3) - _timed(problem, size, batch_size, 1)) / 2, 1e-9)


def _timed(problem: Problem, size: int, batch_size: int | None, epochs: int) -> float:
    configs = [TrainConfig(lr=0.01, momentum=0.9, seed=i) for i in range(size)]
    return timed(problem.device, lambda: train_population(problem, configs, epochs=epochs, batch_size=batch_size))
