"""Trainers by name: the bundled ones, installed plug-ins (the ``lrsearch.trainers`` entry-point group) and
``module.path:callable``, a callable that returns an :class:`lrsearch.Problem`.

A ``module.path`` is looked up beside the study file, then in the working directory, then among installed
packages. Every worker imports it the same way, so every machine that runs one needs the module (and what
it imports) beside the study file or installed. A trainer that cannot be found, a callable that raises and
one that returns something else are one :class:`ConfigError` each, naming the trainer and the cause.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from lrsearch.engine import Problem as EngineProblem
from lrsearch.engine import load_dataset, load_problem
from lrsearch.engine.problem import Problem
from lrsearch.engine.problems import TRAINERS
from lrsearch.errors import ConfigError, one_line

__all__ = ["ENTRY_POINTS", "Trainer", "available", "check_name", "from_problem", "resolve"]

#: The entry-point group installed plug-ins register their trainers under.
ENTRY_POINTS = "lrsearch.trainers"

_DOTTED = r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*"
_PLUGIN = re.compile(rf"{_DOTTED}:{_DOTTED}")


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
    """A trainer as a study and the CLI use it: its defaults, known before its data is on a device, and how
    to load it. ``problem``: a plug-in's Problem, made (and its data read) when it was resolved."""

    name: str
    description: str
    epochs: int
    batch_size: int
    train_examples: int
    lr: float | None
    maximize: bool
    metric: str = "accuracy"
    problem: Problem | None = None

    def load(self, device: torch.device, data_dir: Path | None = None) -> EngineProblem:
        """The problem on ``device``, as the population engine trains it."""
        if self.problem is None:
            return load_problem(self.name, device=device, data_dir=data_dir)
        _no_data_dir(self.name, data_dir)
        return self.problem.to_engine(device)

    def check_data(self, data_dir: Path | None = None) -> None:
        """Read and check the data (bundled trainers; a plug-in's was read when it was resolved)."""
        if self.problem is None:
            load_dataset(self.name, data_dir)
        else:
            _no_data_dir(self.name, data_dir)


def _no_data_dir(name: str, data_dir: Path | None) -> None:
    if data_dir is not None:
        raise ConfigError(f"--data-dir is for the bundled Fashion-MNIST trainers; {name!r} brings its own data")


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINTS)}


def check_name(name: object) -> str:
    """A trainer name's form, without importing anything: bundled, an installed plug-in, or module:callable."""
    if not isinstance(name, str):
        raise ConfigError(f"a trainer name must be a string but got {type(name).__name__}")
    if name in TRAINERS or _PLUGIN.fullmatch(name):
        return name
    installed = _entry_points()  # read once: it scans every installed distribution
    if name in installed:
        return name
    known = ", ".join([*TRAINERS, *installed])
    raise ConfigError(f"unknown trainer {name!r}; choose from {known}, or name your own as 'module.path:callable'")


def _import(module_name: str, folders: list[Path]) -> object:
    """The module, looked up in ``folders`` first (each only for this import), then as installed."""
    added = [str(f) for f in folders if str(f) not in sys.path]
    sys.path[:0] = added
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            where = ", ".join(str(f) for f in folders)
            raise ConfigError(f"no module {module_name!r} in {where} or among installed packages") from None
        raise ConfigError(f"importing {module_name!r} failed: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the user's module: its own message, as one line
        raise ConfigError(f"importing {module_name!r} raised {type(exc).__name__}: {one_line(exc)}") from None
    finally:
        for folder in added:
            sys.path.remove(folder)


def _callable(name: str, beside: Path | None) -> Callable[[], object]:
    entry = _entry_points().get(name)
    if entry is not None:
        try:
            found = entry.load()
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(
                f"loading the installed trainer {name!r} ({entry.value}) raised {type(exc).__name__}: {one_line(exc)}"
            ) from None
    else:
        module_name, _, attribute = name.partition(":")
        module = _import(module_name, [f for f in (beside, Path.cwd()) if f is not None])
        found = module
        for part in attribute.split("."):
            if not hasattr(found, part):
                raise ConfigError(f"module {module_name!r} has no {attribute!r}")
            found = getattr(found, part)
    if not callable(found):
        raise ConfigError(
            f"{name!r} must name a callable that returns an lrsearch.Problem but names a {type(found).__name__}"
        )
    return found


def _made(name: str, make: Callable[[], object]) -> Problem:
    try:
        problem = make()
    except ConfigError as exc:  # a Problem that refused its own values
        raise ConfigError(f"{name}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the user's code: its own message, as one line
        raise ConfigError(f"{name}() raised {type(exc).__name__}: {one_line(exc)}") from None
    if not isinstance(problem, Problem):
        raise ConfigError(f"{name}() must return an lrsearch.Problem but returned {type(problem).__name__}")
    return problem


def resolve(name: str, *, beside: Path | None = None) -> Trainer:
    """The trainer called ``name``; a plug-in is imported and its callable called (its data read) here."""
    check_name(name)
    if name in TRAINERS:
        spec = TRAINERS[name]
        return Trainer(
            name=name,
            description=spec.description,
            epochs=spec.epochs,
            batch_size=spec.batch_size,
            train_examples=spec.train_examples,
            lr=spec.lr,
            maximize=True,
        )
    make = _callable(name, beside)
    problem = _made(name, make)
    return dataclasses.replace(from_problem(problem, _description(make, problem)), name=name)


def from_problem(problem: Problem, description: str = "") -> Trainer:
    """A Problem object given directly (Python): a trainer under the problem's own name."""
    return Trainer(
        name=problem.name,
        description=description,
        epochs=problem.epochs,
        batch_size=problem.batch_size,
        train_examples=len(problem.train[1]),
        lr=None,
        maximize=problem.objective_direction == "maximize",
        metric=problem.metric_name,
        problem=problem,
    )


def _first_line(thing: object) -> str | None:
    """The first line of a callable's docstring: a trainer's description."""
    doc = (getattr(thing, "__doc__", None) or "").strip().splitlines()
    return doc[0] if doc else None


def _description(make: Callable[[], object], problem: Problem) -> str:
    """The callable's docstring's first line, else what the problem holds."""
    return _first_line(make) or f"{len(problem.train[1])} training examples, metric {problem.metric_name}"


def available() -> list[tuple[str, str]]:
    """Every trainer this installation can name, with its one-line description (a plug-in's docstring)."""
    found = [(name, spec.description) for name, spec in TRAINERS.items()]
    for name, entry in sorted(_entry_points().items()):
        try:
            found.append((name, _first_line(entry.load()) or entry.value))  # without making the problem
        except Exception as exc:  # noqa: BLE001 - one broken plug-in must not hide the others
            found.append((name, f"cannot be loaded ({type(exc).__name__}: {one_line(exc)})"))
    return found
