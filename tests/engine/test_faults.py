from __future__ import annotations

import pytest
import torch

from lrsearch.engine import Population, load_problem
from lrsearch.engine.config import TrainConfig
from lrsearch.engine.faults import INJECT_OOM, injected_oom_epoch, is_out_of_memory
from lrsearch.errors import ConfigError


@pytest.mark.parametrize(("given", "epoch"), [(None, None), ("", None), ("3", 3), (" 1 ", 1)])
def test_the_switch_names_an_epoch(monkeypatch: pytest.MonkeyPatch, given: str | None, epoch: int | None) -> None:
    if given is None:
        monkeypatch.delenv(INJECT_OOM, raising=False)
    else:
        monkeypatch.setenv(INJECT_OOM, given)
    assert injected_oom_epoch() == epoch


@pytest.mark.parametrize("given", ["0", "-1", "2.5", "soon", "100001"])
def test_a_switch_set_wrong_is_refused(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv(INJECT_OOM, given)
    with pytest.raises(ConfigError, match=f"{INJECT_OOM} must be an epoch from 1 to 100000 but got"):
        injected_oom_epoch()


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 10 bytes"), True),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), False),
        (MemoryError(), False),
    ],
)
def test_what_counts_as_out_of_memory(error: BaseException, expected: bool) -> None:
    assert is_out_of_memory(error) is expected


def test_a_population_raises_once_at_the_start_of_the_epoch_named() -> None:
    problem = load_problem("blobs", device=torch.device("cpu"))
    population = Population(problem, epochs=4, out_of_memory_at=2)
    population.add(TrainConfig(lr=0.1, seed=1))
    assert population.run_epoch() == []
    with pytest.raises(torch.OutOfMemoryError, match="injected at epoch 2"):
        population.run_epoch()
    population.run_epoch()  # once only
