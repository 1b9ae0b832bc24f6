"""Secrets: a password in a storage URL, whatever shape the URL is in, appears in no output of any command
that takes a storage, and in nothing a run writes (the study, its report, its export, its artifacts)."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

from lrsearch.storage.urls import masked, passwords, redact
from tests.conftest import write_study
from tests.contract.conftest import Contract, snapshot

#: Two halves of a marker password: a URL may cut a password at an @ or a /, and neither half may show.
LEFT, RIGHT = "Xq7Zpk", "Wv9Ktm"

#: Malformed and well-formed URLs holding the marker (hosts that fail at once: nothing here waits).
SHAPES = {
    "well formed": f"postgresql://me:{LEFT}{RIGHT}@nohost.invalid/db",
    "a port that is not a number": f"postgresql://me:{LEFT}{RIGHT}@nohost.invalid:port/db",
    "an @ not encoded": f"postgresql://me:{LEFT}@{RIGHT}@nohost.invalid/db",
    "a / not encoded": f"postgresql://me:{LEFT}/{RIGHT}@nohost.invalid/db",
    "a : not encoded": f"postgresql://me:{LEFT}:{RIGHT}@nohost.invalid/db",
    "braces": f"postgresql://me:{LEFT}{{{RIGHT}}}@nohost.invalid/db",
    "encoded": f"postgresql://me:{LEFT}%40{RIGHT}@nohost.invalid/db",
    "bad percent": f"postgresql://me:{LEFT}%zz{RIGHT}@nohost.invalid/db",
    "no host": f"postgresql://me:{LEFT}{RIGHT}@",
    "no @ at all": f"postgresql://me:{LEFT}{RIGHT}",
    "a port out of range": f"postgresql://me:{LEFT}{RIGHT}@127.0.0.1:99999/db",
    "a broken IPv6 host": f"postgresql://me:{LEFT}{RIGHT}@[::1/db",
    "a password parameter": f"postgresql://me@nohost.invalid/db?password={LEFT}{RIGHT}",
    "a libpq string": f"host=nohost.invalid password={LEFT}{RIGHT} dbname=db",
    "no scheme": f"me:{LEFT}{RIGHT}@nohost.invalid/db",
    "another scheme": f"redis://me:{LEFT}{RIGHT}@nohost.invalid:6379",
    "a driver not installed": f"postgresql+pg8000://me:{LEFT}{RIGHT}@nohost.invalid/db",
    "an unsupported database": f"mysql://me:{LEFT}{RIGHT}@nohost.invalid/db",
    "an unknown driver": f"postgresql+nodriver://me:{LEFT}{RIGHT}@nohost.invalid/db",
    "grpc with credentials": f"grpc://me:{LEFT}{RIGHT}@127.0.0.1:1",
    "grpc, no port": f"grpc://me:{LEFT}{RIGHT}",
    "sqlite": f"sqlite:///me:{LEFT}{RIGHT}@/nowhere/x.db",
    "spaces and newlines": f"postgresql://me:{LEFT} \n{RIGHT}@nohost.invalid/db",
    "unicode": f"postgresql://me:{LEFT}é{RIGHT}@nohost.invalid/db",
}

#: Every command that takes a storage, with what else it needs; the URL goes in --storage or the environment.
COMMANDS: dict[str, Callable[[Path], list[str]]] = {
    "run": lambda folder: ["run", "--study", str(write_study(folder)), "--device", "cpu"],
    "report": lambda folder: ["report", "--study", "small"],
    "export": lambda folder: ["export", "--study", "small", "--out", str(folder / "out.csv")],
    "reap": lambda folder: ["reap", "--study", "small"],
    "dashboard": lambda folder: ["dashboard", "--port", "1"],
    "proxy": lambda folder: ["proxy", "--port", "1"],
    "bench": lambda folder: ["bench", "--trainer", "workers", "--workers", "1", "--trials", "1"],
}


def _absent(text: str, where: str) -> None:
    for half in (LEFT, RIGHT):
        assert half not in text, f"{half} in {where}: {text[:2000]}"


@pytest.mark.parametrize("given_as", ["--storage", "LRSEARCH_STORAGE"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_no_message_shows_the_password(
    shape: str, command: str, given_as: str, contract: Contract, workdir: Callable[..., Any]
) -> None:
    with workdir() as folder:
        url = SHAPES[shape]
        args = COMMANDS[command](folder)
        env = {"LRSEARCH_STORAGE": url}
        if given_as == "--storage":
            args, env = [*args, "--storage", url], {"LRSEARCH_STORAGE": ""}
        before = snapshot(folder)
        outcome = contract.run(args, cwd=folder, env=env)
        Contract.check(outcome, before, snapshot(folder), codes=(1, 2))
        _absent(outcome.err + outcome.out, f"the output of lrsearch {command}")
        for path in folder.rglob("*"):
            if path.is_file():
                _absent(path.read_bytes().decode("utf-8", "replace"), str(path))


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_masking_and_redaction_hide_every_shape(shape: str) -> None:
    url = SHAPES[shape]
    _absent(masked(url), "masked()")
    text = f"the driver said: could not connect with {urllib.parse.unquote(url.partition('://')[2])} and {url}"
    if passwords(url):
        _absent(redact(text, [url]).replace(masked(url), ""), "redact()")


def test_a_run_on_a_password_database_keeps_the_password_out_of_everything(
    contract: Contract, workdir: Callable[..., Any], password_postgres: tuple[str, str]
) -> None:
    """The whole path with the right password, on a server that checks it: the run, its report and export,
    the study (attributes, note, charts) and the artifacts hold no trace of the password."""
    url, password = password_postgres
    secrets = {password, urllib.parse.quote(password, safe="")}
    with workdir() as folder:
        artifacts = folder / "artifacts"
        outputs = []
        for args in (
            [
                "run",
                "--study",
                str(write_study(folder, n_trials=2, population=2, repeats=1, epochs=2)),
                "--device",
                "cpu",
                "--artifacts",
                str(artifacts),
            ],
            ["report", "--study", "small", "--json", "--html", str(folder / "report.html")],
            ["export", "--study", "small", "--out", str(folder / "trials.json")],
            ["reap", "--study", "small"],
        ):
            outcome = contract.run([*args, "--storage", url], cwd=folder)
            assert outcome.code == 0, outcome.err
            outputs.append(outcome.out + outcome.err)
        study = optuna.load_study(study_name="small", storage=url)
        stored = json.dumps(
            [
                study.user_attrs,
                study._storage.get_study_system_attrs(study._study_id),
                [(t.user_attrs, t.system_attrs, t.params) for t in study.trials],
            ],
            default=str,
        )
        files = [p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()]
        assert len(list(artifacts.iterdir())) >= 4
        for secret in secrets:
            for text in (*outputs, stored, *files):
                assert secret not in text
