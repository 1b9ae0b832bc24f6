from __future__ import annotations

import threading
import time

import pytest

from lrsearch.periodic import Gate, every


def test_every_calls_behind_until_the_block_ends_and_drops_errors() -> None:
    calls: list[float] = []

    def action() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("dropped: the next call tries again")

    with every(0.02, action, name="lrsearch-test"):
        while len(calls) < 3:
            time.sleep(0.01)
    seen = len(calls)
    time.sleep(0.1)
    assert len(calls) == seen and not [t for t in threading.enumerate() if t.name == "lrsearch-test"]


def test_what_waits_at_the_gate_goes_on_only_once_it_opens() -> None:
    gate = Gate()
    gate.wait()  # open: at once
    passed = threading.Event()
    waiting = threading.Thread(target=lambda: (gate.wait(), passed.set()))
    with gate.closed():
        assert not gate.is_open
        waiting.start()
        assert not passed.wait(0.3)
    assert passed.wait(5) and gate.is_open
    waiting.join()


def test_the_gate_opens_when_the_block_fails() -> None:
    gate = Gate()
    with pytest.raises(ValueError), gate.closed():
        raise ValueError("the round failed")
    assert gate.is_open
