"""Study files (``NAME.toml``: bundled, in ``./studies`` or any path): a question, a trainer, a search space
and a budget.

A file is validated completely before anything touches a database: every key is known, every value has
the right type and range, and every reachable combination of the space builds a valid configuration. A bad
file raises ConfigError naming the file, the key and what is wrong. The format is documented in the README.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lrsearch.checks import MAX_COUNT, MAX_SECONDS, MAX_SEED, integer, number, text
from lrsearch.engine.optim import OPTIMIZERS
from lrsearch.engine.plugins import Trainer, from_problem, resolve
from lrsearch.engine.population import MAX_BATCH_SIZE, MAX_EPOCHS
from lrsearch.engine.problem import Problem
from lrsearch.engine.schedules import SCHEDULES, param_types
from lrsearch.errors import ConfigError
from lrsearch.spec.choices import SAMPLERS, pruner_settings
from lrsearch.spec.files import find_study, read_study_file
from lrsearch.spec.pbt import STRATEGIES, PBTSettings, parse_pbt
from lrsearch.spec.space import (
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

__all__ = ["StudySpec", "load_study", "load_study_file"]

_KEYS = {
    "question",
    "trainer",
    "epochs",
    "batch_size",
    "compare",
    "repeats",
    "n_trials",
    "timeout",
    "population",
    "sampler",
    "pruner",
    "seed",
    "fixed",
    "space",
    "arms",
    "gpu",
    "strategy",
    "pbt",
}
#: What a ``[gpu]`` table may change when the study runs on a GPU: the budget, never the definition.
_GPU_KEYS = {"n_trials", "timeout", "population"}
#: The ranges of a study's counts (its run length's are the engine's).
MAX_POPULATION = 4096
#: ``population = "auto"``: sized where the study runs, by timing this device (``engine.sizing``).
AUTO = "auto"
#: The largest population "auto" chooses for a study without ``n_trials`` to bound it.
AUTO_MOST = 1024
MAX_REPEATS = 1000
#: Choices a list may offer, and combinations of choices and range ends a space may have (each one is
#: built when the file is checked, so that none fails only once a study runs).
MAX_CHOICES = 1000
MAX_CORNERS = 100_000


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """A validated study. ``compare`` names the categorical parameter whose values the report compares;
    ``repeats`` is how many new seeds the best configuration of each compared group is re-run with; with
    ``max_repeats`` (a file's ``repeats = { min, max }``), the two leading groups get more, one at a time,
    until their difference is significant or they have ``max_repeats`` (``search.evidence``)."""

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
    population: int | str  # or AUTO, until a worker sizes it for its device
    sampler: str
    pruner: str
    pruner_settings: Mapping[str, Any]
    seed: int
    space: SearchSpace
    #: What ``trainer`` names: its defaults and how to load it (a plug-in's problem made when the file was read).
    resolved_trainer: Trainer = dataclasses.field(compare=False, repr=False)
    gpu: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    max_repeats: int | None = None
    #: ``pbt``: every trial trains as PBT, or with ``members`` a PBT population follows the search and is
    #: compared with it (``spec.pbt``); None: a search.
    pbt: PBTSettings | None = None
    #: The pruner's settings as ``choices.pruner_settings`` checked and sized them to the run (set by the check).
    pruner_config: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def for_device(self, device_type: str) -> StudySpec:
        """The study with its ``[gpu]`` budget applied on a CUDA device."""
        return self.with_overrides(**self.gpu) if device_type == "cuda" else self

    def with_overrides(self, **changes: Any) -> StudySpec:
        """The study with command-line overrides (None leaves a value as the file has it), re-validated."""
        return _check_run(dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None}))

    @property
    def largest_population(self) -> int:
        """The population: as given, or the most ``"auto"`` may choose: a quarter of ``n_trials`` (the sampler
        learns from finished trials, and a population of all of them would be a random search), at least
        a PBT population's members."""
        if self.population != AUTO:
            return int(self.population)
        most = max(1, self.n_trials // 4) if self.n_trials else AUTO_MOST
        return min(MAX_POPULATION, max(most, self.pbt_members or 1))

    @property
    def pbt_members(self) -> int | None:
        """The size of the PBT population a comparison trains after its search (``[pbt] members``); None for
        a search, and for a study whose every trial is PBT."""
        return self.pbt.members if self.pbt is not None else None

    def trial_seed(self, number: int) -> int:
        """The seed search trial ``number`` trains with (a member's seeds follow from it:
        ``engine.population.member_seeds``); a repeat carries its own (``search.repeats``)."""
        return self.seed + number

    def definition(self) -> dict[str, Any]:
        """What makes trials comparable (stored with the study; a different one under the same name is refused)."""
        return {
            "trainer": self.trainer,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "compare": self.compare,
            "space": _space_json(self.space),
        }


def load_study(
    study: str | Path | Mapping[str, Any], *, problem: Problem | None = None, name: str = "study"
) -> StudySpec:
    """A study by name, path or as a mapping of the file's keys (validated exactly as a file is; ``name``
    names it, and a ``module:callable`` trainer is looked up in the working directory). ``problem``: the
    study's problem given directly, in place of what ``trainer`` names (which may then be left out)."""
    if isinstance(study, Mapping):
        path = Path.cwd() / f"{name}.toml"  # where a file of it would be: its name, and where plug-ins are found
        try:
            return _parse(path, dict(study), problem)
        except ConfigError as exc:
            raise ConfigError(f"study {name}: {exc}") from None
    if not isinstance(study, str | Path):
        raise ConfigError(f"study must be a name, a path or a mapping but got {type(study).__name__}")
    return load_study_file(find_study(str(study)), problem=problem)


def load_study_file(path: Path, *, problem: Problem | None = None) -> StudySpec:
    """Read and validate a study file."""
    raw = read_study_file(path)
    try:
        return _parse(path, raw, problem)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _expect(key: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ConfigError(f"{key}: must be {what} but got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{key}: must be {what} but got {value!r}")
    return value


def _checked(key: str, check: Any, *args: Any, **kwargs: Any) -> Any:
    """``check(key, *args)`` with its message under the key, as every message of a file is."""
    try:
        return check(key, *args, **kwargs)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(f"{key} must", f"{key}: must", 1)) from None


def _parse(path: Path, raw: dict[str, Any], problem: Problem | None = None) -> StudySpec:
    unknown = sorted({str(k) for k in raw} - _KEYS)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key (known: {', '.join(sorted(_KEYS))})")
    for required in ("question", "compare") if problem is not None else ("question", "trainer", "compare"):
        if required not in raw:
            raise ConfigError(f"{required}: missing")
    question = _checked("question", text, raw["question"], max_length=2000).strip()
    if problem is not None:
        if not isinstance(problem, Problem):
            raise ConfigError(f"problem must be an lrsearch.Problem but got {type(problem).__name__}")
        trainer = _expect("trainer", raw.get("trainer", problem.name), str, "a trainer name")
        resolved = dataclasses.replace(from_problem(problem), name=trainer)
    else:
        trainer = _expect("trainer", raw["trainer"], str, "a trainer name")
        try:
            resolved = resolve(trainer, beside=path.parent)
        except ConfigError as exc:
            raise ConfigError(f"trainer: {exc}") from None
    pbt = _parse_strategy(raw, raw.get("epochs", resolved.epochs))
    # A PBT population trains every member to the end; a search (that of a PBT comparison too) prunes
    # against the median by default.
    every_trial_pbt = pbt is not None and pbt.members is None
    pruner, pruner_settings = _parse_pruner(raw.get("pruner", "none" if every_trial_pbt else "median"))
    timeout = raw.get("timeout")
    if timeout is not None:
        _expect("timeout", timeout, (int, float), "seconds > 0")
    repeats, max_repeats = _parse_repeats(raw.get("repeats", 0))
    spec = StudySpec(
        name=path.stem,
        path=path,
        question=question,
        trainer=trainer,
        epochs=raw.get("epochs", resolved.epochs),
        batch_size=raw.get("batch_size"),
        compare=_expect("compare", raw["compare"], str, "a parameter name"),
        repeats=repeats,
        max_repeats=max_repeats,
        pbt=pbt,
        n_trials=raw.get("n_trials"),
        timeout=timeout,
        population=raw.get("population", 8),
        sampler=_expect("sampler", raw.get("sampler", "tpe"), str, "a sampler name"),
        pruner=pruner,
        pruner_settings=pruner_settings,
        seed=raw.get("seed", 0),
        space=_parse_space(raw.get("fixed", {}), raw.get("space", {}), raw.get("arms", {})),
        gpu=_parse_gpu(raw.get("gpu", {})),
        resolved_trainer=resolved,
    )
    spec = _check_run(spec)
    try:
        _check_run(spec.for_device("cuda"))
    except ConfigError as exc:  # the file's own values passed: a [gpu] value is wrong
        raise ConfigError(f"gpu.{exc}") from None
    _check_space(spec)
    return spec


def _parse_strategy(raw: Mapping[str, Any], epochs: Any) -> PBTSettings | None:
    """``strategy`` and its ``[pbt]`` table: PBT settings, or None for a search."""
    strategy = raw.get("strategy", "search")
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy: must be one of {', '.join(STRATEGIES)} but got {strategy!r}")
    if strategy != "pbt":
        if "pbt" in raw:
            raise ConfigError('pbt: a [pbt] table needs strategy = "pbt"')
        return None
    if not isinstance(epochs, int) or isinstance(epochs, bool):
        return None  # the epochs' own check says what is wrong
    return parse_pbt(raw.get("pbt", {}), epochs=epochs)


def _parse_repeats(value: Any) -> tuple[Any, Any]:
    """``repeats``: a count, or ``{ min, max }`` for repeats that adapt (checked by ``_check_run``)."""
    if not isinstance(value, dict):
        return value, None
    unknown = sorted(set(value) - {"min", "max"})
    if unknown or "min" not in value or "max" not in value:
        raise ConfigError(f"repeats: must be a count or a table {{ min = 3, max = 10 }} but got {value!r}")
    return value["min"], value["max"]


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


def _check_run(spec: StudySpec) -> StudySpec:
    """The checks a command-line override can break; the spec with its timeout as a float."""
    if spec.n_trials is None and spec.timeout is None:
        raise ConfigError("n_trials, timeout: a study needs a budget: n_trials, timeout or both")
    _checked("epochs", integer, spec.epochs, 1, MAX_EPOCHS)
    if spec.batch_size is not None:
        _checked("batch_size", integer, spec.batch_size, 1, MAX_BATCH_SIZE)
    if spec.population != AUTO:
        _checked("population", integer, spec.population, 1, MAX_POPULATION)
    _checked("repeats", integer, spec.repeats, 0, MAX_REPEATS)
    if spec.max_repeats is not None:
        # Adapting needs a spread to test from the start: at least two repeats a group.
        _checked("repeats.min", integer, spec.repeats, 2, MAX_REPEATS)
        _checked("repeats.max", integer, spec.max_repeats, spec.repeats, MAX_REPEATS)
    _checked("seed", integer, spec.seed, 0, MAX_SEED)
    if spec.n_trials is not None:
        _checked("n_trials", integer, spec.n_trials, 1, MAX_COUNT)
    if spec.timeout is not None:
        timeout = _checked("timeout", number, spec.timeout, 0.0, MAX_SECONDS, low_open=True)
        spec = dataclasses.replace(spec, timeout=timeout)
    if spec.pbt is not None:
        if spec.pbt.members is None and spec.pruner != "none":
            raise ConfigError(
                f'pruner: a PBT population trains every member to the end: "none" but got {spec.pruner!r}'
            )
        if spec.pbt_members is not None and spec.pbt_members > spec.largest_population:
            raise ConfigError(
                f"pbt.members: a PBT population trains together, so at most the population ({spec.population}) "
                f"but got {spec.pbt.members}"
            )
        size = spec.pbt_members or spec.largest_population
        if spec.pbt.exploited(size) == 0:
            raise ConfigError(
                f"pbt: in a PBT population of {size} a quantile of {spec.pbt.quantile} exploits nobody: "
                f"at least {math.ceil(1 / spec.pbt.quantile)} members train together"
            )
    if not isinstance(spec.sampler, str) or spec.sampler not in SAMPLERS:
        raise ConfigError(f"sampler: unknown sampler {spec.sampler!r}; choose from {', '.join(SAMPLERS)}")
    try:
        sized = pruner_settings(
            spec.pruner, spec.pruner_settings, epochs=spec.epochs, population=spec.largest_population
        )
    except ConfigError as exc:
        raise ConfigError(f"pruner: {exc}") from None
    return dataclasses.replace(spec, pruner_config=sized)


#: The sweep ``lr = "auto"`` runs the range test over.
AUTO_LR_SWEEP = (1e-7, 10.0)


def _choice_kind(value: Any) -> str | None:
    """What a list of choices may hold, one kind a list: numbers, booleans, strings, or lists of numbers
    (milestones, a piecewise schedule's boundaries and values); None for anything else (a table, a list of
    lists)."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return "list of numbers"
    return None


def _parse_choices(key: str, values: list[Any]) -> Choice:
    if not 1 <= len(values) <= MAX_CHOICES:
        raise ConfigError(f"{key}: a list of choices must hold 1 to {MAX_CHOICES} values but got {len(values)}")
    kinds = {_choice_kind(v) for v in values}
    if None in kinds:
        bad = next(v for v in values if _choice_kind(v) is None)
        raise ConfigError(
            f"{key}: a choice must be a number, a string, true/false or a list of numbers but got {bad!r}"
        )
    if len(kinds) > 1:
        raise ConfigError(f"{key}: choices must all be of one kind but got {', '.join(sorted(kinds))} in {values!r}")
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{key}: a choice must be a finite number but got {v!r}")
    # Equal values are one choice to Optuna (1 and 1.0 too): it would index them as one.
    encoded = [Choice.encode(v) for v in values]
    if any(a == b for i, a in enumerate(encoded) for b in encoded[:i]):
        raise ConfigError(f"{key}: choices must be distinct but got {values!r}")
    return Choice(tuple(tuple(v) if isinstance(v, list) else v for v in values))


def _parse_range(key: str, value: dict[str, Any]) -> Param:
    extra = sorted(set(value) - {"low", "high", "log", "step"})
    if extra:
        raise ConfigError(f"{key}: a range takes low, high, log and step but got {extra[0]!r}")
    low, high = value["low"], value["high"]
    for bound in ("low", "high"):
        _checked(f"{key}.{bound}", number, value[bound], -math.inf, math.inf)
    log = _expect(f"{key}.log", value.get("log", False), bool, "true or false")
    if not low < high:
        raise ConfigError(f"{key}: low must be < high but got low={low}, high={high}")
    if log and low <= 0:
        raise ConfigError(f"{key}: a log range needs low > 0 but got low={low}")
    if "step" in value and log:
        raise ConfigError(f"{key}: a log range cannot have a step")
    integral = isinstance(low, int) and isinstance(high, int)
    step = value.get("step", 1 if integral else None)
    if step is not None:
        if integral:
            _checked(f"{key}.step", integer, step, 1, high - low)
        else:
            step = _checked(f"{key}.step", number, step, 0.0, high - low, low_open=True)
        # Optuna would move ``high`` to the last step below it, with a warning.
        steps = (high - low) / step
        if abs(steps - round(steps)) > 1e-9 * max(1.0, steps):
            raise ConfigError(f"{key}: step must divide high - low ({high - low:g}) but got {step:g}")
    if integral:
        return IntRange(low, high, log=log, step=step)
    return FloatRange(float(low), float(high), log=log, step=step)


def _parse_param(key: str, value: Any) -> Param:
    if key == "space.lr" and value == "auto":
        return FloatRange(*AUTO_LR_SWEEP, log=True, auto=True)
    if isinstance(value, list):
        return _parse_choices(key, value)
    if isinstance(value, dict) and {"low", "high"} <= set(value):
        return _parse_range(key, value)
    accepted = "a list of choices, a range { low = .., high = .. }" + (' or "auto"' if key == "space.lr" else "")
    raise ConfigError(f"{key}: must be {accepted} but got {value!r}")


def _parse_arms(arms: Any, fixed: Mapping[str, Any], space: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Named configurations: each a table of fixed settings (engine names, its schedule's and its
    optimizer's parameters)."""
    _expect("arms", arms, dict, "a table of named configurations")
    if len(arms) > MAX_CHOICES:
        raise ConfigError(f"arms: at most {MAX_CHOICES} arms but got {len(arms)}")
    for name, settings in arms.items():
        _checked("arms: an arm's name", text, name, max_length=200)
        _expect(f"arms.{name}", settings, dict, "a table of settings")
        choices = {}
        for kind in DEFAULT_BRANCHES:
            choices[kind] = settings.get(kind, fixed.get(kind, DEFAULT_BRANCHES[kind]))
            if not isinstance(choices[kind], str):
                raise ConfigError(f"arms.{name}.{kind}: must be a {kind} name but got {choices[kind]!r}")
        if choices["schedule"] not in SCHEDULES:
            raise ConfigError(
                f"arms.{name}.schedule: unknown schedule {choices['schedule']!r}; choose from {', '.join(SCHEDULES)}"
            )
        if choices["optimizer"] not in OPTIMIZERS:
            raise ConfigError(
                f"arms.{name}.optimizer: unknown optimizer {choices['optimizer']!r}; choose from {', '.join(OPTIMIZERS)}"
            )
        for kind in DEFAULT_BRANCHES:
            if kind not in settings and kind in space:
                own = set(param_types(choices["schedule"])) if kind == "schedule" else set()
                if own & set(settings):
                    raise ConfigError(f"arms.{name}: sets {kind} parameters, so it must fix its {kind} too")
        accepted = (
            set(TOP_LEVEL) | set(param_types(choices["schedule"])) | set(OPTIMIZERS[choices["optimizer"]].defaults)
        )
        for key in settings:
            if key not in accepted:
                raise ConfigError(
                    f"arms.{name}.{key}: unknown setting for an arm with schedule {choices['schedule']} "
                    f"and optimizer {choices['optimizer']}"
                )
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
            accepted = (
                set(param_types(key)) if key in SCHEDULES else set(OPTIMIZERS[key].defaults) | set(OPTIMIZER_BRANCH)
            )
            branches[key] = {}
            for name, entry in value.items():
                if name not in accepted:
                    raise ConfigError(
                        f"space.{key}.{name}: {key} has no parameter {name!r} (it takes: {', '.join(sorted(accepted))})"
                    )
                is_param = isinstance(entry, list) or (isinstance(entry, dict) and "low" in entry)
                # A list-valued schedule parameter (milestones, boundaries, values) given as one list of numbers
                # is a fixed value; a list of such lists, its choices.
                listed = key in SCHEDULES and typing.get_origin(param_types(key)[name]) is tuple
                if isinstance(entry, list) and entry and not isinstance(entry[0], list) and listed:
                    is_param = False
                branches[key][name] = _parse_param(f"space.{key}.{name}", entry) if is_param else entry
        elif key in TOP_LEVEL:
            if key in fixed:
                raise ConfigError(f"space.{key}: also fixed in [fixed]; keep one")
            params[key] = _parse_param(f"space.{key}", value)
        else:
            raise ConfigError(
                f"space.{key}: unknown parameter or branch (parameters: {', '.join(TOP_LEVEL)}; "
                "branches: a schedule or optimizer name)"
            )
    parsed_arms = _parse_arms(arms, fixed, space)
    if parsed_arms:
        params[ARM] = Choice(tuple(parsed_arms))
    return SearchSpace(params=params, fixed=dict(fixed), branches=branches, arms=parsed_arms)


def _check_space(spec: StudySpec) -> None:
    space = spec.space
    for kind, names in (("schedule", SCHEDULES), ("optimizer", OPTIMIZERS)):
        param = space.params.get(kind)
        reachable = list(param.values) if isinstance(param, Choice) else [space.fixed.get(kind, DEFAULT_BRANCHES[kind])]
        for value in reachable:
            if not isinstance(value, str) or value not in names:
                where = "space" if isinstance(param, Choice) else "fixed"
                raise ConfigError(f"{where}.{kind}: unknown {kind} {value!r}; choose from {', '.join(names)}")
        for branch in space.branches:
            if branch in names and branch not in reachable:
                raise ConfigError(f"space.{branch}: the {kind} {branch} is never chosen, so its table would be ignored")
    optimizers = space.params.get("optimizer")
    if spec.pbt is not None and isinstance(optimizers, Choice) and len(optimizers.values) > 1:
        raise ConfigError(
            "space.optimizer: a PBT member takes another's optimizer state, so they share one optimizer: "
            "fix it in [fixed]"
        )
    compared = space.find(spec.compare)
    if not isinstance(compared, Choice):
        names = ", ".join(n for n in space.param_names() if isinstance(space.find(n), Choice)) or "none"
        raise ConfigError(
            f"compare: must name a searched parameter with a list of values (here: {names}) but got {spec.compare!r}"
        )
    if spec.sampler == "grid":
        ranges = [n for n in space.param_names() if not isinstance(space.find(n), Choice)]
        if ranges:
            raise ConfigError(f"sampler: the grid sampler needs lists, but space.{ranges[0]} is a range")
    corners = math.prod(len(space.find(n).extremes()) for n in space.param_names())  # type: ignore[union-attr]
    if corners > MAX_CORNERS:
        raise ConfigError(
            f"space: up to {corners} combinations of choices and range ends, each checked before a "
            f"study runs; at most {MAX_CORNERS}: search fewer values together"
        )
    trainer = spec.resolved_trainer
    per_epoch = math.ceil(trainer.train_examples / (spec.batch_size or trainer.batch_size))
    for config in space.corners():
        try:
            config.build_schedule(config.horizon(spec.epochs, per_epoch))
        except ConfigError as exc:
            raise ConfigError(f"space: {exc}") from None


def _space_json(space: SearchSpace) -> Any:
    def encode(entry: Any) -> Any:
        return dataclasses.asdict(entry) | {"kind": type(entry).__name__} if isinstance(entry, Param) else entry

    return json.loads(
        json.dumps(
            {
                "params": {k: encode(v) for k, v in space.params.items()},
                "fixed": dict(space.fixed),
                "branches": {b: {k: encode(v) for k, v in e.items()} for b, e in space.branches.items()},
                "arms": {name: dict(settings) for name, settings in space.arms.items()},
            },
            default=list,
        )
    )
