"""The fault switches: environment variables that make a worker fail on purpose, so that its recovery can be
tested in a real process on any machine.

``LRSEARCH_INJECT_OOM=E``: the first population a worker trains raises ``torch.OutOfMemoryError`` once, at
the start of its epoch E (counted from 1), as a GPU out of memory would.
"""

from __future__ import annotations

import os

import torch

from lrsearch.errors import ConfigError

__all__ = ["INJECT_OOM", "injected_oom_epoch", "is_out_of_memory"]

INJECT_OOM = "LRSEARCH_INJECT_OOM"


def injected_oom_epoch() -> int | None:
    """The epoch ``LRSEARCH_INJECT_OOM`` names, checked; None where it is not set."""
    given = os.environ.get(INJECT_OOM, "").strip()
    if not given:
        return None
    if not given.isdigit() or not 1 <= int(given) <= 100_000:
        raise ConfigError(f"{INJECT_OOM} must be an epoch from 1 to 100000 but got {given!r}")
    return int(given)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says a device ran out of memory: CUDA's error, or the CPU allocator's."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(exc)
