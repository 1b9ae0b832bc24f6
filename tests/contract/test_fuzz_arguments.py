"""Fuzzing every command's arguments: whatever the command line, the command does its work or ends as one
line (exit 2, nothing written, for bad input; exit 1 for a runtime failure).

Each option's values come from ``VALUES`` (good ones, kept small so a valid command finishes in seconds,
and bad ones: out of range, non-finite, huge, wrong type, odd text). ``test_every_option_is_fuzzed`` keeps
the table complete: an option added to a command without values here fails it. The servers (dashboard,
proxy) get a port this test holds, so a valid command line ends in "cannot serve" instead of serving.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import socket
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from lrsearch.cli import cli
from lrsearch.engine.schedules import SCHEDULES
from tests.conftest import fresh_postgres, write_study
from tests.contract.conftest import Contract, fuzz_settings, snapshot

INTS = ["0", "-1", "2147483648", "99999999999999999999999", "1.5", "x", "", "1e3", "nan"]
FLOATS = ["0", "-1", "nan", "inf", "-inf", "1e400", "1e-320", "x", "", "1e308"]
TEXT = ["", " ", "é", "雪", "💥", "-x", "--", "a b", "x" * 300, "\u202e", "\t"]


@dataclasses.dataclass(frozen=True)
class Places:
    """What the values may name: files and folders of this example, and of the session."""

    folder: Path
    study: Path  # a small blobs study (2 trials, 2 epochs)
    finished: Path  # a SQLite file holding the finished study "small"
    data: Path  # the small Fashion-MNIST set
    taken_port: int
    postgres: str


@dataclasses.dataclass(frozen=True)
class Values:
    """An option's values that fit and values that do not (a string; True for a flag, a list for a
    repeatable option)."""

    good: st.SearchStrategy[Any]
    bad: st.SearchStrategy[Any]


def values(places: Places) -> dict[str, dict[str, Values]]:
    """Per command, per option: its values."""
    f = places.folder
    paths = [
        str(f / "out.csv"),
        str(f / "out.json"),
        str(f / "out.parquet"),
        str(f / "plot.png"),
        str(f / "plot.html"),
        str(f / "x.txt"),
        str(f / "no" / "such" / "out.csv"),
        str(f / "dir"),
        str(f / "file.txt"),
        "",
        "é.csv",
    ]

    def pick(good: list[str], bad: list[str] = TEXT) -> Values:
        return Values(st.sampled_from(good), st.sampled_from(bad))

    def count(*good: int, bad: list[str] = INTS) -> Values:
        return pick([str(g) for g in good], bad)

    def real(*good: float) -> Values:
        return pick([str(g) for g in good], FLOATS)

    def repeated(good: list[str], bad: list[str]) -> Values:
        return Values(
            st.lists(st.sampled_from(good), max_size=2), st.lists(st.sampled_from(bad), min_size=1, max_size=2)
        )

    flag = Values(st.just(True), st.just(["--no-such-flag"]))
    storage = pick(
        [f"sqlite:///{f / 'new.db'}", f"sqlite:///{places.finished}", places.postgres],
        [
            "sqlite://",
            "sqlite:///" + str(f / "no" / "such.db"),
            f"sqlite:///{f / 'file.txt'}",
            "redis://h:1",
            "postgresql://u:p@host:port/db",
            "just words",
            "grpc://nohost",
            "grpc://h:99999",
            "",
        ],
    )
    # What a reading command finds its study in (an empty PostgreSQL database: "holds no studies").
    finished = pick(
        [f"sqlite:///{places.finished}", f"sqlite:///{places.finished}", places.postgres],
        [f"sqlite:///{f / 'new.db'}", "sqlite://", "just words", f"sqlite:///{f / 'file.txt'}", ""],
    )
    plot = pick([str(f / "plot.png"), str(f / "plot.html")], paths)
    devices = pick(["cpu", "auto"], ["cuda", "cuda:1", "tpu", "", "cpu:0"])
    data_dir = pick([str(places.data)], [str(f / "nowhere"), str(f / "file.txt"), str(f / "dir"), ""])
    artifacts = pick([str(f / "art")], ["s3://", "s3://bucket", "gs://b/c", "", "s3://a/b"])
    optimizers = pick(["sgd", "adam", "rmsprop", "adagrad", "adamw"], ["lbfgs", "", "SGD"])
    opt_params = repeated(
        ["eps=1e-8", "beta1=0.5", "alpha=0.9"], ["eps", "=", "eps=nan", "bogus=1", "beta1=2", "eps=x"]
    )
    schedule_params = repeated(
        ["total=3", "gamma=0.5", "milestones=1,2", "decay_rate=0.9", "final_lr=0.001"],
        ["x=1", "total=", "milestones=2,1", "total=1e400", "gamma=inf", "=", "period=-1"],
    )
    schedules = pick(sorted(SCHEDULES), ["cosinus", "", "Cosine"])
    host = pick(["127.0.0.1", "0.0.0.0"], ["999.1.1.1", "é", "not a host", "10.255.255.1", "-1"])
    port = pick([str(places.taken_port)], ["0", "65536", "-1", "x", ""])
    study_name = pick(["small"], ["nope", "", "é", "../x"])
    return {
        "run": {
            "--study": pick(
                [str(places.study)],
                [
                    str(f / "missing.toml"),
                    "no_such",
                    "",
                    str(f / "dir"),
                    str(f / "bad.toml"),
                    str(f / "latin1.toml"),
                    str(f / "file.txt"),
                ],
            ),
            "--storage": storage,
            "--n-trials": count(1, 2),
            "--timeout": real(5, 30.0),
            "--epochs": count(1, 2),
            "--population": count(1, 2, bad=[*INTS, "4097"]),
            "--sampler": pick(["tpe", "random", "qmc"], ["cmaes", ""]),
            "--pruner": pick(
                ["median", "none", "asha", "percentile", "hyperband", "successive_halving"], ["wavelet", ""]
            ),
            "--device": devices,
            "--devices": pick(["cpu"], ["", ",", "cuda:0", "tpu", "cpu,cuda:9"]),
            "--workers": count(1, bad=[*INTS, "257"]),
            "--seed": count(0, 7, bad=[*INTS, "4294967296"]),
            "--heartbeat": count(1, 30, bad=[*INTS, "3601"]),
            "--grace": count(2, 120, bad=[*INTS, "1"]),
            "--max-retry": count(0, 3, bad=[*INTS, "101"]),
            "--data-dir": data_dir,
            "--artifacts": artifacts,
            "--no-report": flag,
        },
        "train": {
            "--trainer": pick(
                ["blobs", "blobs", "fashion_mnist"], ["mnist", "", "no_such_module:problem", "json:loads"]
            ),
            "--optimizer": optimizers,
            "--lr": real(0.01, 0.1),
            "--momentum": real(0.0, 0.9),
            "--nesterov": flag,
            "--weight-decay": real(0.0, 1e-4),
            "--optimizer-param": opt_params,
            "--decay": real(0.0, 1e-3),
            "--schedule": schedules,
            "--schedule-param": schedule_params,
            "--schedule-unit": pick(["epoch", "update"], ["step", ""]),
            "--warmup": count(0, 1),
            "--warmup-start": real(0.0, 0.001),
            "--epochs": count(1, 2),
            "--batch-size": count(16, 64, 100000),
            "--seed": count(0, 3),
            "--device": devices,
            "--data-dir": data_dir,
            "--json": flag,
        },
        "schedule": {
            "TYPE": schedules,
            "--lr": real(0.1, 1.0),
            "--steps": count(1, 10, 500, bad=[*INTS, "10000001"]),
            "--param": schedule_params,
            "--warmup": count(0, 2, bad=[*INTS, "1000000001"]),
            "--warmup-start": real(0.0, 0.05),
            "--plot": plot,
        },
        "lr-find": {
            "--trainer": pick(["blobs", "blobs", "fashion_mnist"], ["mnist", "no_such_module:problem", "json:loads"]),
            "--optimizer": optimizers,
            "--momentum": real(0.0, 0.9),
            "--optimizer-param": opt_params,
            "--start": real(1e-5, 1e-3),
            "--end": real(1.0, 10.0),
            "--updates": count(10, 30, bad=[*INTS, "9", "100001"]),
            "--seeds": count(1, 2, bad=[*INTS, "65"]),
            "--batch-size": count(16, 64),
            "--device": devices,
            "--data-dir": data_dir,
            "--plot": plot,
            "--json": flag,
        },
        "report": {
            "--study": study_name,
            "--storage": finished,
            "--json": flag,
            "--html": pick([str(f / "report.html")], paths),
        },
        "export": {
            "--study": study_name,
            "--storage": finished,
            "--out": pick([str(f / "out.csv"), str(f / "out.json"), str(f / "out.parquet")], paths),
        },
        "reap": {
            "--study": study_name,
            "--storage": finished,
            "--grace": count(2, 120, bad=[*INTS, "1"]),
            "--all": flag,
            "--max-retry": count(0, 3),
        },
        "dashboard": {"--storage": storage, "--host": host, "--port": port, "--artifacts": artifacts},
        "proxy": {"--storage": storage, "--host": host, "--port": port},
        "bench": {
            # Only the sampler benchmark is seconds; the others (minutes) are tests/cli/test_bench.py's.
            "--trainer": pick(["sampler"], ["lenet", ""]),
            "--device": devices,
            "--population": count(1, 2, bad=[*INTS, "4097"]),
            "--baseline-trials": count(1, bad=[*INTS, "1001"]),
            "--epochs": count(1, 2),
            "--data-dir": data_dir,
            "--storage": storage,
            "--workers": count(1, 2, bad=[*INTS, "257"]),
            "--trials": count(2, 8, bad=[*INTS, "100001"]),
            "--sampler": pick(["random", "tpe"], ["cmaes"]),
            "--pruner": pick(["none", "median"], ["wavelet"]),
            "--json": flag,
        },
        "doctor": {
            # One part, seconds: the whole doctor (a minute) is tests/cli/test_doctor.py's.
            "--only": pick(["syncs"], ["speedy", ""]),
            "--device": devices,
            "--json": flag,
        },
        "studies": {"--check": flag},
        "trainers": {},
    }


#: Options every command line of a command carries (to keep valid ones small), unless a bad value replaces
#: it: bench's defaults are minutes of work; train's default epochs are 200 blobs epochs; without a data
#: folder LeNet would train on the whole of the real Fashion-MNIST.
ALWAYS = {
    "train": ["--trainer", "--epochs", "--data-dir"],
    "bench": ["--trainer", "--epochs", "--baseline-trials", "--workers", "--population", "--trials"],
    "dashboard": ["--port"],
    "proxy": ["--port"],
    "run": ["--study"],
    "lr-find": ["--trainer", "--updates", "--data-dir"],
    "schedule": ["TYPE", "--lr", "--steps"],
    "report": ["--study", "--storage"],
    "export": ["--study", "--out", "--storage"],
    "reap": ["--study", "--storage"],
    "doctor": ["--only"],
}
COMMANDS = sorted(
    [
        "run",
        "train",
        "schedule",
        "lr-find",
        "report",
        "export",
        "reap",
        "dashboard",
        "proxy",
        "bench",
        "doctor",
        "studies",
        "trainers",
    ]
)


@st.composite
def command_lines(draw: st.DrawFn, command: str, places: Places) -> list[str]:
    """A command line that fits, with no fault a third of the time and up to three otherwise: an option's
    value replaced by one that does not fit, or a stray argument."""
    table = values(places)[command]
    chosen = {
        option: draw(option_values.good)
        for option, option_values in table.items()
        if option in ALWAYS.get(command, []) or draw(st.booleans())
    }
    stray = []
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):
        if not table or draw(st.integers(0, 7)) == 0:
            stray.append(draw(st.sampled_from(["--bogus", "extra", "-x", "--help=3", "--storage"])))
        else:
            option = draw(st.sampled_from(sorted(table)))
            chosen[option] = draw(table[option].bad)
    args = [command]
    for option, value in chosen.items():
        if option == "TYPE":
            args.insert(1, value)
            continue
        for item in value if isinstance(value, list) else [value]:
            args += [option] if item is True else [f"{option}={item}"] if draw(st.booleans()) else [option, item]
    return args + stray


def _unfinished(url: str) -> list[str]:
    """Trials left RUNNING or WAITING in a SQLite file or the PostgreSQL database."""
    query = "SELECT state FROM trials WHERE state IN ('RUNNING', 'WAITING')"
    if url.startswith("sqlite:///") and Path(url.removeprefix("sqlite:///")).is_file():
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            try:
                return [r[0] for r in db.execute(query)]
            except sqlite3.OperationalError:  # no tables: nothing was written
                return []
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as db:
            return [r[0] for r in db.execute(query)]
    return []


def _storage_of(args: list[str], folder: Path) -> str:
    """The storage a command line names (its last --storage, as click takes it), else the default."""
    url = f"sqlite:///{folder / 'lrsearch.db'}"
    for i, arg in enumerate(args):
        if arg == "--storage" and i + 1 < len(args):
            url = args[i + 1]
        elif arg.startswith("--storage="):
            url = arg.partition("=")[2]
    return url or f"sqlite:///{folder / 'lrsearch.db'}"


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lrsearch.cli import main

    folder = tmp_path_factory.mktemp("finished")
    database = folder / "finished.db"
    study = write_study(folder, n_trials=2, population=2, repeats=1, epochs=2)
    assert main(["run", "--study", str(study), "--storage", f"sqlite:///{database}", "--device", "cpu"]) == 0
    return database


@pytest.fixture(scope="module")
def taken_port() -> Iterator[int]:
    """A port held on every interface: a server asked to serve on it fails instead of serving."""
    with socket.create_server(("0.0.0.0", 0)) as held:
        yield held.getsockname()[1]


@pytest.fixture(scope="module")
def fuzz_postgres() -> Iterator[str]:
    """A database on the real server for the command lines that name PostgreSQL (one per module)."""
    with fresh_postgres() as url:
        yield url


@contextlib.contextmanager
def _places(workdir: Callable[..., Any], finished: Path, data: Path, port: int, postgres: str) -> Iterator[Places]:
    with workdir() as folder:
        (folder / "dir").mkdir()
        (folder / "file.txt").write_text("not a database, not a study\n")
        (folder / "bad.toml").write_text("question = [\n")
        (folder / "latin1.toml").write_bytes('question = "caf\xe9"\n'.encode("latin-1"))
        shutil.copy(finished, folder / "finished.db")
        study = write_study(folder, n_trials=2, population=2, repeats=1, epochs=2)
        yield Places(folder, study, folder / "finished.db", data, port, postgres)


@pytest.mark.parametrize("command", COMMANDS)
@fuzz_settings(examples=15)
@given(data=st.data())
def test_every_command_line_runs_or_ends_as_one_line(
    command: str,
    contract: Contract,
    workdir: Callable[..., Any],
    finished_study: Path,
    small_fashion: Path,
    taken_port: int,
    fuzz_postgres: str,
    data: st.DataObject,
) -> None:
    with _places(workdir, finished_study, small_fashion, taken_port, fuzz_postgres) as places:
        args = data.draw(command_lines(command, places))
        databases = [places.finished]
        before = snapshot(places.folder, databases, [fuzz_postgres])
        env = {"LRSEARCH_STORAGE": ""} if command != "studies" else {"LRSEARCH_STUDIES": str(places.folder)}
        outcome = contract.run(args, cwd=places.folder, env=env)
        event(f"exit {outcome.code}")  # --hypothesis-show-statistics: how many ran, how many were refused
        if outcome.code == 1:
            event(outcome.err.strip().splitlines()[-1][:70])
        Contract.check(outcome, before, snapshot(places.folder, databases, [fuzz_postgres]))
        if command in ("dashboard", "proxy"):
            assert outcome.code != 0, outcome  # it cannot have served: its only good port is taken
        if command == "run" and outcome.code == 0:
            assert _unfinished(_storage_of(args, places.folder)) == [], (args, outcome.err)


def test_every_option_is_fuzzed(tmp_path: Path) -> None:
    """Every option of every command has values in the table (a new option must be added to it)."""
    places = Places(tmp_path, tmp_path, tmp_path, tmp_path, 1, "postgresql://")
    table = values(places)
    context = click.Context(cli)
    assert sorted(table) == cli.list_commands(context) == COMMANDS
    for name in COMMANDS:
        command = cli.get_command(context, name)
        assert command is not None and command.name == name
        declared = {"TYPE" if isinstance(p, click.Argument) else p.opts[0] for p in command.params}
        assert declared == set(table[name]), (name, declared ^ set(table[name]))
