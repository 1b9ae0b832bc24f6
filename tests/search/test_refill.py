from __future__ import annotations

import pytest

from lrsearch.search.refill import Refill


@pytest.mark.parametrize("price", [0.0, 0.5, 1e9])
def test_an_empty_population_always_asks(price: float) -> None:
    assert Refill(price=price).due(8, 8, 0.01)


def test_the_first_round_has_no_price() -> None:
    assert Refill().due(1, 64, 0.0)


@pytest.mark.parametrize(("free", "size", "epoch", "epochs"), [(1, 64, 0.01, 64), (16, 64, 0.01, 4), (2, 8, 0.1, 2)])
def test_free_slots_wait_until_their_idle_share_reaches_the_price(
    free: int, size: int, epoch: float, epochs: int
) -> None:
    # Due in the ``epochs``-th epoch they stand free: their share of it and of those before reaches the price.
    refill = Refill(price=free / size * epoch * (epochs - 0.5))
    for _ in range(epochs - 1):
        assert not refill.due(free, size, epoch)
        refill.trained(free, size, epoch)
    assert refill.due(free, size, epoch)


def test_a_slow_epoch_refills_at_once() -> None:
    # A model whose epoch takes seconds: one free slot of four is worth a round of a tenth of a second.
    assert Refill(price=0.1).due(1, 4, 2.0)


def test_a_round_resets_the_idle_share_and_sets_the_price() -> None:
    refill = Refill(price=0.1)
    refill.trained(32, 64, 1.0)
    assert refill.due(1, 64, 0.0)
    refill.asked(0.3)
    assert refill == Refill(price=0.3, idle=0.0) and not refill.due(32, 64, 0.5)


def test_epochs_without_free_slots_add_nothing() -> None:
    refill = Refill(price=0.1)
    refill.trained(0, 64, 5.0)
    assert refill.idle == 0.0 and not refill.due(1, 64, 0.01)
