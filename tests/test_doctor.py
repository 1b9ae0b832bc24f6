from __future__ import annotations

import dataclasses

import torch
from torch import nn

from lrsearch.doctor import HostSyncs, check_syncs, lenet_problem
from lrsearch.engine.modules import ModuleModel
from lrsearch.engine.problems import Problem


class _Peeking(nn.Module):
    """A network that reads a value on the host in every forward pass (a sync per batch on a GPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(x.abs().max()) > 1e9:  # the kind of check that costs a sync
            raise ValueError("huge input")
        return self.fc(x.flatten(1))


def _peeking_problem(batches: int) -> Problem:
    problem = lenet_problem(torch.device("cpu"), 128 * batches)
    return dataclasses.replace(problem, model=ModuleModel(_Peeking, strategy="loop"))


def test_the_engine_makes_no_host_sync_per_batch() -> None:
    check = check_syncs(torch.device("cpu"))
    assert check.ok, check.detail
    assert "blobs: 0 in an epoch of 4 batches, 0 of 8" in check.detail


def test_a_sync_per_batch_is_caught() -> None:
    check = check_syncs(torch.device("cpu"), {"peeking": _peeking_problem})
    assert not check.ok
    assert "peeking:" in check.detail


def test_host_syncs_counts_values_read_on_the_host() -> None:
    x = torch.randn(5)
    with HostSyncs() as syncs:
        y = x * 2
        float(y.sum())
        bool(y[0] > 0)
        torch.nonzero(y)
    assert syncs.count == 3
