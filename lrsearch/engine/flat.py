"""A population's trained tensors as views of one flat [P, D] buffer, member p's row p: an optimizer then
updates the whole population with a handful of whole-buffer ops (one kernel each on a GPU) instead of one
per tensor, and the gradients come packed into one [P, D] tensor to match.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["FlatLayout"]


class FlatLayout:
    """Where each of a list of tensors [P, *shape] sits in a row of the flat buffer."""

    def __init__(self, shapes: Sequence[tuple[int, ...]]) -> None:
        self.shapes = [tuple(s) for s in shapes]
        sizes = [math.prod(s) for s in self.shapes]
        self.offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]

    @property
    def width(self) -> int:
        """D: the numbers a member has."""
        return self.offsets[-1]

    def pack(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """[P, D]: the tensors' rows side by side (one copy; a lone tensor is only reshaped)."""
        rows = [t.reshape(t.shape[0], -1) for t in tensors]
        return rows[0] if len(rows) == 1 else torch.cat(rows, dim=1)

    def views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """The tensors as views of ``flat``: writing to ``flat`` writes to them, and back."""
        members = flat.shape[0]
        return [
            flat[:, start:end].view(members, *shape)
            for start, end, shape in zip(self.offsets[:-1], self.offsets[1:], self.shapes, strict=True)
        ]
