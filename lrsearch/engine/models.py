"""Networks over stacked parameters: every tensor is [P, ...], row p is member p's.

Members never share a parameter, and no op reduces across members except sums of independent per-member
losses (whose gradient w.r.t. each member is 1 whatever the others hold), so a NaN in one member cannot
reach another.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from lrsearch.engine.data import Split
from lrsearch.engine.networks import blobs_mlp, seeded

__all__ = ["MLP", "StackedModel"]

Params = list[torch.Tensor]
#: Each member's seed for a batch's random ops, computed only when a network draws any.
Seeds = Callable[[], Sequence[int]]


class StackedModel(ABC):
    """A network evaluated for P members at once."""

    #: (name, per-member shape) of every parameter, in order.
    shapes: list[tuple[str, tuple[int, ...]]]
    #: Whether the parameters must be autograd leaves (models that write their own backward say no).
    needs_autograd: bool = True
    #: Examples per chunk when evaluating a whole split (bounds memory for P members at once).
    eval_chunk: int = 2048

    @property
    def trainable(self) -> int:
        """How many leading tensors of ``init`` are trained; the rest are buffers (state such as BatchNorm's
        running statistics, which moves with its member but has no gradient)."""
        return len(self.shapes)

    @abstractmethod
    def init(self, generator: torch.Generator) -> Params:
        """One member's freshly initialised parameters, then buffers (CPU, unstacked), drawn from
        ``generator``."""

    @abstractmethod
    def batch(self, split: Split, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets for index rows ``idx`` [P, B] (member p's batch is split[idx[p]])."""

    @abstractmethod
    def logits(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """[P, B, classes] for a batch from ``batch``."""

    def loss_and_grads(
        self, params: Params, x: torch.Tensor, target: torch.Tensor, seeds: Seeds | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, Params]:
        """Summed loss [P] and metric [P] (here: the correct count) of the batch, and each member's gradient of
        its mean loss for the ``trainable`` tensors. ``seeds``: gives each member's seed for the batch's random
        ops (networks without any never call it)."""
        logits = self.logits(params, x)
        batch = logits.shape[1]
        losses = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none").view(-1, batch)
        grads = list(torch.autograd.grad(losses.sum() / batch, params))
        with torch.no_grad():
            correct = (logits.argmax(-1) == target).sum(1)
        return losses.detach().sum(1), correct, grads

    @torch.no_grad()
    def evaluate(self, params: Params, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss [P] and metric [P] (here: accuracy) of every member on the whole split (same examples
        for all)."""
        members = params[0].shape[0]
        loss = torch.zeros(members, device=split.y.device)
        correct = torch.zeros(members, device=split.y.device)
        for start in range(0, len(split), self.eval_chunk):
            x, y = split.x[start : start + self.eval_chunk], split.y[start : start + self.eval_chunk]
            logits = self.logits(params, x.unsqueeze(0).expand(members, *x.shape))
            target = y.unsqueeze(0).expand(members, -1)
            loss += F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none").view(members, -1).sum(1)
            correct += (logits.argmax(-1) == target).sum(1)
        return loss / len(split), correct / len(split)


class MLP(StackedModel):
    """A fast path of seed 000's network (``networks.blobs_mlp``), its parameters the module's own.

    Activations are kept feature-major ([P, features, B]): the 3-wide output layer then runs as
    [P, 3, 50] @ [P, 50, B], several times faster on a CPU than [P, B, 50] @ [P, 50, 3]. The backward pass
    is written out: at this size autograd's bookkeeping would cost more than the arithmetic.
    """

    needs_autograd = False

    def __init__(self, inputs: int = 2, hidden: int = 50, classes: int = 3) -> None:
        self.inputs, self.hidden, self.classes = inputs, hidden, classes
        self.shapes = [("w1", (hidden, inputs)), ("b1", (hidden, 1)), ("w2", (classes, hidden)), ("b2", (classes, 1))]
        self._eye: dict[torch.device, torch.Tensor] = {}

    def init(self, generator: torch.Generator) -> Params:
        net = seeded(lambda: blobs_mlp(self.inputs, self.hidden, self.classes), generator.initial_seed())
        first, last = net[0], net[2]
        return [t.detach() for t in (first.weight, first.bias.view(-1, 1), last.weight, last.bias.view(-1, 1))]

    def _one_hot(self, y: torch.Tensor) -> torch.Tensor:
        if y.device not in self._eye:
            self._eye[y.device] = torch.eye(self.classes, device=y.device)
        return self._eye[y.device][y]

    def batch(self, split: Split, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x [P, inputs, B]; the target is one-hot [P, classes, B].
        return split.x[idx].transpose(1, 2), self._one_hot(split.y[idx]).transpose(1, 2)

    @staticmethod
    def _picked_and_hits(log_p: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The true class's log-probability [P, B] and the hits [P]: strictly above every other class (a tie
        is a miss), found by pushing the target's row far down; argmax over the class dim is 20x slower."""
        picked = (log_p * target).sum(1)
        return picked, (picked > torch.add(log_p, target, alpha=-1e30).amax(1)).sum(1)

    def _forward(
        self, params: Params, x: torch.Tensor, *, for_backward: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w1, b1, w2, b2 = params
        z1 = torch.baddbmm(b1, w1, x)
        # Backward needs the pre-activation and the activation both; evaluation may overwrite it (2x faster).
        h = z1.relu() if for_backward else z1.relu_()
        return z1, h, torch.baddbmm(b2, w2, h)

    def logits(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """[P, B, classes] from x [P, B, inputs] (the evaluation layout)."""
        return self._forward(params, x.transpose(1, 2), for_backward=False)[2].transpose(1, 2)

    def loss_and_grads(
        self, params: Params, x: torch.Tensor, target: torch.Tensor, seeds: Seeds | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, Params]:
        w2 = params[2]
        z1, h, logits = self._forward(params, x)
        log_p = logits.log_softmax(1)
        picked, correct = self._picked_and_hits(log_p, target)
        # d(mean loss)/d(logits) = (softmax - one_hot) / B, then back through both layers.
        d_logits = log_p.exp_().sub_(target).div_(x.shape[2])
        d_hidden = torch.ops.aten.threshold_backward(torch.bmm(w2.transpose(1, 2), d_logits), z1, 0.0)
        grads = [
            torch.bmm(d_hidden, x.transpose(1, 2)),
            d_hidden.sum(2, keepdim=True),
            torch.bmm(d_logits, h.transpose(1, 2)),
            d_logits.sum(2, keepdim=True),
        ]
        return -picked.sum(1), correct, grads

    @torch.no_grad()
    def evaluate(self, params: Params, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        members = params[0].shape[0]
        # As few ops as memory allows (each op costs far more in overhead than in arithmetic at this size).
        chunk = max(64, 2**23 // (members * self.hidden))
        loss = torch.zeros(members, device=split.y.device)
        correct = torch.zeros(members, device=split.y.device)
        for start in range(0, len(split), chunk):
            x = split.x[start : start + chunk].t().expand(members, -1, -1)
            target = self._one_hot(split.y[start : start + chunk]).t().expand(members, -1, -1)
            log_p = self._forward(params, x, for_backward=False)[2].log_softmax(1)
            picked, hits = self._picked_and_hits(log_p, target)
            loss -= picked.sum(1)
            correct += hits
        return loss / len(split), correct / len(split)
