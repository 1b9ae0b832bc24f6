from __future__ import annotations

import pytest
import torch

from lrsearch.engine.devices import free_memory, host_device, resolve_device, worker_visibility
from lrsearch.errors import ConfigError


def test_auto_and_cpu() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "CPU", ""])
def test_malformed(spec: str) -> None:
    with pytest.raises(ConfigError, match="device must be auto, cpu, cuda or cuda:N"):
        resolve_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_without_a_gpu() -> None:
    with pytest.raises(ConfigError, match="no usable CUDA GPU"):
        resolve_device("cuda:0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_index_out_of_range() -> None:
    with pytest.raises(ConfigError, match="GPU\\(s\\) are visible"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize(
    ("device", "env", "visible", "named"),
    [
        ("cpu", None, "", "cpu"),  # a CPU worker sees no GPU: no stray context
        ("cpu", "0,1", "", "cpu"),
        ("cuda:0", None, "0", "cuda:0"),
        ("cuda:1", None, "1", "cuda:0"),
        ("cuda:1", "4, 5", "5", "cuda:0"),  # this process's cuda:1 is the host's GPU 5
        ("cuda:0", "GPU-8f2a", "GPU-8f2a", "cuda:0"),
    ],
)
def test_a_worker_process_sees_its_own_gpu_alone(device: str, env: str | None, visible: str, named: str) -> None:
    assert worker_visibility(device, env) == (visible, named)


@pytest.mark.parametrize(
    ("device", "env", "named"),
    [
        (torch.device("cpu"), "3", "cpu"),
        (torch.device("cuda", 0), "3", "cuda:3"),
        (torch.device("cuda", 1), "2,7", "cuda:7"),
        (torch.device("cuda", 1), "", "cuda:1"),  # nothing visible: the index as given
    ],
)
def test_a_device_is_named_as_the_host_numbers_it(device: torch.device, env: str, named: str) -> None:
    assert host_device(device, env) == named


def test_the_host_s_free_memory_is_a_positive_number_of_bytes() -> None:
    assert 2**20 < free_memory(torch.device("cpu")) < 2**50


def test_timed_counts_what_the_run_takes() -> None:
    import time

    from lrsearch.engine.devices import timed

    seconds = timed(torch.device("cpu"), lambda: time.sleep(0.05))
    assert 0.05 <= seconds < 1.0
