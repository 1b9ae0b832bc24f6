"""The trainers by name: a dataset, a network and the defaults that reproduce the seeds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from lrsearch.engine.data import Dataset, load_blobs, load_fashion_mnist
from lrsearch.engine.models import MLP, StackedModel
from lrsearch.engine.modules import ModuleModel
from lrsearch.engine.networks import lenet, lenet_d2l
from lrsearch.errors import ConfigError

__all__ = ["TRAINERS", "Problem", "TrainerSpec", "load_dataset", "load_problem", "trainer_spec"]


@dataclasses.dataclass(frozen=True)
class Problem:
    """What a population trains on. ``restore_best``: report the epoch with the best validation metric
    (and its test metric) instead of the last; only where validation is a split of its own, since
    choosing on the test set would overfit it. ``metric``: what the accuracy columns of its results hold;
    ``maximize``: whether a higher one is better. ``record``: values read off a member's parameters (by
    name) after each epoch, kept in its history."""

    name: str
    dataset: Dataset
    model: StackedModel
    batch_size: int
    epochs: int
    restore_best: bool
    device: torch.device
    metric: str = "accuracy"
    maximize: bool = True
    record: Callable[[Mapping[str, torch.Tensor]], Mapping[str, float]] | None = None


@dataclasses.dataclass(frozen=True)
class TrainerSpec:
    description: str
    lr: float  # the seed's baseline rate, the default for a single run
    train_examples: int  # known before loading: a study's length in updates is checked without the data
    batch_size: int
    epochs: int
    restore_best: bool
    load: Callable[[Path | None], Dataset]
    model: Callable[[torch.device], StackedModel]


TRAINERS: dict[str, TrainerSpec] = {
    "blobs": TrainerSpec(
        description="seed 000: 2-50-3 ReLU MLP on make_blobs, 500 train / 500 test (= validation), batch 32",
        lr=0.01,
        train_examples=500,
        batch_size=32,
        epochs=200,
        restore_best=False,
        load=lambda data_dir: load_blobs(),
        model=lambda device: MLP(),
    ),
    "fashion_mnist": TrainerSpec(
        description="seed 001: d2l's modern LeNet on Fashion-MNIST, 50k train / 10k validation / 10k test, batch 256",
        lr=0.3,
        train_examples=50_000,
        batch_size=256,
        epochs=30,
        restore_best=True,
        load=lambda data_dir: load_fashion_mnist(data_dir),
        model=lambda device: ModuleModel(lenet, device=device),
    ),
    # d2l's rates are tuned for its preprocessing (raw pixels, Xavier init): with standardised inputs its
    # multi-factor schedule at lr 0.5 collapses. This is d2l's setup, for reproducing its figures.
    "fashion_mnist_d2l": TrainerSpec(
        description="seed 001 exactly as d2l runs it: raw [0, 1] pixels, Xavier init, last epoch reported",
        lr=0.3,
        train_examples=50_000,
        batch_size=256,
        epochs=30,
        restore_best=False,
        load=lambda data_dir: load_fashion_mnist(data_dir, standardize=False),
        model=lambda device: ModuleModel(lenet_d2l, device=device),
    ),
}


def trainer_spec(name: str) -> TrainerSpec:
    try:
        return TRAINERS[name]
    except KeyError:
        raise ConfigError(f"unknown trainer {name!r}; choose from {', '.join(TRAINERS)}") from None


def load_dataset(name: str, data_dir: Path | None = None) -> Dataset:
    """A trainer's data, read and checked (a bad file is one RuntimeFailure naming it)."""
    return trainer_spec(name).load(data_dir)


def load_problem(name: str, *, device: torch.device, data_dir: Path | None = None) -> Problem:
    """Load a trainer's data onto ``device`` (once: every member of every population shares it)."""
    spec = trainer_spec(name)
    return Problem(
        name=name,
        dataset=load_dataset(name, data_dir).to(device),
        model=spec.model(device),
        batch_size=spec.batch_size,
        epochs=spec.epochs,
        restore_best=spec.restore_best,
        device=device,
    )
