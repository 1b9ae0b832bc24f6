"""Counting the kernels a piece of code launches: with ``torch.profiler``, the innermost ATen ops that compute
(an op that only makes a view or allocates launches none). On a GPU each is a kernel; a multi-tensor op
that falls back to a loop shows as one op per tensor, as it launches one kernel per tensor. The count is a
property of the code, the same on a CPU."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from torch.profiler import ProfilerActivity, profile

__all__ = ["count_kernels"]

#: Ops that make views, reshape without copying, or allocate: no kernel.
_NO_KERNEL = frozenset(
    f"aten::{name}"
    for name in (
        "_reshape_alias",
        "_unsafe_view",
        "alias",
        "as_strided",
        "detach",
        "empty",
        "empty_like",
        "empty_strided",
        "expand",
        "lift_fresh",
        "narrow",
        "permute",
        "reshape",
        "resolve_conj",
        "resolve_neg",
        "result_type",
        "select",
        "slice",
        "split",
        "split_with_sizes",
        "squeeze",
        "t",
        "transpose",
        "unbind",
        "unsqueeze",
        "view",
    )
)


def count_kernels(run: Callable[[], object]) -> Counter[str]:
    """The kernels one call of ``run`` launches, by op (``run`` is called once before, to warm up)."""
    run()
    with profile(activities=[ProfilerActivity.CPU]) as profiled:
        run()
    return Counter(
        event.name
        for event in profiled.events()
        if event.name.startswith("aten::")
        and event.name not in _NO_KERNEL
        and not any(child.name.startswith("aten::") for child in event.cpu_children)
    )
