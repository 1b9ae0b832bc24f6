"""Data faults: every way an IDX file or its folder can be wrong, raw and gzipped, ends as one line (exit 1
for a file that cannot be read as Fashion-MNIST, exit 2 for a named folder that is not one), before any
study is written; none reaches the CLI's "unexpected" fallback."""

from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lrsearch.engine.data import FASHION_MNIST_FILES
from tests.conftest import write_study
from tests.contract.conftest import Contract, snapshot


def _header(dtype: int, shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, dtype, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)


def _idx(array: np.ndarray) -> bytes:
    return _header(0x08, array.shape) + array.astype(np.uint8).tobytes()


def _count(data: bytes) -> int:
    """How many items a good IDX file's header says it holds."""
    return int.from_bytes(data[4:8], "big")


#: How any file goes wrong: a function of its good bytes to bad ones.
FAULTS: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda data: b"",
    "header cut": lambda data: data[:6],
    "payload cut": lambda data: data[: len(data) // 2],
    "one byte more": lambda data: data + b"\x00",
    "bad magic": lambda data: b"\x01\x02" + data[2:],
    "unknown type": lambda data: data[:2] + b"\x0a" + data[3:],
    "floats": lambda data: (
        data[:2] + b"\x0d" + data[3:4] + data[4 : 4 + 4 * data[3]] + bytes(4 * (len(data) - 4 - 4 * data[3]))
    ),
    "huge dims": lambda data: _header(0x08, (2**32 - 1,) * 3) + data[16:],
    "one dimension": lambda data: _idx(np.zeros(_count(data))) if data[3] == 3 else _idx(np.zeros((_count(data), 2))),
    "too few": lambda data: _idx(np.zeros((3, 28, 28)) if data[3] == 3 else np.zeros(3)),
}
#: How an images file goes wrong while its header stays consistent.
IMAGE_FAULTS: dict[str, Callable[[bytes], bytes]] = {
    "32x32 images": lambda data: _idx(np.zeros((_count(data), 32, 32))),
    "two channels": lambda data: _idx(np.zeros((_count(data), 2, 28, 28))),
}
#: How a labels file goes wrong while its header stays consistent.
LABEL_FAULTS: dict[str, Callable[[bytes], bytes]] = {
    "label 10": lambda data: _idx(np.full(_count(data), 10)),
    "label 255": lambda data: _idx(np.r_[np.zeros(_count(data) - 1), 255]),
}
#: Faults of the compression itself.
GZ_FAULTS: dict[str, Callable[[bytes], bytes]] = {
    "corrupt deflate stream": lambda gz: gz[:20] + bytes(b ^ 0x5A for b in gz[20:60]) + gz[60:],
    "gzip cut": lambda gz: gz[: len(gz) // 2],
    "not gzip": lambda gz: b"this is not gzip data\n" * 10,
    "gzip trailer wrong": lambda gz: gz[:-8] + bytes(8),
}


def _copy(data: Path, folder: Path, *, compressed: bool) -> Path:
    """The small set, as .gz files or decompressed."""
    target = folder / "data"
    target.mkdir()
    for path in data.iterdir():
        if compressed:
            shutil.copy(path, target / path.name)
        else:
            (target / path.stem).write_bytes(gzip.decompress(path.read_bytes()))
    return target


def _file(folder: Path, stem: str) -> Path:
    return next(p for p in (folder / stem, folder / f"{stem}.gz") if p.exists())


def _train(contract: Contract, folder: Path, data: Path, env: dict[str, str] | None = None) -> None:
    """``lrsearch train`` and ``lrsearch run`` on LeNet with ``data``: each ends as one line, and the run
    writes no study."""
    before = snapshot(folder)
    args = ["--data-dir", str(data)] if env is None else []
    outcome = contract.run(["train", "--trainer", "fashion_mnist", "--epochs", "1", *args], cwd=folder, env=env)
    Contract.check(outcome, before, snapshot(folder), codes=(1, 2))
    study = write_study(folder, n_trials=2, population=2, epochs=1)
    study.write_text(study.read_text().replace('"blobs"', '"fashion_mnist"'))
    before = snapshot(folder)
    outcome = contract.run(
        ["run", "--study", str(study), "--storage", f"sqlite:///{folder / 's.db'}", "--device", "cpu", *args],
        cwd=folder,
        env=env,
    )
    Contract.check(outcome, before, snapshot(folder), codes=(1, 2))
    assert not (folder / "s.db").exists(), outcome.err


CASES = (
    [(fault, key) for fault in FAULTS for key in FASHION_MNIST_FILES]
    + [(fault, key) for fault in IMAGE_FAULTS for key in FASHION_MNIST_FILES if key.endswith("images")]
    + [(fault, key) for fault in LABEL_FAULTS for key in FASHION_MNIST_FILES if key.endswith("labels")]
)


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize(("fault", "key"), CASES)
def test_a_bad_idx_file_is_one_line(
    fault: str, key: str, compressed: bool, contract: Contract, tmp_path: Path, small_fashion: Path
) -> None:
    data = _copy(small_fashion, tmp_path, compressed=compressed)
    path = _file(data, FASHION_MNIST_FILES[key])
    good = gzip.decompress(path.read_bytes()) if compressed else path.read_bytes()
    bad = {**FAULTS, **IMAGE_FAULTS, **LABEL_FAULTS}[fault](good)
    path.write_bytes(gzip.compress(bad) if compressed else bad)
    _train(contract, tmp_path, data)


@pytest.mark.parametrize("key", sorted(FASHION_MNIST_FILES))
@pytest.mark.parametrize("fault", sorted(GZ_FAULTS))
def test_a_bad_gz_file_is_one_line(
    fault: str, key: str, contract: Contract, tmp_path: Path, small_fashion: Path
) -> None:
    data = _copy(small_fashion, tmp_path, compressed=True)
    path = _file(data, FASHION_MNIST_FILES[key])
    path.write_bytes(GZ_FAULTS[fault](path.read_bytes()))
    _train(contract, tmp_path, data)


def test_an_unreadable_file_is_one_line(contract: Contract, tmp_path: Path, small_fashion: Path) -> None:
    """A file whose read fails (here /proc/self/mem, which even root cannot read from its start)."""
    data = _copy(small_fashion, tmp_path, compressed=False)
    path = data / FASHION_MNIST_FILES["train_labels"]
    path.unlink()
    path.symlink_to("/proc/self/mem")
    _train(contract, tmp_path, data)


@pytest.mark.parametrize(
    "how",
    ["missing", "a file", "one file missing", "a file named like a folder", "name too long", "empty", "only gz of one"],
)
@pytest.mark.parametrize("given_as", ["--data-dir", "LRSEARCH_DATA_DIR"])
def test_a_bad_data_folder_is_one_line(
    how: str, given_as: str, contract: Contract, tmp_path: Path, small_fashion: Path
) -> None:
    """A folder the user names that is not a Fashion-MNIST folder is refused, never passed over for the
    machine's own copy."""
    folder = tmp_path / "data"
    if how == "a file":
        folder.write_text("x")
    elif how == "one file missing":
        folder = _copy(small_fashion, tmp_path, compressed=True)
        next(folder.glob("t10k-labels*")).unlink()
    elif how == "a file named like a folder":
        folder = _copy(small_fashion, tmp_path, compressed=False)
        (folder / FASHION_MNIST_FILES["test_images"]).unlink()
        (folder / FASHION_MNIST_FILES["test_images"]).mkdir()
    elif how == "name too long":
        folder = tmp_path / ("x" * 300)
    elif how == "empty":
        folder.mkdir()
    elif how == "only gz of one":
        folder = _copy(small_fashion, tmp_path, compressed=True)
        for path in list(folder.iterdir())[1:]:
            path.unlink()
    if given_as == "--data-dir":
        _train(contract, tmp_path, folder)
    else:
        _train(contract, tmp_path, folder, env={"LRSEARCH_DATA_DIR": str(folder)})


def test_the_small_set_itself_trains(contract: Contract, tmp_path: Path, small_fashion: Path) -> None:
    """The faults above are faults: the same set, untouched, trains (this suite's control)."""
    outcome = contract.run(
        ["train", "--trainer", "fashion_mnist", "--epochs", "1", "--data-dir", str(small_fashion)], cwd=tmp_path
    )
    assert outcome.code == 0, outcome.err


def test_real_files_truncated_are_one_line(contract: Contract, tmp_path: Path) -> None:
    """The real Fashion-MNIST, its training images cut short."""
    real = Path("/usr/share/datasets/fashion-mnist")
    if not real.is_dir():
        pytest.skip("needs Debian's dataset-fashion-mnist")
    data = tmp_path / "data"
    data.mkdir()
    for path in real.glob("*.gz"):
        os.symlink(path, data / path.name)
    images = data / "train-images-idx3-ubyte.gz"
    images.unlink()
    images.write_bytes((real / images.name).read_bytes()[:1_000_000])
    _train(contract, tmp_path, data)
