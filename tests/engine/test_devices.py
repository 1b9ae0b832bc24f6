from __future__ import annotations

import pytest
import torch

from lrsearch.engine.devices import resolve_device
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
