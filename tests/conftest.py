from __future__ import annotations

import contextlib
import dataclasses
import gzip
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch

from lrsearch.engine.data import FASHION_MNIST_FILES, Dataset, Split
from lrsearch.engine.modules import ModuleModel
from lrsearch.engine.networks import lenet
from lrsearch.engine.problems import Problem

REAL_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, array: np.ndarray, *, compress: bool = False) -> Path:
    """Write ``array`` (uint8) as an IDX file, gzipped if ``compress`` (then ``.gz`` is appended)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def write_fashion_set(
    folder: Path, *, n_train: int = 30, n_test: int = 10, compress: bool = False, fill: int = 0
) -> Path:
    """A small Fashion-MNIST-shaped IDX set; ``fill`` tags its pixels so tests can tell sets apart."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(fill)
    for part, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = fill
        write_idx(folder / FASHION_MNIST_FILES[f"{part}_images"], images, compress=compress)
        write_idx(folder / FASHION_MNIST_FILES[f"{part}_labels"], rng.integers(0, 10, n), compress=compress)
    return folder


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user cache and no LRSEARCH_DATA_DIR, so only what a test puts on the search path exists."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LRSEARCH_DATA_DIR", raising=False)
    return tmp_path / "cache" / "lrsearch" / "fashion-mnist"


def tiny_image_problem(
    strategy: Literal["loop", "vmap"] = "loop", *, n_train: int = 96, restore_best: bool = True
) -> Problem:
    """LeNet on a few random images: for engine properties that do not depend on the data."""
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        return Split(torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))

    dataset = Dataset("tiny", train=split(n_train), val=split(40), test=split(40), num_classes=10, source="random")
    return Problem(
        name="tiny",
        dataset=dataset,
        model=ModuleModel(lenet, strategy=strategy),
        batch_size=32,
        epochs=3,
        restore_best=restore_best,
        device=torch.device("cpu"),
    )


# --- studies and storages ----------------------------------------------------------------------------------

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def fresh_postgres() -> Iterator[str]:
    """A fresh database on the real PostgreSQL server, dropped afterwards."""
    import psycopg

    name = f"lrsearch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage lrsearch supports out of the box: the embedded SQLite file and the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studies.db'}"
    return request.getfixturevalue("postgres_url")


SMALL_STUDY = """
question = "Does cosine beat constant on blobs in a few epochs?"
trainer = "blobs"
epochs = {epochs}
compare = "schedule"
repeats = {repeats}
n_trials = {n_trials}
population = {population}
sampler = "{sampler}"
pruner = {pruner}

[space]
schedule = {schedules}
lr = {{ low = {lr_low}, high = {lr_high}, log = true }}
momentum = {{ low = 0.0, high = 0.9 }}
"""


def write_study(folder: Path, name: str = "small", **overrides: object) -> Path:
    """A small blobs study file (seconds to run); ``overrides`` change the template's values."""
    values: dict[str, object] = {
        "epochs": 12,
        "repeats": 0,
        "n_trials": 8,
        "population": 4,
        "sampler": "tpe",
        "pruner": '{ name = "median", n_startup_trials = 2, n_warmup_steps = 2 }',
        "schedules": '["constant", "cosine"]',
        "lr_low": 1e-3,
        "lr_high": 0.3,
    }
    values.update(overrides)
    path = folder / f"{name}.toml"
    path.write_text(SMALL_STUDY.format(**values), encoding="utf-8")
    return path


@pytest.fixture
def password_postgres() -> Iterator[tuple[str, str]]:
    """A private PostgreSQL server that checks passwords (the machine's own trusts 127.0.0.1), started
    from the installed binaries; yields (url with the right password, the password)."""
    import shutil
    import socket
    import subprocess
    import tempfile

    binaries = max(Path("/usr/lib/postgresql").glob("*/bin"))
    # Not under pytest's temporary root, which only root may enter: the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="lrsearch-pg-"))
    folder.chmod(0o755)
    password = "Right{pass}word"
    (folder / "pw").write_text(password)
    shutil.chown(folder, "postgres")
    shutil.chown(folder / "pw", "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def as_postgres(*command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, timeout=60)

    as_postgres(
        str(binaries / "initdb"),
        "-D",
        str(folder / "data"),
        "-A",
        "scram-sha-256",
        "--pwfile",
        str(folder / "pw"),
        "-U",
        "postgres",
    )
    as_postgres(
        str(binaries / "pg_ctl"),
        "-D",
        str(folder / "data"),
        "-l",
        str(folder / "log"),
        "-w",
        "start",
        "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1",
    )
    try:
        from urllib.parse import quote

        yield f"postgresql://postgres:{quote(password, safe='')}@127.0.0.1:{port}/postgres", password
    finally:
        as_postgres(str(binaries / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class Reviewed:
    """A finished small study on SQLite, with its artifacts beside the database."""

    folder: Path
    url: str
    artifacts: Path


@pytest.fixture(scope="session")
def reviewed(tmp_path_factory: pytest.TempPathFactory) -> Reviewed:
    """``lrsearch run`` of a small blobs study (8 search trials, 2 repeats per group): what the review
    tests (note, charts, artifacts, dashboard, report page) look at. Shared: seconds to make."""
    from lrsearch.cli import main

    folder = tmp_path_factory.mktemp("reviewed")
    url = f"sqlite:///{folder / 'studies.db'}"
    study = write_study(folder, n_trials=8, population=4, repeats=2, epochs=12)
    assert main(["run", "--study", str(study), "--storage", url, "--device", "cpu"]) == 0
    return Reviewed(folder, url, folder / "studies-artifacts")


# --- a user's own problem -----------------------------------------------------------------------------------

#: A problem as a user writes it: their own module, BatchNorm and dropout, data made in the callable.
USER_PROBLEM = '''
"""A user's own network on a small problem of their own."""
import torch
from torch import nn

import lrsearch


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2))
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] - x[:, 1] > 0).long()


def problem() -> lrsearch.Problem:
    """Two classes, four features: the user's Net."""
    return lrsearch.Problem(model=Net, train=split(96, 0), val=split(48, 1), test=split(48, 2), batch_size=16,
                            epochs=4)


def regression() -> lrsearch.Problem:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, generator=g)
    return lrsearch.Problem(model=lambda: nn.Linear(1, 1), train=(x, 2 * x + 5), val=(x, 2 * x + 5), loss="mse",
                            metric="loss", batch_size=8, epochs=5)


def broken() -> lrsearch.Problem:
    raise RuntimeError("the data server is down")


def not_a_problem() -> int:
    return 3


def bad_values() -> lrsearch.Problem:
    return lrsearch.Problem(model=Net, train=split(8, 0), val=split(4, 1), batch_size=0)


NOT_CALLABLE = 3
'''


@pytest.fixture
def user_module(tmp_path: Path) -> Iterator[str]:
    """The user's module written into ``tmp_path`` under a name of its own (imports are cached by name)."""
    name = f"user_problem_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(USER_PROBLEM)
    yield name
    sys.modules.pop(name, None)


def plug_in_study(folder: Path, trainer: str) -> Path:
    """The small study on ``trainer``, its epochs left to the problem."""
    path = write_study(folder)
    path.write_text(
        path.read_text().replace('trainer = "blobs"', f'trainer = "{trainer}"').replace("epochs = 12\n", "")
    )
    return path
