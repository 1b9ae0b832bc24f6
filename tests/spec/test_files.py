from __future__ import annotations

from pathlib import Path

import pytest

from lrsearch.errors import ConfigError
from lrsearch.spec.files import bundled_dir, find_study, list_studies, read_study_file
from tests.conftest import write_study


def test_find_by_name_path_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_study("cosine_vs_step") == bundled_dir() / "cosine_vs_step.toml"
    own = write_study(tmp_path, "mine")
    assert find_study(str(own)) == own
    monkeypatch.setenv("LRSEARCH_STUDIES", str(tmp_path))
    assert find_study("mine") == tmp_path / "mine.toml"
    assert "mine" in {p.stem for p in list_studies()}


def test_unknown_study_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown study 'cosine_vs_stepp' \\(known: .*cosine_vs_step"):
        find_study("cosine_vs_stepp")


def test_a_file_is_read_as_toml_or_refused_in_one_line(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('question = "Q?"\nn_trials = 3\n', encoding="utf-8")
    assert read_study_file(good) == {"question": "Q?", "n_trials": 3}
    for content, message in [(b"question = ", "not valid TOML"), (b'question = "caf\xe9"', "not UTF-8 text")]:
        bad = tmp_path / "bad.toml"
        bad.write_bytes(content)
        with pytest.raises(ConfigError, match=message):
            read_study_file(bad)
    with pytest.raises(ConfigError, match="cannot read it"):
        read_study_file(tmp_path / "missing.toml")
