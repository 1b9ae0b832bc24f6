"""A call repeated in a background thread while a block runs (heartbeats, reads behind the training)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

__all__ = ["every"]


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
