"""The contract every command keeps, whatever it is given, and the means to check it many times over.

Either the command does its work (exit 0, no trial left RUNNING or WAITING), or it ends with exactly one
``lrsearch: error:`` line on stderr: exit 2 for bad input, with nothing written (no file, no database row),
or exit 1 for a runtime failure. Never a traceback, never the CLI's "unexpected" fallback (which is for
bugs), never a password.

The fuzz suites draw their inputs with Hypothesis, derandomized (the same examples every run) and bounded
for CI; ``LRSEARCH_FUZZ_EXAMPLES`` sets how many examples each property draws (more to search harder).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from lrsearch.cli import main
from tests.conftest import write_idx

FUZZ_EXAMPLES = int(os.environ.get("LRSEARCH_FUZZ_EXAMPLES", "0")) or None


def fuzz_settings(examples: int) -> settings:
    """``examples`` per property in CI (``LRSEARCH_FUZZ_EXAMPLES`` overrides), the same ones every run, no
    example database written, no per-example deadline (a valid run trains)."""
    return settings(
        max_examples=FUZZ_EXAMPLES or examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@dataclasses.dataclass(frozen=True)
class Outcome:
    args: tuple[str, ...]
    code: int
    out: str
    err: str


def _rows(database: Path) -> dict[str, int] | None:
    """Row counts of every table of a SQLite file (opened read-only), None if there is none."""
    if not database.is_file():
        return None
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}


def _postgres_rows(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as db:
        tables = [r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return {t: db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}


@dataclasses.dataclass(frozen=True)
class Snapshot:
    files: frozenset[tuple[str, int]]
    rows: tuple[tuple[str, dict[str, int] | None], ...]


def snapshot(folder: Path, databases: Sequence[Path] = (), postgres: Sequence[str] = ()) -> Snapshot:
    # A SQLite file's -wal and -shm companions come and go with any reader (this one too), and its size
    # with its checkpoints: its rows tell what was written.
    files = frozenset(
        (str(p.relative_to(folder)), 0 if p.suffix == ".db" else p.stat().st_size)
        for p in folder.rglob("*")
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    )
    rows = tuple((str(d), _rows(d)) for d in databases) + tuple((u, _postgres_rows(u)) for u in postgres)
    return Snapshot(files, rows)


class Contract:
    """Runs ``lrsearch`` in this process (fast: torch and Optuna are imported once) with its output captured
    at the file descriptors, and checks the outcome against the contract."""

    def __init__(self, capfd: pytest.CaptureFixture[str]) -> None:
        self.capfd = capfd

    def run(self, args: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None) -> Outcome:
        self.capfd.readouterr()
        with contextlib.chdir(cwd), _environment(env or {}):
            try:
                code = main(list(args))
            except SystemExit as exc:  # never expected: main returns its code
                code = -1000 - (exc.code if isinstance(exc.code, int) else 0)
        captured = self.capfd.readouterr()
        return Outcome(tuple(args), code, captured.out, captured.err)

    @staticmethod
    def check(
        outcome: Outcome,
        before: Snapshot,
        after: Snapshot,
        *,
        codes: Sequence[int] = (0, 1, 2),
        secrets: Sequence[str] = (),
    ) -> None:
        where = f"lrsearch {' '.join(map(repr, outcome.args))}\nexit {outcome.code}\nstdout: {outcome.out[-2000:]}\nstderr: {outcome.err[-3000:]}"
        assert "Traceback" not in outcome.err and "Traceback" not in outcome.out, where
        assert "lrsearch: error: unexpected" not in outcome.err, where
        assert outcome.code in codes, where
        for secret in secrets:
            assert secret not in outcome.err and secret not in outcome.out, where
        if outcome.code in (1, 2):
            lines = outcome.err.strip().splitlines()
            assert lines and lines[-1].startswith("lrsearch: error: "), where
            assert sum(line.startswith("lrsearch:") for line in lines) == 1, where
        if outcome.code == 2:
            assert len(outcome.err.strip().splitlines()) == 1, where
            assert after == before, (
                f"{where}\nwritten: {sorted(after.files - before.files)} {after.rows} vs {before.rows}"
            )


@contextlib.contextmanager
def _environment(changes: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def contract(capfd: pytest.CaptureFixture[str]) -> Contract:
    return Contract(capfd)


@pytest.fixture
def workdir() -> Callable[[], contextlib.AbstractContextManager[Path]]:
    """A fresh empty folder per example (Hypothesis runs many examples in one test)."""

    @contextlib.contextmanager
    def fresh() -> Iterator[Path]:
        folder = Path(tempfile.mkdtemp(prefix="lrsearch-contract-"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return fresh


@pytest.fixture(scope="session")
def small_fashion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Fashion-MNIST-shaped IDX set just over the validation split (10,064 training images): the LeNet
    trainers run on it in a second, so a fuzzed valid study on them can run to its end."""
    folder = tmp_path_factory.mktemp("small-fashion")
    rng = np.random.default_rng(0)
    for part, n in (("train", 10_064), ("test", 64)):
        write_idx(
            folder / f"{'t10k' if part == 'test' else 'train'}-images-idx3-ubyte",
            rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            compress=True,
        )
        write_idx(
            folder / f"{'t10k' if part == 'test' else 'train'}-labels-idx1-ubyte",
            rng.integers(0, 10, n, dtype=np.uint8),
            compress=True,
        )
    return folder
