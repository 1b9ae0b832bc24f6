from __future__ import annotations

from collections.abc import Callable

from tests.cli.conftest import Outcome


def test_every_bundled_trainer_is_listed_with_its_description(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch("trainers")
    assert outcome.code == 0, outcome.err
    for name in ("blobs", "fashion_mnist", "fashion_mnist_d2l"):
        assert f"{name}\n    seed 00" in outcome.out
    assert "module.path:callable" in outcome.out and "lrsearch.trainers" in outcome.out
