"""Study files (``studies/NAME.toml``): a question, a trainer, a search space and a budget.

A file is validated completely before anything touches a database: every key is known, every value has
the right type and range, and every reachable combination of the space builds a valid configuration. A bad
file raises ConfigError naming the file, the key and what is wrong. The format is documented in the README.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lrsearch.errors import ConfigError
from lrsearch.optim import OPTIMIZERS
from lrsearch.schedules import SCHEDULES, param_types
from lrsearch.search.pruning import create_pruner
from lrsearch.search.samplers import SAMPLERS
from lrsearch.search.space import (
    ARM,
    DEFAULT_BRANCHES,
    OPTIMIZER_BRANCH,
    TOP_LEVEL,
    Choice,
    FloatRange,
    IntRange,
    Param,
    SearchSpace,
)
from lrsearch.trainers.problems import TRAINERS

__all__ = ["StudySpec", "bundled_dir", "find_study", "list_studies", "load_study_file"]

_KEYS = {"question", "trainer", "epochs", "batch_size", "compare", "repeats", "n_trials", "timeout", "population",
         "sampler", "pruner", "seed", "fixed", "space", "arms", "gpu"}  # fmt: skip
#: What a ``[gpu]`` table may change when the study runs on a GPU: the budget, never the definition.
_GPU_KEYS = {"n_trials", "timeout", "population"}


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """A validated study. ``compare`` names the categorical parameter whose values the report compares;
    ``repeats`` is how many new seeds the best configuration of each compared group is re-run with."""

    name: str
    path: Path
    question: str
    trainer: str
    epochs: int
    batch_size: int | None
    compare: str
    repeats: int
    n_trials: int | None
    timeout: float | None
    population: int
    sampler: str
    pruner: str
    pruner_settings: Mapping[str, Any]
    seed: int
    space: SearchSpace
    gpu: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def for_device(self, device_type: str) -> StudySpec:
        """The study with its ``[gpu]`` budget applied on a CUDA device."""
        return self.with_overrides(**self.gpu) if device_type == "cuda" else self

    def with_overrides(self, **changes: Any) -> StudySpec:
        """The study with command-line overrides (None leaves a value as the file has it), re-validated."""
        spec = dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
        _check_run(spec)
        return spec

    def definition(self) -> dict[str, Any]:
        """What makes trials comparable (stored with the study; a different one under the same name is refused)."""
        return {"trainer": self.trainer, "epochs": self.epochs, "batch_size": self.batch_size,
                "compare": self.compare, "space": _space_json(self.space)}  # fmt: skip


def bundled_dir() -> Path:
    """The ``studies/`` folder of this checkout."""
    return Path(__file__).resolve().parent.parent / "studies"


def _search_dirs() -> list[Path]:
    dirs = [Path.cwd() / "studies", bundled_dir()]
    if os.environ.get("LRSEARCH_STUDIES"):
        dirs.insert(0, Path(os.environ["LRSEARCH_STUDIES"]))
    return list(dict.fromkeys(d.resolve() for d in dirs))


def find_study(name_or_path: str) -> Path:
    """A study file: a path to a .toml file, or a name looked up in $LRSEARCH_STUDIES, ./studies, the
    bundled studies."""
    if name_or_path.endswith(".toml") or os.sep in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(f"study file {name_or_path} does not exist")
        return path
    for folder in _search_dirs():
        candidate = folder / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in list_studies())) or "none"
    raise ConfigError(f"unknown study {name_or_path!r} (known: {known})")


def list_studies() -> list[Path]:
    """Study files on the search path, first of each name."""
    found: dict[str, Path] = {}
    for folder in _search_dirs():
        for path in sorted(folder.glob("*.toml")):
            found.setdefault(path.stem, path)
    return list(found.values())


def load_study_file(path: Path) -> StudySpec:
    """Read and validate a study file."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None
    try:
        return _parse(path, raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _expect(key: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ConfigError(f"{key}: must be {what} but got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{key}: must be {what} but got {value!r}")
    return value


def _positive_int(key: str, value: Any, minimum: int = 1) -> int:
    _expect(key, value, int, f"an integer >= {minimum}")
    if value < minimum:
        raise ConfigError(f"{key}: must be an integer >= {minimum} but got {value}")
    return value


def _parse(path: Path, raw: dict[str, Any]) -> StudySpec:
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key (known: {', '.join(sorted(_KEYS))})")
    for required in ("question", "trainer", "compare"):
        if required not in raw:
            raise ConfigError(f"{required}: missing")
    question = _expect("question", raw["question"], str, "a sentence").strip()
    if not question:
        raise ConfigError("question: must be a sentence but got an empty string")
    trainer = _expect("trainer", raw["trainer"], str, "a trainer name")
    if trainer not in TRAINERS:
        raise ConfigError(f"trainer: unknown trainer {trainer!r}; choose from {', '.join(TRAINERS)}")
    epochs = _positive_int("epochs", raw.get("epochs", TRAINERS[trainer].epochs))
    batch_size = _positive_int("batch_size", raw["batch_size"]) if "batch_size" in raw else None
    pruner, pruner_settings = _parse_pruner(raw.get("pruner", "median"))
    timeout = raw.get("timeout")
    if timeout is not None:
        _expect("timeout", timeout, (int, float), "seconds > 0")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ConfigError(f"timeout: must be seconds > 0 but got {timeout}")
    spec = StudySpec(
        name=path.stem,
        path=path,
        question=question,
        trainer=trainer,
        epochs=epochs,
        batch_size=batch_size,
        compare=_expect("compare", raw["compare"], str, "a parameter name"),
        repeats=_positive_int("repeats", raw.get("repeats", 0), minimum=0),
        n_trials=_positive_int("n_trials", raw["n_trials"]) if "n_trials" in raw else None,
        timeout=float(timeout) if timeout is not None else None,
        population=_positive_int("population", raw.get("population", 8)),
        sampler=_expect("sampler", raw.get("sampler", "tpe"), str, "a sampler name"),
        pruner=pruner,
        pruner_settings=pruner_settings,
        seed=_positive_int("seed", raw.get("seed", 0), minimum=0),
        space=_parse_space(raw.get("fixed", {}), raw.get("space", {}), raw.get("arms", {})),
        gpu=_parse_gpu(raw.get("gpu", {})),
    )
    _check_run(spec)
    _check_run(spec.for_device("cuda"))
    _check_space(spec)
    return spec


def _parse_gpu(value: Any) -> dict[str, Any]:
    _expect("gpu", value, dict, "a table of budget settings")
    unknown = sorted(set(value) - _GPU_KEYS)
    if unknown:
        raise ConfigError(f"gpu.{unknown[0]}: a [gpu] table changes only the budget ({', '.join(sorted(_GPU_KEYS))})")
    return dict(value)


def _parse_pruner(value: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(value, str):
        return value, {}
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return value["name"], {k: v for k, v in value.items() if k != "name"}
    raise ConfigError(f"pruner: must be a name or a table with a name but got {value!r}")


def _check_run(spec: StudySpec) -> None:
    """The checks a command-line override can break."""
    if spec.n_trials is None and spec.timeout is None:
        raise ConfigError("n_trials, timeout: a study needs a budget: n_trials, timeout or both")
    for key in ("epochs", "population", "n_trials"):
        value = getattr(spec, key)
        if value is not None:
            _positive_int(key, value)
    if spec.sampler not in SAMPLERS:
        raise ConfigError(f"sampler: unknown sampler {spec.sampler!r}; choose from {', '.join(SAMPLERS)}")
    try:
        create_pruner(spec.pruner, spec.pruner_settings, epochs=spec.epochs, population=spec.population)
    except ConfigError as exc:
        raise ConfigError(f"pruner: {exc}") from None


#: The sweep ``lr = "auto"`` runs the range test over.
AUTO_LR_SWEEP = (1e-7, 10.0)


def _parse_param(key: str, value: Any) -> Param:
    if key == "space.lr" and value == "auto":
        return FloatRange(*AUTO_LR_SWEEP, log=True, auto=True)
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{key}: a list of choices must not be empty")
        encoded = [Choice.encode(v) for v in value]
        if len(set(map(repr, encoded))) != len(encoded):
            raise ConfigError(f"{key}: choices must be distinct but got {value!r}")
        return Choice(tuple(tuple(v) if isinstance(v, list) else v for v in value))
    if isinstance(value, dict) and {"low", "high"} <= set(value):
        extra = sorted(set(value) - {"low", "high", "log", "step"})
        if extra:
            raise ConfigError(f"{key}: a range takes low, high, log and step but got {extra[0]!r}")
        low, high = value["low"], value["high"]
        log = _expect(f"{key}.log", value.get("log", False), bool, "true or false")
        for bound, number in (("low", low), ("high", high)):
            _expect(f"{key}.{bound}", number, (int, float), "a number")
        if not low < high:
            raise ConfigError(f"{key}: low must be < high but got low={low}, high={high}")
        if log and low <= 0:
            raise ConfigError(f"{key}: a log range needs low > 0 but got low={low}")
        if isinstance(low, int) and isinstance(high, int) and isinstance(value.get("step", 1), int):
            return IntRange(low, high, log=log, step=value.get("step", 1))
        if log and "step" in value:
            raise ConfigError(f"{key}: a log range cannot have a step")
        return FloatRange(float(low), float(high), log=log, step=value.get("step"))
    accepted = "a list of choices, a range { low = .., high = .. }" + (' or "auto"' if key == "space.lr" else "")
    raise ConfigError(f"{key}: must be {accepted} but got {value!r}")


def _parse_arms(arms: Any, fixed: Mapping[str, Any], space: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Named configurations: each a table of fixed settings (engine names, its schedule's and its
    optimizer's parameters)."""
    _expect("arms", arms, dict, "a table of named configurations")
    for name, settings in arms.items():
        _expect(f"arms.{name}", settings, dict, "a table of settings")
        choices = {}
        for kind in DEFAULT_BRANCHES:
            if kind not in settings and kind in space:
                own = set(param_types(settings.get("schedule", "constant"))) if kind == "schedule" else set()
                if own & set(settings):
                    raise ConfigError(f"arms.{name}: sets {kind} parameters, so it must fix its {kind} too")
            choices[kind] = settings.get(kind, fixed.get(kind, DEFAULT_BRANCHES[kind]))
        if choices["schedule"] not in SCHEDULES:
            raise ConfigError(f"arms.{name}.schedule: unknown schedule {choices['schedule']!r}; choose from {', '.join(SCHEDULES)}")
        if choices["optimizer"] not in OPTIMIZERS:
            raise ConfigError(f"arms.{name}.optimizer: unknown optimizer {choices['optimizer']!r}; choose from {', '.join(OPTIMIZERS)}")
        accepted = set(TOP_LEVEL) | set(param_types(choices["schedule"])) | set(OPTIMIZERS[choices["optimizer"]].defaults)
        for key in settings:
            if key not in accepted:
                raise ConfigError(f"arms.{name}.{key}: unknown setting for an arm with schedule {choices['schedule']} "
                                  f"and optimizer {choices['optimizer']}")  # fmt: skip
            if key in space:
                raise ConfigError(f"arms.{name}.{key}: also searched in [space]; an arm's settings are fixed")
    return {name: dict(settings) for name, settings in arms.items()}


def _parse_space(fixed: Any, space: Any, arms: Any) -> SearchSpace:
    _expect("fixed", fixed, dict, "a table")
    _expect("space", space, dict, "a table")
    if ARM in space:
        raise ConfigError(f"space.{ARM}: reserved; name configurations in [arms.NAME] tables instead")
    for key in fixed:
        if key not in TOP_LEVEL:
            raise ConfigError(f"fixed.{key}: unknown setting (known: {', '.join(TOP_LEVEL)})")
    params: dict[str, Param] = {}
    branches: dict[str, dict[str, Param | Any]] = {}
    for key, value in space.items():
        if key in SCHEDULES or key in OPTIMIZERS:
            _expect(f"space.{key}", value, dict, f"a table of {key}'s parameters")
            accepted = set(param_types(key)) if key in SCHEDULES else set(OPTIMIZERS[key].defaults) | set(OPTIMIZER_BRANCH)
            branches[key] = {}
            for name, entry in value.items():
                if name not in accepted:
                    raise ConfigError(f"space.{key}.{name}: {key} has no parameter {name!r} (it takes: {', '.join(sorted(accepted))})")
                is_param = isinstance(entry, list) or (isinstance(entry, dict) and "low" in entry)
                # A list-valued schedule parameter (milestones) given as one list of numbers is a fixed value.
                if isinstance(entry, list) and entry and not isinstance(entry[0], list) and name == "milestones":
                    is_param = False
                branches[key][name] = _parse_param(f"space.{key}.{name}", entry) if is_param else entry
        elif key in TOP_LEVEL:
            if key in fixed:
                raise ConfigError(f"space.{key}: also fixed in [fixed]; keep one")
            params[key] = _parse_param(f"space.{key}", value)
        else:
            raise ConfigError(f"space.{key}: unknown parameter or branch (parameters: {', '.join(TOP_LEVEL)}; "
                              "branches: a schedule or optimizer name)")  # fmt: skip
    parsed_arms = _parse_arms(arms, fixed, space)
    if parsed_arms:
        params[ARM] = Choice(tuple(parsed_arms))
    return SearchSpace(params=params, fixed=dict(fixed), branches=branches, arms=parsed_arms)


def _check_space(spec: StudySpec) -> None:
    space = spec.space
    for kind, names in (("schedule", SCHEDULES), ("optimizer", OPTIMIZERS)):
        param = space.params.get(kind)
        reachable = set(param.values) if isinstance(param, Choice) else {space.fixed.get(kind, DEFAULT_BRANCHES[kind])}
        for value in reachable:
            if value not in names:
                raise ConfigError(f"space.{kind}: unknown {kind} {value!r}; choose from {', '.join(names)}")
        for branch in space.branches:
            if branch in names and branch not in reachable:
                raise ConfigError(f"space.{branch}: the {kind} {branch} is never chosen, so its table would be ignored")
    compared = space.find(spec.compare)
    if not isinstance(compared, Choice):
        names = ", ".join(n for n in space.param_names() if isinstance(space.find(n), Choice)) or "none"
        raise ConfigError(f"compare: must name a searched parameter with a list of values (here: {names}) "
                          f"but got {spec.compare!r}")  # fmt: skip
    if spec.sampler == "grid":
        ranges = [n for n in space.param_names() if not isinstance(space.find(n), Choice)]
        if ranges:
            raise ConfigError(f"sampler: the grid sampler needs lists, but space.{ranges[0]} is a range")
    trainer = TRAINERS[spec.trainer]
    updates = spec.epochs * math.ceil(trainer.train_examples / (spec.batch_size or trainer.batch_size))
    for config in space.corners():
        try:
            config.build_schedule(horizon=spec.epochs if config.schedule_unit == "epoch" else updates)
        except ConfigError as exc:
            raise ConfigError(f"space: {exc}") from None


def _space_json(space: SearchSpace) -> Any:
    def encode(entry: Any) -> Any:
        return dataclasses.asdict(entry) | {"kind": type(entry).__name__} if isinstance(entry, Param) else entry

    return json.loads(json.dumps({
        "params": {k: encode(v) for k, v in space.params.items()},
        "fixed": dict(space.fixed),
        "branches": {b: {k: encode(v) for k, v in e.items()} for b, e in space.branches.items()},
        "arms": {name: dict(settings) for name, settings in space.arms.items()},
    }, default=list))  # fmt: skip
