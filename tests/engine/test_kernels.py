from __future__ import annotations

import torch

from lrsearch.engine.kernels import count_kernels


def test_ops_that_compute_are_counted_and_views_are_not() -> None:
    tensors = [torch.randn(4, 3) for _ in range(5)]
    assert count_kernels(lambda: [t.view(12).t() for t in tensors]) == {}
    assert sum(count_kernels(lambda: torch.cat([t.reshape(-1) for t in tensors])).values()) == 1


def test_a_multi_tensor_op_that_loops_counts_a_kernel_per_tensor() -> None:
    tensors = [torch.randn(4, 3) for _ in range(5)]
    columns = [torch.rand(4, 1) for _ in range(5)]  # per-row factors: no fused multi-tensor path
    counted = count_kernels(lambda: torch._foreach_mul_(tensors, columns))
    assert sum(counted.values()) == 5
