from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import Outcome


def test_lists_the_bundled_studies_with_their_questions(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch("studies")
    assert outcome.code == 0
    for name in ("cosine_vs_step", "blobs_lr", "seed000_lr", "d2l_schedules"):
        assert name in outcome.out
    assert "Is cosine annealing better than step decay" in outcome.out


def test_a_file_that_is_not_utf8_is_listed_as_invalid(
    lrsearch: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "latin1.toml").write_bytes('question = "caf\xe9"\n'.encode("latin-1"))
    monkeypatch.setenv("LRSEARCH_STUDIES", str(tmp_path))
    outcome = lrsearch("studies")
    assert outcome.code == 0 and "latin1  (invalid)" in outcome.out and "not UTF-8 text" in outcome.out
    assert "cosine_vs_step" in outcome.out  # the rest of the listing is still there


def test_check_validates_every_file_as_a_run_would(
    lrsearch: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Listed from its TOML alone, the file looks fine; validated, its rate is refused.
    (tmp_path / "bad_rate.toml").write_text(
        'question = "Q?"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 2\n'
        '[space]\nschedule = ["constant", "cosine"]\nlr = { low = -1.0, high = 0.1 }\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("LRSEARCH_STUDIES", str(tmp_path))
    listed = lrsearch("studies")
    assert listed.code == 0 and "bad_rate  (blobs, 2 trials, compares schedule)" in listed.out
    checked = lrsearch("studies", "--check")
    assert checked.code == 0 and "bad_rate  (invalid)" in checked.out and "lr must be" in checked.out
    assert "pbt_vs_static  (fashion_mnist, 8 trials, 8 PBT members, compares schedule)" in checked.out
