"""Networks over stacked parameters: every tensor is [P, ...], row p is member p's.

Members never share a parameter, and no op reduces across members except sums of independent per-member
losses (whose gradient w.r.t. each member is 1 whatever the others hold), so a NaN in one member cannot
reach another.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from lrsearch.trainers.data import Split

__all__ = ["MLP", "LeNet", "StackedModel"]

Params = list[torch.Tensor]


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
        self, params: Params, x: torch.Tensor, target: torch.Tensor, seeds: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, Params]:
        """Summed loss [P] and metric [P] (here: the correct count) of the batch, and each member's gradient of
        its mean loss for the ``trainable`` tensors. ``seeds``: each member's seed for the batch's random ops
        (networks without any ignore it)."""
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


def max_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling. Without autograd, as the maximum of four strided views: no argmax indices to
    compute, 5-10x faster than ``max_pool2d`` on a CPU (validation and test passes are all this)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return F.max_pool2d(x, 2)
    return torch.maximum(
        torch.maximum(x[..., ::2, ::2], x[..., ::2, 1::2]), torch.maximum(x[..., 1::2, ::2], x[..., 1::2, 1::2])
    )


def _uniform(shape: Sequence[int], bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1).mul_(bound).float()


class MLP(StackedModel):
    """Seed 000's network: Dense(hidden, relu, he_uniform) -> Dense(classes, glorot_uniform), zero biases.

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
        he = math.sqrt(6.0 / self.inputs)
        glorot = math.sqrt(6.0 / (self.hidden + self.classes))
        return [
            _uniform((self.hidden, self.inputs), he, generator),
            torch.zeros(self.hidden, 1),
            _uniform((self.classes, self.hidden), glorot, generator),
            torch.zeros(self.classes, 1),
        ]

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
        self, params: Params, x: torch.Tensor, target: torch.Tensor, seeds: Sequence[int] | None = None
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

class LeNet(StackedModel):
    """d2l's modern LeNet: Conv(6, 5x5, pad 2) ReLU MaxPool -> Conv(16, 5x5) ReLU MaxPool -> 120 -> 84 -> 10.

    ``init``: PyTorch's default layer initialisation, or d2l's (Xavier-uniform weights, biases left at
    PyTorch's default). Pooling runs before the ReLU (they commute, and the ReLU then
    touches a quarter of the values). ``strategy`` says how members share the convolutions:
    ``loop`` runs each member's convolutions in turn (fastest on a CPU, which is compute-bound at this
    size: a grouped convolution is slower there); ``grouped`` runs all members as one grouped convolution
    (one kernel launch for all members, for GPUs, where this network is launch-bound).
    """

    eval_chunk = 1000

    def __init__(self, strategy: str = "loop", *, init: str = "pytorch") -> None:
        if strategy not in ("loop", "grouped"):
            raise ValueError(f"strategy must be 'loop' or 'grouped' but got {strategy!r}")
        if init not in ("pytorch", "xavier"):
            raise ValueError(f"init must be 'pytorch' or 'xavier' but got {init!r}")
        self.strategy, self.init_scheme = strategy, init
        self.shapes = [
            ("conv1.weight", (6, 1, 5, 5)), ("conv1.bias", (6,)),
            ("conv2.weight", (16, 6, 5, 5)), ("conv2.bias", (16,)),
            ("fc1.weight", (120, 400)), ("fc1.bias", (120,)),
            ("fc2.weight", (84, 120)), ("fc2.bias", (84,)),
            ("fc3.weight", (10, 84)), ("fc3.bias", (10,)),
        ]  # fmt: skip

    def init(self, generator: torch.Generator) -> Params:
        params = []
        for name, shape in self.shapes:
            # nn.Conv2d / nn.Linear defaults: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)), bias likewise.
            weight_shape = shape if name.endswith("weight") else dict(self.shapes)[name.replace("bias", "weight")]
            fan_in = math.prod(weight_shape[1:])
            bound = 1.0 / math.sqrt(fan_in)
            if self.init_scheme == "xavier" and name.endswith("weight"):
                fan_out = weight_shape[0] * math.prod(weight_shape[2:])
                bound = math.sqrt(6.0 / (fan_in + fan_out))
            params.append(_uniform(shape, bound, generator))
        return params

    def batch(self, split: Split, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return split.x[idx], split.y[idx]

    def _features(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        """[P, B, 400] from images [P, B, 1, 28, 28]."""
        c1w, c1b, c2w, c2b = params[:4]
        members, batch = x.shape[:2]
        if self.strategy == "loop":
            features = []
            for m in range(members):
                # With one input channel the layout is ambiguous and conv1 stays NCHW; a channels-last conv2
                # weight makes conv2 and its pooling run channels-last (its pooling 6x faster).
                h = max_pool2x2(F.conv2d(x[m], c1w[m], c1b[m], padding=2)).relu()
                conv2 = c2w[m].contiguous(memory_format=torch.channels_last)
                h = max_pool2x2(F.conv2d(h, conv2, c2b[m])).relu()
                features.append(h.flatten(1))
            return torch.stack(features)
        # Members as channel groups: [B, P, 28, 28] -> [B, P*6, ...] -> [B, P*16, 5, 5].
        h = x.transpose(0, 1).reshape(batch, members, 28, 28)
        h = max_pool2x2(F.conv2d(h, c1w.flatten(0, 1), c1b.flatten(), padding=2, groups=members)).relu()
        h = max_pool2x2(F.conv2d(h, c2w.flatten(0, 1), c2b.flatten(), groups=members)).relu()
        return h.reshape(batch, members, 400).transpose(0, 1)

    def logits(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        h = self._features(params, x)
        f1w, f1b, f2w, f2b, f3w, f3b = params[4:]
        h = torch.baddbmm(f1b.unsqueeze(1), h, f1w.transpose(1, 2)).relu()
        h = torch.baddbmm(f2b.unsqueeze(1), h, f2w.transpose(1, 2)).relu()
        return torch.baddbmm(f3b.unsqueeze(1), h, f3w.transpose(1, 2))
