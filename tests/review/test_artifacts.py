from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta

from lrsearch.engine import EpochMetrics
from lrsearch.errors import ConfigError
from lrsearch.review.artifacts import ArtifactWriter, curves_of, open_store, resolve_artifacts
from lrsearch.storage.opening import open_storage
from lrsearch.storage.records import TrialRecord
from lrsearch.storage.workers import write_finished

HISTORY = tuple(
    EpochMetrics(
        epoch=e, lr=0.1 / e, train_loss=1.0 / e, train_metric=0.5 + e / 10, val_loss=1.1 / e, val_metric=0.4 + e / 10
    )
    for e in (1, 2, 3)
)


@pytest.mark.parametrize(
    ("flag", "env", "url", "expected"),
    [
        ("/data/art", None, "sqlite:///x.db", "/data/art"),  # the flag first
        (None, "/env/art", "sqlite:///x.db", "/env/art"),  # then the environment
        (None, None, "sqlite:////srv/studies.db", "/srv/studies-artifacts"),  # beside a SQLite file
        (None, None, "sqlite:///lrsearch.db", "lrsearch-artifacts"),
        (None, None, "postgresql+psycopg://u@db/s", None),  # many hosts: the user says where
        (None, None, "grpc://proxy:13000", None),
        (None, None, "sqlite://", None),  # in memory
    ],
)
def test_where_artifacts_go(
    monkeypatch: pytest.MonkeyPatch, flag: str | None, env: str | None, url: str, expected: str | None
) -> None:
    monkeypatch.delenv("LRSEARCH_ARTIFACTS", raising=False)
    if env:
        monkeypatch.setenv("LRSEARCH_ARTIFACTS", env)
    assert resolve_artifacts(flag, url) == expected


@pytest.mark.parametrize(
    ("location", "fragment"),
    [("s3://", "give a bucket"), ("gs://a/b", "give a bucket"), ("s3://bucket", "needs boto3")],
)
def test_bad_buckets_are_refused_before_anything_is_written(location: str, fragment: str) -> None:
    if fragment == "needs boto3" and importlib.util.find_spec("boto3"):
        pytest.skip("boto3 is installed here")
    with pytest.raises(ConfigError, match=fragment):
        resolve_artifacts(location, "sqlite:///x.db")


def test_a_folder_store_is_created(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "a" / "b"))
    assert isinstance(store, FileSystemArtifactStore) and (tmp_path / "a" / "b").is_dir()


def test_curves() -> None:
    epochs = (1, 2, 3)
    assert curves_of(HISTORY) == {
        "epoch": [1, 2, 3],
        "lr": [0.1 / e for e in epochs],
        "train_loss": [1.0 / e for e in epochs],
        "train_accuracy": [0.5 + e / 10 for e in epochs],
        "val_loss": [1.1 / e for e in epochs],
        "val_accuracy": [0.4 + e / 10 for e in epochs],
    }
    # Named by the problem's metric; none of their own where the metric is the loss.
    assert set(curves_of(HISTORY, "r2")) == {"epoch", "lr", "train_loss", "train_r2", "val_loss", "val_r2"}
    assert set(curves_of(HISTORY, "loss")) == {"epoch", "lr", "train_loss", "val_loss"}


def test_a_finished_trial_carries_its_curves(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", None)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    store = open_store(str(tmp_path / "artifacts"))
    writer = ArtifactWriter(store)
    attrs = writer.prepare(trial.number, HISTORY)
    write_finished(storage, [TrialRecord(trial._trial_id, {1: 0.5}, {}, optuna.trial.TrialState.COMPLETE, 0.5, attrs)])
    writer.close()
    metas = {m.filename: m for m in get_all_artifact_meta(study.trials[0], storage=storage)}
    assert set(metas) == {"curves.json", "curves.svg"} and metas["curves.svg"].mimetype == "image/svg+xml"
    download_artifact(
        artifact_store=store, artifact_id=metas["curves.json"].artifact_id, file_path=str(tmp_path / "c.json")
    )
    assert json.loads((tmp_path / "c.json").read_text()) == curves_of(HISTORY)
    download_artifact(
        artifact_store=store, artifact_id=metas["curves.svg"].artifact_id, file_path=str(tmp_path / "c.svg")
    )
    assert (tmp_path / "c.svg").read_text().startswith("<svg") and "trial 0" in (tmp_path / "c.svg").read_text()
