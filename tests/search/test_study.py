from __future__ import annotations

from pathlib import Path

import pytest

from lrsearch.errors import ConfigError
from lrsearch.search.study import join_study, load_existing, metadata, sampler_seed
from lrsearch.spec.studies import load_study_file
from lrsearch.storage.opening import open_storage
from lrsearch.storage.urls import resolve_url
from tests.conftest import write_study


def test_join_creates_then_joins_and_keeps_the_question(tmp_path: Path, storage_url: str) -> None:
    spec = load_study_file(write_study(tmp_path))
    storage = open_storage(resolve_url(storage_url))
    first = join_study(spec, storage, worker="a:1")
    second = join_study(spec.with_overrides(n_trials=50), storage, worker="b:2")  # a budget is not a definition
    assert first._study_id == second._study_id
    meta = metadata(second)
    assert (
        meta["question"] == spec.question and meta["compare"] == "schedule" and meta["definition"] == spec.definition()
    )
    assert second.direction.name == "MAXIMIZE"


def test_a_different_definition_under_the_same_name_is_refused(tmp_path: Path) -> None:
    spec = load_study_file(write_study(tmp_path))
    storage = open_storage(resolve_url(f"sqlite:///{tmp_path / 'x.db'}"))
    join_study(spec, storage, worker="a:1")
    with pytest.raises(ConfigError, match="already exists in this storage with a different definition"):
        join_study(spec.with_overrides(epochs=13), storage, worker="a:1")


def test_load_existing_names_what_there_is(tmp_path: Path) -> None:
    storage = open_storage(resolve_url(f"sqlite:///{tmp_path / 'x.db'}"))
    join_study(load_study_file(write_study(tmp_path, "alpha")), storage, worker="a:1")
    assert load_existing("alpha", storage).study_name == "alpha"
    with pytest.raises(ConfigError, match="no study named 'beta' in this storage \\(it has: alpha\\)"):
        load_existing("beta", storage)


def test_workers_get_different_sampler_seeds(tmp_path: Path) -> None:
    spec = load_study_file(write_study(tmp_path))
    assert sampler_seed(spec, "host:1") != sampler_seed(spec, "host:2")
    assert sampler_seed(spec, "host:1") == sampler_seed(spec, "host:1")
