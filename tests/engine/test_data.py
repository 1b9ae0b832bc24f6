from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from lrsearch.engine.data import (
    FASHION_MNIST_FILES,
    download_fashion_mnist,
    find_fashion_mnist,
    load_blobs,
    load_fashion_mnist,
    read_idx,
)
from lrsearch.errors import ConfigError, RuntimeFailure
from tests.conftest import REAL_FASHION_MNIST, write_fashion_set, write_idx

# --- blobs -----------------------------------------------------------------------------------------------------


def test_blobs_is_seed_000_split() -> None:
    from sklearn.datasets import make_blobs

    data = load_blobs()
    x, y = make_blobs(n_samples=1000, centers=3, n_features=2, cluster_std=2, random_state=2)
    assert (len(data.train), len(data.val), len(data.test)) == (500, 500, 500)
    np.testing.assert_allclose(data.train.x.numpy(), x[:500], rtol=1e-6)
    np.testing.assert_array_equal(data.test.y.numpy(), y[500:])
    assert data.val is data.test  # as in the seed, the test half is the validation data


# --- IDX files -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trips(tmp_path: Path, compress: bool) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / "a-idx3-ubyte", array, compress=compress)
    np.testing.assert_array_equal(read_idx(path), array)


def test_read_idx_rejects_a_bad_magic_number(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(b"\x01\x02\x03\x04" + bytes(10))
    with pytest.raises(RuntimeFailure, match="not an IDX file"):
        read_idx(path)


def test_read_idx_rejects_a_truncated_file(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "a", np.zeros((4, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(RuntimeFailure, match="truncated or corrupt"):
        read_idx(path)


# --- the search path -------------------------------------------------------------------------------------------


def test_search_order(tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = write_fashion_set(tmp_path / "explicit", fill=1)
    env = write_fashion_set(tmp_path / "env", fill=2)
    write_fashion_set(isolated_cache, fill=3, compress=True)
    system = write_fashion_set(tmp_path / "system", fill=4)

    def chosen(data_dir: Path | None = None) -> Path:
        return find_fashion_mnist(data_dir, system_dir=system, download=False)["train_images"].parent

    assert chosen() == isolated_cache  # the cache comes before the system folder
    monkeypatch.setenv("LRSEARCH_DATA_DIR", str(env))
    assert chosen() == env  # LRSEARCH_DATA_DIR before the cache
    assert chosen(explicit) == explicit  # --data-dir before everything
    monkeypatch.delenv("LRSEARCH_DATA_DIR")
    for f in isolated_cache.iterdir():
        f.unlink()
    assert chosen() == system


def test_a_named_folder_is_honoured_or_refused(
    tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--data-dir or LRSEARCH_DATA_DIR: its files, or an error naming what is missing; never another copy."""
    partial = write_fashion_set(tmp_path / "partial")
    (partial / FASHION_MNIST_FILES["test_labels"]).unlink()
    system = write_fashion_set(tmp_path / "system")
    with pytest.raises(ConfigError, match=f"data folder {partial} has no t10k-labels-idx1-ubyte"):
        find_fashion_mnist(partial, system_dir=system, download=False)
    with pytest.raises(ConfigError, match=f"data folder {tmp_path / 'nowhere'} does not exist"):
        find_fashion_mnist(tmp_path / "nowhere", system_dir=system, download=False)
    monkeypatch.setenv("LRSEARCH_DATA_DIR", str(partial))
    with pytest.raises(ConfigError, match="has no t10k-labels-idx1-ubyte"):
        find_fashion_mnist(None, system_dir=system, download=False)


def test_a_folder_on_the_search_path_missing_a_file_is_skipped(tmp_path: Path, isolated_cache: Path) -> None:
    write_fashion_set(isolated_cache)
    (isolated_cache / FASHION_MNIST_FILES["test_labels"]).unlink()
    system = write_fashion_set(tmp_path / "system")
    assert find_fashion_mnist(None, system_dir=system, download=False)["train_images"].parent == system


def test_nothing_found_says_how_to_get_the_data(tmp_path: Path, isolated_cache: Path) -> None:
    with pytest.raises(RuntimeFailure) as error:
        find_fashion_mnist(None, system_dir=tmp_path / "none", download=False)
    message = str(error.value)
    assert "Fashion-MNIST not found" in message and "apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "none") in message and "\n" not in message


def test_loads_small_idx_files_with_the_validation_split(tmp_path: Path, isolated_cache: Path) -> None:
    folder = write_fashion_set(tmp_path / "d", n_train=30, n_test=10, compress=True)
    data = load_fashion_mnist(folder, system_dir=tmp_path / "none", download=False, val_size=8)
    assert (len(data.train), len(data.val), len(data.test)) == (22, 8, 10)
    assert data.train.x.shape == (22, 1, 28, 28) and data.train.x.dtype == torch.float32
    raw = read_idx(folder / (FASHION_MNIST_FILES["train_images"] + ".gz"))
    expected_val = (raw[22:].astype(np.float32) / 255 - data.mean) / data.std
    np.testing.assert_allclose(data.val.x.squeeze(1).numpy(), expected_val, rtol=1e-5, atol=1e-6)


def test_raw_pixels_without_standardisation(tmp_path: Path, isolated_cache: Path) -> None:
    folder = write_fashion_set(tmp_path / "d", n_train=30, n_test=10)
    data = load_fashion_mnist(folder, system_dir=tmp_path / "none", download=False, val_size=8, standardize=False)
    raw = read_idx(folder / FASHION_MNIST_FILES["test_images"])
    np.testing.assert_allclose(data.test.x.squeeze(1).numpy(), raw.astype(np.float32) / 255, rtol=1e-6)
    assert (data.mean, data.std) == (0.0, 1.0)


def test_mismatched_labels_are_reported(tmp_path: Path, isolated_cache: Path) -> None:
    folder = write_fashion_set(tmp_path / "d")
    write_idx(folder / FASHION_MNIST_FILES["train_labels"], np.zeros(7, dtype=np.uint8))
    with pytest.raises(RuntimeFailure, match="does not hold one byte label per image"):
        load_fashion_mnist(folder, system_dir=tmp_path / "none", download=False, val_size=5)


# --- download (from a local server: nothing leaves the machine) ------------------------------------------------


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A local HTTP mirror of a small .gz set and its MD5 sums."""
    folder = write_fashion_set(tmp_path / "mirror", compress=True)
    checksums = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", checksums
    server.shutdown()


def test_download_verifies_and_keeps_the_files(tmp_path: Path, mirror: tuple[str, dict[str, str]]) -> None:
    url, checksums = mirror
    files = download_fashion_mnist(tmp_path / "dest", mirror=url, checksums=checksums)
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == sorted(checksums)
    assert read_idx(files["train_images"]).shape == (30, 28, 28)


def test_download_with_a_wrong_checksum_keeps_nothing(tmp_path: Path, mirror: tuple[str, dict[str, str]]) -> None:
    url, checksums = mirror
    wrong = {name: "0" * 32 for name in checksums}
    with pytest.raises(RuntimeFailure, match="failed its checksum"):
        download_fashion_mnist(tmp_path / "dest", mirror=url, checksums=wrong)
    assert list((tmp_path / "dest").iterdir()) == []


def test_download_failure_is_one_clear_error(tmp_path: Path, mirror: tuple[str, dict[str, str]]) -> None:
    url, checksums = mirror
    with pytest.raises(RuntimeFailure, match="download from .* failed"):
        download_fashion_mnist(tmp_path / "dest", mirror=url + "missing/", checksums=checksums)


def test_search_path_downloads_into_the_cache_last(
    tmp_path: Path, isolated_cache: Path, mirror: tuple[str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, checksums = mirror
    monkeypatch.setenv("LRSEARCH_FASHION_MNIST_URL", url)
    monkeypatch.setattr("lrsearch.engine.data.FASHION_MNIST_MD5", checksums)
    files = find_fashion_mnist(None, system_dir=tmp_path / "none")
    assert files["train_images"].parent == isolated_cache


# --- the real data ---------------------------------------------------------------------------------------------


def test_real_fashion_mnist(isolated_cache: Path) -> None:
    data = load_fashion_mnist(REAL_FASHION_MNIST, download=False)
    assert (len(data.train), len(data.val), len(data.test)) == (50_000, 10_000, 10_000)
    assert data.train.x.shape[1:] == (1, 28, 28)
    assert abs(float(data.train.x.mean())) < 1e-3 and abs(float(data.train.x.std()) - 1) < 1e-3
    assert data.mean == pytest.approx(0.286, abs=0.002) and data.std == pytest.approx(0.353, abs=0.002)
    for split in (data.train, data.val, data.test):
        assert torch.bincount(split.y, minlength=10).min() > len(split) * 0.08  # ten balanced classes
    # The validation split is the last 10,000 training images, exactly.
    raw = read_idx(REAL_FASHION_MNIST / (FASHION_MNIST_FILES["train_labels"] + ".gz"))
    np.testing.assert_array_equal(data.val.y.numpy(), raw[50_000:])
    with gzip.open(REAL_FASHION_MNIST / (FASHION_MNIST_FILES["test_images"] + ".gz")) as f:
        assert f.read(4) == bytes([0, 0, 8, 3])


def test_a_corrupt_deflate_stream_is_a_runtime_failure(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x", np.zeros((4, 28, 28), dtype=np.uint8), compress=True)
    data = path.read_bytes()
    path.write_bytes(data[:20] + bytes(b ^ 0x5A for b in data[20:40]) + data[40:])
    with pytest.raises(RuntimeFailure, match=f"cannot read {path}"):
        read_idx(path)


@pytest.mark.parametrize(
    ("key", "array", "fragment"),
    [
        ("train_labels", np.full(30, 10), "holds label 10; Fashion-MNIST's are 0-9"),
        ("train_images", np.zeros((30, 32, 32)), "does not hold 28x28 byte images"),
        ("test_labels", np.zeros((10, 2)), "does not hold one byte label per image"),
    ],
)
def test_files_that_are_not_fashion_mnist_are_refused(
    tmp_path: Path, isolated_cache: Path, key: str, array: np.ndarray, fragment: str
) -> None:
    folder = write_fashion_set(tmp_path / "d")
    write_idx(folder / FASHION_MNIST_FILES[key], array)
    with pytest.raises(RuntimeFailure, match=fragment):
        load_fashion_mnist(folder, system_dir=tmp_path / "none", download=False, val_size=5)


def test_an_unreadable_named_folder_is_a_runtime_failure(
    tmp_path: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LRSEARCH_DATA_DIR", str(tmp_path / ("x" * 300)))  # a name the system refuses
    with pytest.raises(RuntimeFailure, match="cannot read the data folder"):
        find_fashion_mnist(None, system_dir=tmp_path / "none", download=False)
