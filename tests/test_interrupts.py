from __future__ import annotations

import signal

import pytest

from lrsearch.interrupts import Interrupted, OncePerBurst, check, interrupts


class RaisesWhenCollected:
    """Calls the SIGINT handler from ``__del__``, where Python prints an exception and drops it: as an
    interrupt that lands inside a finalizer (SQLAlchemy's, psycopg's) is lost."""

    def __init__(self, handler: object) -> None:
        self.handler = handler

    def __del__(self) -> None:
        self.handler(signal.SIGINT, None)  # type: ignore[operator]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_lost_in_a_finalizer_is_raised_at_the_next_check() -> None:
    with interrupts() as started:
        started()
        RaisesWhenCollected(signal.getsignal(signal.SIGINT))  # collected at once: the exception is lost
        with pytest.raises(Interrupted):
            check()
        check()  # once only


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_workers_handler_keeps_a_lost_ctrl_c_too() -> None:
    previous = signal.signal(signal.SIGINT, OncePerBurst())
    try:
        RaisesWhenCollected(signal.getsignal(signal.SIGINT))
        with pytest.raises(Interrupted):
            check()
    finally:
        signal.signal(signal.SIGINT, previous)


def test_nothing_pending_nothing_raised() -> None:
    with interrupts() as started:
        started()
        check()
    check()  # Python's own handler in place: nothing of lrsearch's to check
