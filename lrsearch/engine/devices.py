"""Devices: turning --device into a torch.device, and seeding one's random ops."""

from __future__ import annotations

import gc
import os
import platform
import re
import time
from collections.abc import Callable

import torch

from lrsearch.errors import ConfigError

__all__ = [
    "describe_device",
    "free_memory",
    "host_device",
    "manual_seed",
    "release_memory",
    "resolve_device",
    "worker_visibility",
]


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


def _visible(env: str | None) -> list[str] | None:
    """``CUDA_VISIBLE_DEVICES`` as a list (None: not set, every GPU visible)."""
    return None if env is None else [d.strip() for d in env.split(",") if d.strip()]


def worker_visibility(device: str, env: str | None) -> tuple[str, str]:
    """For a worker process of its own on ``device`` (``cpu`` or ``cuda:N`` as this process numbers its
    GPUs, ``env`` its ``CUDA_VISIBLE_DEVICES``): the ``CUDA_VISIBLE_DEVICES`` to start it with, so that it
    sees its own GPU alone (no context lands on another) or, on the CPU, none; and the device it then names."""
    if device == "cpu":
        return "", "cpu"
    index = torch.device(device).index or 0
    visible = _visible(env)
    return (visible[index] if visible is not None else str(index)), "cuda:0"


def host_device(device: torch.device, env: str | None = None) -> str:
    """``device`` as the host numbers its GPUs (``cuda:0`` of a process that sees only GPU 3 is ``cuda:3``),
    from ``env``, else this process's ``CUDA_VISIBLE_DEVICES``."""
    if device.type != "cuda":
        return str(device)
    visible = _visible(env if env is not None else os.environ.get("CUDA_VISIBLE_DEVICES"))
    index = device.index or 0
    return f"cuda:{visible[index]}" if visible is not None and index < len(visible) else f"cuda:{index}"


def manual_seed(seed: int, device: torch.device) -> None:
    """Seed the CPU's random ops and ``device``'s, and a started CUDA's: what ``torch.manual_seed`` does for
    them, without its cost per call (it queues a lazy seeding of each accelerator type not started, each
    with a formatted stack: milliseconds a member, or a batch, on a CPU worker)."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda" or torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(seed)


def describe_device(device: torch.device) -> str:
    """The device in words: a GPU's name, or the CPU and its threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def timed(device: torch.device, run: Callable[[], object]) -> float:
    """The seconds ``run`` takes on ``device``, its queued GPU work included."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def release_memory(device: torch.device) -> None:
    """Hand back what a device's allocator caches, once what held it is let go (after an out-of-memory
    error: the next population allocates from scratch)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def free_memory(device: torch.device) -> int:
    """Bytes a new allocation on ``device`` can take: a GPU's free memory and what PyTorch's allocator holds
    unused; the host's available memory for the CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
