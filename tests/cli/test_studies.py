from __future__ import annotations

from collections.abc import Callable

from tests.cli.conftest import Outcome


def test_lists_the_bundled_studies_with_their_questions(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch("studies")
    assert outcome.code == 0
    for name in ("cosine_vs_step", "blobs_lr", "seed000_lr", "d2l_schedules"):
        assert name in outcome.out
    assert "Is cosine annealing better than step decay" in outcome.out
