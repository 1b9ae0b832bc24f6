"""Ctrl-C: how lrsearch's processes (the command, local workers) turn SIGINT into a clean stop."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Interrupted", "OncePerBurst", "check", "ignored", "interrupts", "noted"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, raised by lrsearch's own handler.

    A subclass because CPython marks a plain KeyboardInterrupt that lands inside a library's ``exec`` of a
    string (dataclasses, namedtuple) as unhandled, and then kills the process with SIGINT at exit even
    though it was caught: exit -2 instead of 130.
    """


def _exit_at_once(signum: int, frame: FrameType | None) -> None:
    # Start-up has written nothing, and an interrupt inside an import can surface as another error
    # (Python 3.11 wraps it in a RuntimeError from __set_name__).
    os.write(2, b"lrsearch: interrupted\n")
    os._exit(130)


class _Raising:
    """A SIGINT handler that raises :class:`Interrupted` and keeps it ``pending`` for ``check``: one raised
    while the main thread runs a callback whose exceptions Python ignores (a finalizer: SQLAlchemy and
    psycopg have many) is printed and lost, and a run would go on as if Ctrl-C had never been pressed."""

    def __init__(self) -> None:
        self.pending = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.pending = True
        raise Interrupted


class OncePerBurst(_Raising):
    """A SIGINT handler that raises :class:`Interrupted`, but not again within ``window`` seconds: a local
    worker gets a terminal's Ctrl-C and, a moment later, its parent's (which passes on a notebook's), and the
    second must not cut short its ending of its trials. A later Ctrl-C raises again."""

    def __init__(self, window: float = 3.0) -> None:
        super().__init__()
        self.window = window
        self.last = -math.inf

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if now - self.last >= self.window:
            self.last = now
            super().__call__(signum, frame)


def check() -> None:
    """Raise :class:`Interrupted` if lrsearch's handler raised one that never arrived (see ``_Raising``):
    called where a long run can stop, once an epoch."""
    handler = signal.getsignal(signal.SIGINT)
    if isinstance(handler, _Raising) and handler.pending:
        handler.pending = False
        raise Interrupted


@contextmanager
def _handled_by(handler: Callable[[int, FrameType | None], object] | int) -> Iterator[None]:
    """SIGINT handled by ``handler`` inside, the previous handler restored after; only in the main thread
    (the only one Python lets set handlers) and where SIGINT is not ignored (a job started with ``&``)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def noted(event: threading.Event) -> contextlib.AbstractContextManager[None]:
    """Inside, a SIGINT sets ``event`` instead of raising (one raised could be lost in a callback whose
    exceptions Python ignores, and a supervisor must not miss it)."""
    return _handled_by(lambda signum, frame: event.set())


def ignored() -> contextlib.AbstractContextManager[None]:
    """SIGINT ignored inside: a process started there inherits that, so a Ctrl-C cannot land inside its
    imports (a traceback); the worker takes Ctrl-C again once they are done."""
    return _handled_by(signal.SIG_IGN)


@contextmanager
def interrupts() -> Iterator[Callable[[], object]]:
    """Ctrl-C ends start-up at once; once the caller calls what this yields, it raises :class:`Interrupted`.

    Left alone where Python's own handler is not in place: SIGINT ignored (a job started with ``&``), a
    thread other than the main one, a host program's handler. The previous handler is restored on exit.
    """
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield lambda: None
        return
    previous = signal.signal(signal.SIGINT, _exit_at_once)
    try:
        yield lambda: signal.signal(signal.SIGINT, _Raising())
    finally:
        signal.signal(signal.SIGINT, previous)
