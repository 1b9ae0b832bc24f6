"""Work behind the training: a call repeated in a background thread while a block runs (heartbeats, reads
behind the training), and a gate such work waits at while the worker does what cannot wait."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

__all__ = ["Gate", "every"]


@contextlib.contextmanager
def every(seconds: float, action: Callable[[], object], *, name: str) -> Iterator[None]:
    """Within the block, call ``action`` every ``seconds`` in a daemon thread named ``name``; an error is
    dropped (the next call tries again) and the thread is joined on the way out."""
    stop = threading.Event()

    def repeat() -> None:
        while not stop.wait(seconds):
            with contextlib.suppress(Exception):
                action()

    thread = threading.Thread(target=repeat, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class Gate:
    """Open but while a block closes it: work behind the training waits at it (``wait``). A worker's round
    of asks closes it: its population (and device) stands idle until the round ends, and the writes and
    reads behind, on the same cores and database, would only lengthen the round."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    @contextlib.contextmanager
    def closed(self) -> Iterator[None]:
        self._open.clear()
        try:
            yield
        finally:
            self._open.set()

    def wait(self) -> None:
        """Return once the gate is open."""
        self._open.wait()
