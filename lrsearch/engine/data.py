"""The problems' data: seed 000's blobs, and Fashion-MNIST from IDX files found on a search path.

Fashion-MNIST comes from ``--data-dir`` / ``LRSEARCH_DATA_DIR`` when one is given (only from there: a
folder without the four files is refused, never passed over); else it is looked for in the user cache
(``$XDG_CACHE_HOME/lrsearch/fashion-mnist``) and the folder Debian's ``dataset-fashion-mnist`` installs,
and if neither has it, downloaded into the cache and checked against the published MD5 sums. Every file is
checked as it is read (its header, its length, its labels, the images' size): a bad one is one
RuntimeFailure naming it.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import math
import os
import shutil
import tempfile
import urllib.request
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from lrsearch.errors import ConfigError, RuntimeFailure

__all__ = [
    "FASHION_MNIST_FILES",
    "SYSTEM_DIR",
    "Dataset",
    "Split",
    "download_fashion_mnist",
    "find_fashion_mnist",
    "load_blobs",
    "load_fashion_mnist",
    "read_idx",
]

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# MD5 of the published .gz files (zalandoresearch/fashion-mnist README).
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
HOW_TO_GET = (
    "get it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or put the four IDX files "
    f"({', '.join(FASHION_MNIST_FILES.values())}, .gz or not) in a folder and pass --data-dir or set LRSEARCH_DATA_DIR"
)
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4")}


@dataclasses.dataclass(frozen=True)
class Split:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train, validation and test splits; the validation split chooses, the test split is only reported."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    source: str
    #: The standardisation applied to the raw inputs: x = (raw - mean) / std.
    mean: float = 0.0
    std: float = 1.0

    def to(self, device: torch.device) -> Dataset:
        return dataclasses.replace(
            self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device)
        )


def load_blobs() -> Dataset:
    """Seed 000: make_blobs(1000, 3 centers, 2 features, std 2, random_state 2); first 500 train, last 500 test.

    As in the seed, the test half is also the validation data.
    """
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=1000, centers=3, n_features=2, cluster_std=2, random_state=2)
    xs, ys = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    train, test = Split(xs[:500], ys[:500]), Split(xs[500:], ys[500:])
    return Dataset("blobs", train=train, val=test, test=test, num_classes=3, source="sklearn make_blobs")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped); raise RuntimeFailure naming the file if it is not one."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:  # gzip's errors: BadGzipFile (OSError), EOFError, zlib's
        raise RuntimeFailure(f"cannot read {path}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise RuntimeFailure(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise RuntimeFailure(f"{path} is truncated: {len(data)} bytes, shorter than its header")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = offset + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        raise RuntimeFailure(f"{path} is truncated or corrupt: {len(data)} bytes, expected {expected}")
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(dims).astype(dtype.newbyteorder("="))


def _files_in(folder: Path) -> dict[str, Path]:
    """Those of the four files that are in ``folder`` (each plain or .gz)."""
    found = {}
    try:
        for key, stem in FASHION_MNIST_FILES.items():
            for candidate in (folder / stem, folder / f"{stem}.gz"):
                if candidate.is_file():
                    found[key] = candidate
                    break
    except (OSError, ValueError) as exc:  # unreadable, a name too long, a NUL in it
        raise RuntimeFailure(f"cannot read the data folder {folder}: {getattr(exc, 'strerror', None) or exc}") from None
    return found


def _explicit(folder: Path) -> dict[str, Path]:
    """The four files in a folder the user named: there, or refused (never passed over for another)."""
    files = _files_in(folder)
    if not folder.is_dir():
        raise ConfigError(f"data folder {folder} does not exist (--data-dir or LRSEARCH_DATA_DIR); {HOW_TO_GET}")
    missing = [stem for key, stem in FASHION_MNIST_FILES.items() if key not in files]
    if missing:
        raise ConfigError(
            f"data folder {folder} has no {missing[0]} (or .gz); it needs all four: "
            f"{', '.join(FASHION_MNIST_FILES.values())}"
        )
    return files


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lrsearch" / "fashion-mnist"


def explicit_dir(data_dir: Path | None = None) -> Path | None:
    """The folder the user named: ``data_dir``, else ``LRSEARCH_DATA_DIR``; None if neither."""
    return data_dir or (Path(os.environ["LRSEARCH_DATA_DIR"]) if os.environ.get("LRSEARCH_DATA_DIR") else None)


def search_path(*, system_dir: Path = SYSTEM_DIR) -> list[Path]:
    """Where Fashion-MNIST is looked for, in order, when no folder is named."""
    return [cache_dir(), system_dir]


def find_fashion_mnist(
    data_dir: Path | None = None, *, system_dir: Path = SYSTEM_DIR, download: bool = True
) -> dict[str, Path]:
    """The four IDX files: from the named folder (``explicit_dir``) if there is one, else from the first
    folder on the search path that has them all (downloading last)."""
    named = explicit_dir(data_dir)
    if named is not None:
        return _explicit(named)
    folders = search_path(system_dir=system_dir)
    for folder in folders:
        files = _files_in(folder)
        if len(files) == len(FASHION_MNIST_FILES):
            return files
    looked = ", ".join(str(f) for f in folders)
    if not download:
        raise RuntimeFailure(f"Fashion-MNIST not found (looked in {looked}); {HOW_TO_GET}")
    try:
        return download_fashion_mnist(cache_dir())
    except RuntimeFailure as exc:
        raise RuntimeFailure(f"Fashion-MNIST not found (looked in {looked}) and {exc}; {HOW_TO_GET}") from exc


def download_fashion_mnist(
    dest: Path, *, mirror: str | None = None, checksums: Mapping[str, str] | None = None, timeout: float = 30.0
) -> dict[str, Path]:
    """Download the .gz files into ``dest``, each verified against ``checksums`` (by default the published
    sums) before it is kept. The mirror is ``mirror``, else ``LRSEARCH_FASHION_MNIST_URL``, else Zalando's."""
    base = mirror or os.environ.get("LRSEARCH_FASHION_MNIST_URL") or DEFAULT_MIRROR
    dest.mkdir(parents=True, exist_ok=True)
    for name, md5 in (checksums or FASHION_MNIST_MD5).items():
        target = dest / name
        if target.is_file():
            continue
        url = base.rstrip("/") + "/" + name
        with tempfile.NamedTemporaryFile(dir=dest, delete=False) as tmp:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    shutil.copyfileobj(response, tmp)
            except OSError as exc:
                Path(tmp.name).unlink(missing_ok=True)
                raise RuntimeFailure(f"the download from {url} failed ({exc})") from exc
        digest = hashlib.md5(Path(tmp.name).read_bytes()).hexdigest()
        if digest != md5:
            Path(tmp.name).unlink()
            raise RuntimeFailure(f"the download from {url} failed its checksum (md5 {digest}, expected {md5})")
        Path(tmp.name).replace(target)
    return _files_in(dest)  # every file was just written


#: What Fashion-MNIST's files hold: 28x28 bytes per image, labels 0-9 as bytes.
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10


def _check_split(images_path: Path, images: np.ndarray, labels_path: Path, labels: np.ndarray) -> None:
    """Reject files that read as IDX but are not Fashion-MNIST: a model would fail on them mid-run."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise RuntimeFailure(
            f"{images_path} does not hold {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]} byte images: {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
        raise RuntimeFailure(
            f"{labels_path} does not hold one byte label per image of {images_path}: "
            f"{labels.dtype} {labels.shape} for {len(images)} images"
        )
    if len(labels) and int(labels.max()) >= NUM_CLASSES:
        raise RuntimeFailure(f"{labels_path} holds label {int(labels.max())}; Fashion-MNIST's are 0-{NUM_CLASSES - 1}")


def load_fashion_mnist(
    data_dir: Path | None = None,
    *,
    system_dir: Path = SYSTEM_DIR,
    download: bool = True,
    val_size: int = 10_000,
    standardize: bool = True,
) -> Dataset:
    """Fashion-MNIST as float images [N, 1, 28, 28], standardised with the training split's mean and std
    (or, without ``standardize``, raw pixels in [0, 1] as d2l feeds them).

    Validation is the last ``val_size`` training images; the test set is only ever reported.
    """
    files = find_fashion_mnist(data_dir, system_dir=system_dir, download=download)
    arrays = {key: read_idx(path) for key, path in files.items()}
    for part in ("train", "test"):
        images, labels = f"{part}_images", f"{part}_labels"
        _check_split(files[images], arrays[images], files[labels], arrays[labels])
    n_train = len(arrays["train_labels"]) - val_size
    if n_train <= 0:
        raise RuntimeFailure(f"{files['train_images']} has {len(arrays['train_labels'])} images, fewer than val_size")
    images = torch.as_tensor(arrays["train_images"], dtype=torch.float32) / 255.0
    mean, std = (
        (images[:n_train].mean(), images[:n_train].std()) if standardize else (torch.tensor(0.0), torch.tensor(1.0))
    )

    def prepare(raw: np.ndarray) -> torch.Tensor:
        return ((torch.as_tensor(raw, dtype=torch.float32) / 255.0 - mean) / std).unsqueeze(1)

    train_x, train_y = prepare(arrays["train_images"]), torch.as_tensor(arrays["train_labels"], dtype=torch.long)
    test = Split(prepare(arrays["test_images"]), torch.as_tensor(arrays["test_labels"], dtype=torch.long))
    return Dataset(
        "fashion_mnist",
        train=Split(train_x[:n_train], train_y[:n_train]),
        val=Split(train_x[n_train:], train_y[n_train:]),
        test=test,
        num_classes=NUM_CLASSES,
        source=str(files["train_images"].parent),
        mean=float(mean),
        std=float(std),
    )
