"""Devices: turning --device into a torch.device, and seeding one's random ops."""

from __future__ import annotations

import gc
import re

import torch

from lrsearch.errors import ConfigError

__all__ = ["manual_seed", "release_memory", "resolve_device"]


def resolve_device(spec: str) -> torch.device:
    """``auto`` (a GPU if there is one), ``cpu``, ``cuda`` or ``cuda:N``."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if not match:
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N but got {spec!r}")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {spec} asked for, but this machine has no usable CUDA GPU")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"device {spec} asked for, but only {torch.cuda.device_count()} GPU(s) are visible")
    return torch.device("cuda", index)


def manual_seed(seed: int, device: torch.device) -> None:
    """Seed the CPU's random ops and ``device``'s, and a started CUDA's: what ``torch.manual_seed`` does for
    them, without its cost per call (it queues a lazy seeding of each accelerator type not started, each
    with a formatted stack: milliseconds a member, or a batch, on a CPU worker)."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda" or torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(seed)


def release_memory(device: torch.device) -> None:
    """Hand back what a device's allocator caches, once what held it is let go (after an out-of-memory
    error: the next population allocates from scratch)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
