"""Fuzzing study files: whatever a file holds, ``lrsearch run`` either runs it to the end or refuses it as one
line with exit 2, writing nothing."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from lrsearch.errors import ConfigError
from lrsearch.search.study import join_study
from lrsearch.spec.studies import load_study_file
from tests.contract.conftest import Contract, fuzz_settings, snapshot
from tests.contract.grammar import mangled, study_files, to_toml


def _states(database: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return [row[0] for row in db.execute("SELECT state FROM trials")]


def _run_file(contract: Contract, folder: Path, content: bytes, data: Path) -> None:
    study = folder / "fuzzed.toml"
    study.write_bytes(content)
    database = folder / "s.db"
    before = snapshot(folder)
    outcome = contract.run(
        [
            "run",
            "--study",
            str(study),
            "--storage",
            f"sqlite:///{database}",
            "--device",
            "cpu",
            "--data-dir",
            str(data),
        ],
        cwd=folder,
    )
    event(f"exit {outcome.code}")  # --hypothesis-show-statistics: how many ran, how many were refused
    Contract.check(outcome, before, snapshot(folder), codes=(0, 2))
    if outcome.code == 0:
        states = _states(database)
        assert states and all(s in ("COMPLETE", "PRUNED", "FAIL") for s in states), (content, outcome.err, states)
        assert "Verdict:" in outcome.out


@fuzz_settings(examples=50)
@given(raw=study_files())
def test_a_study_file_runs_or_is_refused_as_one_line(
    contract: Contract, workdir: Callable[..., Any], small_fashion: Path, raw: dict[str, Any]
) -> None:
    with workdir() as folder:
        _run_file(contract, folder, to_toml(raw).encode("utf-8"), small_fashion)


@fuzz_settings(examples=40)
@given(data=st.data())
def test_a_corrupt_study_file_is_refused_as_one_line(
    contract: Contract, workdir: Callable[..., Any], small_fashion: Path, data: st.DataObject
) -> None:
    text = to_toml(data.draw(study_files()))
    with workdir() as folder:
        _run_file(contract, folder, data.draw(mangled(text)), small_fashion)


@fuzz_settings(examples=300)
@given(raw=study_files())
def test_a_study_file_parses_or_is_refused_naming_itself(
    raw: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Faster than running, so many more: the parser raises nothing but one-line ConfigErrors that name the
    file, and what it accepts makes a study (sampler, pruner, the definition stored as JSON)."""
    path = tmp_path_factory.mktemp("files") / "fuzzed.toml"
    path.write_text(to_toml(raw), encoding="utf-8")
    try:
        spec = load_study_file(path)
    except ConfigError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
        return
    join_study(spec, optuna.storages.InMemoryStorage(), worker="fuzz")
