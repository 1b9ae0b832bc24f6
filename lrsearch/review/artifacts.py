"""Each finished trial's curves as Optuna artifacts: where the store is, and writing them.

Per trial, ``curves.json`` (per epoch: lr, train and validation loss and metric) and ``curves.svg`` (the
same as a picture; the dashboard previews any ``image/*`` artifact). Their metadata is written as the
trial's system attrs in the transaction that ends the trial (Optuna's ``upload_artifact`` cannot add them
to a finished trial, and would take a transaction per file); the files go to the store from a background
thread, so the population trains meanwhile.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import os
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from optuna.artifacts import ArtifactMeta, Boto3ArtifactStore, FileSystemArtifactStore, GCSArtifactStore
from optuna.artifacts._protocol import ArtifactStore
from optuna.artifacts._upload import ARTIFACTS_ATTR_PREFIX

from lrsearch.engine import EpochMetrics
from lrsearch.errors import ConfigError, RuntimeFailure
from lrsearch.review.plots import Panel, svg_panels
from lrsearch.storage.urls import sqlite_file

__all__ = ["ArtifactWriter", "curves_of", "open_store", "resolve_artifacts"]

_ENV = "LRSEARCH_ARTIFACTS"


_BUCKETS = {
    "s3://": (Boto3ArtifactStore, "boto3", "boto3"),
    "gs://": (GCSArtifactStore, "google.cloud.storage", "google-cloud-storage"),
}


def resolve_artifacts(flag: str | None, storage_url: str) -> str | None:
    """``--artifacts``, else ``LRSEARCH_ARTIFACTS``, else a folder beside a SQLite database (``lrsearch.db``:
    ``lrsearch-artifacts``); None (no artifacts) for another storage without either: its workers may sit on
    many hosts, and only the user knows the folder or bucket they share. Checked, nothing created."""
    location = flag or os.environ.get(_ENV)
    if location:
        for scheme, (_, module, package) in _BUCKETS.items():
            if location.startswith(scheme):
                bucket = location.removeprefix(scheme).strip("/")
                if not bucket or "/" in bucket:
                    raise ConfigError(f"artifact store {location!r}: give a bucket, {scheme}BUCKET")
                if importlib.util.find_spec(module.split(".")[0]) is None:
                    raise ConfigError(f"artifact store {location!r} needs {package}: pip install {package}")
        return location
    database = sqlite_file(storage_url)
    if database is None:
        return None
    return str(Path(database).with_name(f"{Path(database).stem}-artifacts"))


def open_store(location: str) -> ArtifactStore:
    """The store at a location ``resolve_artifacts`` gave: a folder (created if missing), ``s3://BUCKET``
    (boto3, credentials from the environment) or ``gs://BUCKET`` (google-cloud-storage)."""
    for scheme, (store, _, _) in _BUCKETS.items():
        if location.startswith(scheme):
            return store(location.removeprefix(scheme).strip("/"))
    folder = Path(location).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeFailure(f"cannot create the artifact folder {folder}: {exc.strerror}") from None
    return FileSystemArtifactStore(folder)


def curves_of(history: Sequence[EpochMetrics], metric: str = "accuracy") -> dict[str, list[float]]:
    """A trial's per-epoch curves, as its ``curves.json`` holds them: the metric's named by it
    (``val_accuracy``), none of its own where the metric is the loss."""
    names = {"lr": "lr", "train_loss": "train_loss", "val_loss": "val_loss"}
    if metric != "loss":
        names |= {f"train_{metric}": "train_metric", f"val_{metric}": "val_metric"}
    return {"epoch": [m.epoch for m in history]} | {
        key: [getattr(m, name) for m in history] for key, name in names.items()
    }


def _svg(curves: dict[str, list[float]], title: str, metric: str) -> str:
    x = curves["epoch"]
    panels = [
        Panel("learning rate", x, {"lr": curves["lr"]}, log_y=True),
        Panel("loss", x, {"train": curves["train_loss"], "validation": curves["val_loss"]}),
    ]
    if metric != "loss":
        panels.append(Panel(metric, x, {"train": curves[f"train_{metric}"], "validation": curves[f"val_{metric}"]}))
    return svg_panels(panels, title=title)


@dataclasses.dataclass
class ArtifactWriter:
    """Writes trials' curves to ``store``; ``close`` waits for the files still on their way."""

    store: ArtifactStore
    _pool: ThreadPoolExecutor = dataclasses.field(default_factory=lambda: ThreadPoolExecutor(1, "lrsearch-artifacts"))
    _pending: list[Future[None]] = dataclasses.field(default_factory=list)

    def prepare(self, number: int, history: Sequence[EpochMetrics], metric: str = "accuracy") -> dict[str, Any]:
        """The trial's artifact system attrs (write them with the trial), and the files queued for the store."""
        curves = curves_of(history, metric)
        files = {
            "curves.json": (json.dumps(curves).encode(), "application/json"),
            "curves.svg": (_svg(curves, f"trial {number}", metric).encode(), "image/svg+xml"),
        }
        attrs = {}
        for filename, (data, mimetype) in files.items():
            meta = ArtifactMeta(artifact_id=str(uuid.uuid4()), filename=filename, mimetype=mimetype, encoding=None)
            attrs[ARTIFACTS_ATTR_PREFIX + meta.artifact_id] = json.dumps(dataclasses.asdict(meta))
            self._pending.append(self._pool.submit(self.store.write, meta.artifact_id, io.BytesIO(data)))
        self._pending = [f for f in self._pending if not f.done() or f.exception() is not None]
        return attrs

    def close(self) -> None:
        """Wait for every file; the first that could not be written is one RuntimeFailure."""
        self._pool.shutdown(wait=True)
        for future in self._pending:
            if future.exception() is not None:
                raise RuntimeFailure(f"cannot write a trial's curves to the artifact store: {future.exception()}")
