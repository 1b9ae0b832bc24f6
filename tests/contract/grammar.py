"""Study files drawn from the study-file grammar (README, "Study files"), most of them a little wrong.

Every key the format has is drawn, each from values that fit (small, so that a valid study runs in
seconds) and values that do not: wrong types, zero and negative counts, huge and non-finite numbers,
unicode and control characters, lists that mix kinds, tables where a value belongs. The text is written
as TOML by ``to_toml`` (which can also write what TOML cannot hold: a file that fails to parse is part of
the grammar too), and ``mangled`` corrupts a file's bytes.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from lrsearch.engine.optim import OPTIMIZERS
from lrsearch.engine.schedules import SCHEDULES, param_types

# --- values that do not fit anywhere a number, a count or a name is expected ------------------------------

HUGE_INTS = st.sampled_from([2**31, 2**53 + 1, 2**63 - 1, 2**64, 10**30, 10**400])
BAD_FLOATS = st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -1e308, 5e-324, -0.0, 1e-300])
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\t",
        "é",
        "雪",
        "💥",
        "a\u0000b",
        "a\u0007b",
        "\u202e",
        "-1",
        "nan",
        "1e400",
        "x" * 3000,
        "true",
        "{",
        "[1, 2]",
    ]
)


def junk() -> st.SearchStrategy[Any]:
    """Anything a value can be that is likely wrong: other types, extreme numbers, odd text, nesting."""
    scalars = st.one_of(
        st.booleans(),
        st.integers(-3, 3),
        HUGE_INTS,
        HUGE_INTS.map(lambda v: -v),
        BAD_FLOATS,
        st.floats(allow_nan=True, allow_infinity=True),
        ODD_TEXT,
        TEXT,
    )
    return st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(TEXT, scalars, max_size=2))


# --- the grammar: a file that fits, then a few faults put in --------------------------------------------------

#: Values each top-level parameter takes when it fits.
_VALUES = {
    "lr": [1e-3, 0.01, 0.1, 0.3],
    "momentum": [0.0, 0.5, 0.9],
    "decay": [0.0, 1e-4, 1e-2],
    "weight_decay": [0.0, 1e-4],
    "warmup": [0, 1, 2],
    "warmup_start": [0.0, 1e-3],
    "nesterov": [False, True],
    "optimizer": sorted(OPTIMIZERS),
    "schedule_unit": ["epoch", "update"],
}
_RANGED = ("lr", "momentum", "decay", "weight_decay", "warmup", "warmup_start")
_SCHEDULE_VALUES = {int: st.integers(1, 6), float: st.sampled_from([0.01, 0.1, 0.5, 2.0]), bool: st.booleans()}


@st.composite
def _param(draw: st.DrawFn, name: str) -> Any:
    """A searched top-level parameter: a list of its values, or (for the numbers) a range over them."""
    values = sorted(_VALUES[name], key=repr)
    if name in _RANGED and draw(st.booleans()):
        low, high = sorted(draw(st.lists(st.sampled_from(values), min_size=2, max_size=2, unique=True)))
        ranged: dict[str, Any] = {"low": low, "high": high}
        if name == "lr" and draw(st.booleans()):
            ranged["log"] = True
        return ranged
    if name == "lr" and draw(st.integers(0, 9)) == 0:
        return "auto"
    return draw(st.lists(st.sampled_from(values), min_size=1, max_size=3, unique=True))


@st.composite
def _branch(draw: st.DrawFn, schedule: str) -> dict[str, Any]:
    """A schedule's own parameters, fixed or searched."""
    entries = {}
    required = {
        "step": "milestones",
        "cyclic": "step_size_up",
        "exponential": "decay_rate",
        "cosine_restarts": "period",
        "factor": "factor",
        "inverse_time": "decay",
    }.get(schedule)
    for key, kind in param_types(schedule).items():
        if key != required and not draw(st.booleans()):
            continue
        if kind in _SCHEDULE_VALUES:
            value = draw(_SCHEDULE_VALUES[kind])
            entries[key] = [value] if draw(st.booleans()) else value
        else:  # milestones
            entries[key] = draw(st.lists(st.integers(1, 6), min_size=1, max_size=2, unique=True).map(sorted))
    return entries


@st.composite
def fitting_study(draw: st.DrawFn) -> dict[str, Any]:
    """A small study that fits the grammar (a few blobs trials of a few epochs, now and then LeNet on the
    small data set the suite gives it); the combination may still be refused (a schedule whose total
    is shorter than its warmup, a compared parameter that is not a list)."""
    schedules = draw(st.lists(st.sampled_from(sorted(SCHEDULES)), min_size=1, max_size=3, unique=True))
    space: dict[str, Any] = {"schedule": schedules}
    for name in draw(st.lists(st.sampled_from(sorted(_VALUES)), max_size=3, unique=True)):
        space[name] = draw(_param(name))
    for schedule in schedules:
        branch = draw(_branch(schedule))
        if branch:
            space[schedule] = branch
    study: dict[str, Any] = {
        "question": draw(st.sampled_from(["Does cosine beat constant?", "Which rate is best? é 雪 💥"])),
        "trainer": draw(st.sampled_from(["blobs"] * 8 + ["fashion_mnist", "fashion_mnist_d2l"])),
        "epochs": draw(st.integers(1, 3)),
        "compare": "schedule",
        "n_trials": draw(st.integers(1, 4)),
        "population": draw(st.integers(1, 4)),
        "repeats": draw(st.integers(0, 2)),
        "sampler": draw(st.sampled_from(["tpe", "tpe", "random", "qmc", "grid"])),
        "pruner": draw(st.sampled_from(["median", "none", "asha", "percentile", "hyperband", "successive_halving"])),
        "space": space,
    }
    if draw(st.booleans()):
        study["timeout"] = draw(st.sampled_from([30, 60.0]))
    if draw(st.integers(0, 3)) == 0:
        study["pruner"] = {
            "name": "median",
            "n_startup_trials": draw(st.integers(0, 3)),
            "n_warmup_steps": draw(st.integers(0, 2)),
        }
    if draw(st.integers(0, 3)) == 0:
        study["fixed"] = {"optimizer": draw(st.sampled_from(sorted(OPTIMIZERS)))}
        space.pop("optimizer", None)
    if draw(st.integers(0, 4)) == 0:
        study["compare"] = "arm"
        study["arms"] = {
            name: {"lr": draw(st.sampled_from([0.01, 0.1])), "schedule": "cosine", "total": draw(st.integers(1, 4))}
            for name in draw(st.lists(st.sampled_from(["a", "b", "é"]), min_size=1, max_size=3, unique=True))
        }
        del study["space"]
    if draw(st.integers(0, 5)) == 0:
        study["gpu"] = {"n_trials": 2}
    return study


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in ``data`` (into tables and lists)."""
    paths = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        paths.append((*prefix, key))
        paths += _paths(value, (*prefix, key))
    return paths


@st.composite
def _fault(draw: st.DrawFn, study: dict[str, Any]) -> None:
    """Put one fault into ``study``: a value replaced by one that does not fit, a key dropped or added."""
    paths = _paths(study)
    path = draw(st.sampled_from(paths))
    parent = study
    for key in path[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["junk", "junk", "junk", "extreme", "drop", "add"]))
    if action == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent[
            draw(st.one_of(st.sampled_from(["bogus", "lr", "total", "name", "step", "log", "milestones"]), TEXT))
        ] = draw(junk())
    elif action == "extreme":
        parent[path[-1]] = draw(
            st.one_of(HUGE_INTS, HUGE_INTS.map(lambda v: -v), BAD_FLOATS, st.sampled_from([0, -1, 0.5, 1.5]))
        )
    else:
        parent[path[-1]] = draw(junk())


@st.composite
def study_files(draw: st.DrawFn) -> dict[str, Any]:
    """A study file's contents (a dict for ``to_toml``): one that fits, with no fault a third of the time
    and up to three otherwise."""
    study = draw(fitting_study())
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):
        draw(_fault(study))
    return study


# --- writing TOML --------------------------------------------------------------------------------------------


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        escaped = "".join(
            c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}"
            for c in value
        )
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_scalar(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def _key(key: str) -> str:
    return key if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key) else _scalar(key)


def to_toml(data: dict[str, Any]) -> str:
    """TOML for ``data``: its values first, then a [section] per table (everything inside one inline)."""
    lines = [f"{_key(k)} = {_scalar(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines += [f"\n[{_key(key)}]", *(f"{_key(k)} = {_scalar(v)}" for k, v in table.items())]
    return "\n".join(lines) + "\n"


@st.composite
def mangled(draw: st.DrawFn, text: str) -> bytes:
    """``text``'s bytes with a few flipped, cut or inserted (not UTF-8, not TOML, truncated)."""
    data = bytearray(text.encode("utf-8"))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and data:
            data[where] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del data[where:]
        else:
            data[where:where] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)
