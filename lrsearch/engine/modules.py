"""Any ``torch.nn.Module`` as a population: its parameters and buffers stacked [P, ...], the module itself
the one forward pass (``torch.func.functional_call``, batched by ``vmap`` or looped member by member).

Two strategies: ``vmap`` calls the module once for all members (one launch per op: what a GPU wants, where
small networks are launch-bound, and on a CPU 15x faster than the loop for the blobs MLP); ``loop`` calls it
once per member over its rows of the stacked tensors (the CPU's choice for a convolutional module: vmap turns
conv2d into a grouped convolution, 2-10x slower there). Both give each member the numbers it would get
trained alone. Buffers (BatchNorm's running statistics) are per member and
updated in place through the member's rows; training runs in ``train()`` mode, evaluation in ``eval()``.
Random ops (dropout) draw, member by member under ``loop``, from a stream seeded by the member's own seed
and update number, so a member's masks do not depend on who else trains; under ``vmap`` each member still
gets masks of its own, but drawn for the population at once (so ``auto`` loops over a random module on a
CPU, and on a GPU takes vmap's speed over that reproducibility).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from lrsearch.engine.data import Split
from lrsearch.engine.devices import free_memory, manual_seed
from lrsearch.engine.models import Params, Seeds, StackedModel
from lrsearch.engine.networks import seeded
from lrsearch.errors import ConfigError, one_line

__all__ = [
    "LOSSES",
    "METRICS",
    "STRATEGIES",
    "ModuleModel",
    "PerExample",
    "eval_chunk",
    "loss_function",
    "metric_function",
]

#: (output [N, ...], target [N, ...]) -> one value per example [N].
PerExample = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

STRATEGIES = ("auto", "loop", "vmap")
_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _mean_per_example(values: torch.Tensor) -> torch.Tensor:
    return values.flatten(1).mean(1) if values.dim() > 1 else values


LOSSES: dict[str, PerExample] = {
    "cross_entropy": lambda out, y: F.cross_entropy(out, y, reduction="none"),
    "mse": lambda out, y: _mean_per_example(F.mse_loss(out, y, reduction="none")),
    "mae": lambda out, y: _mean_per_example(F.l1_loss(out, y, reduction="none")),
    "huber": lambda out, y: _mean_per_example(F.huber_loss(out, y, reduction="none")),
}

#: Per-example metrics; "loss" is the problem's own loss (and then lower is better).
METRICS: dict[str, PerExample] = {
    "accuracy": lambda out, y: (out.argmax(-1) == y).to(out.dtype),
}


def eval_chunk(preferred: int, example_bytes: int, free_bytes: int) -> int:
    """Examples per evaluation call: ``preferred``, or as many as fit in half of ``free_bytes`` at
    ``example_bytes`` each (the whole population's activations for one example); at least one."""
    return max(1, min(preferred, free_bytes // 2 // max(1, example_bytes)))


def loss_function(loss: str | PerExample) -> PerExample:
    """A loss by name, or the caller's own per-example function."""
    if callable(loss):
        return loss
    if loss not in LOSSES:
        raise ConfigError(f"loss must be one of {', '.join(LOSSES)} or a callable but got {loss!r}")
    return LOSSES[loss]


def metric_function(metric: str | PerExample, loss: PerExample) -> PerExample:
    if callable(metric):
        return metric
    if metric == "loss":
        return loss
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {', '.join([*METRICS, 'loss'])} or a callable but got {metric!r}")
    return METRICS[metric]


class ModuleModel(StackedModel):
    """A population of ``factory()`` modules. ``factory`` makes a fresh module; each member's is made
    under its own seed (so its initialisation is the module's own, as it would be trained alone)."""

    def __init__(
        self,
        factory: Callable[[], nn.Module],
        *,
        loss: str | PerExample = "cross_entropy",
        metric: str | PerExample = "accuracy",
        strategy: Literal["auto", "loop", "vmap"] = "auto",
        device: torch.device | str = "cpu",
        eval_chunk: int | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)} but got {strategy!r}")
        device = torch.device(device)
        self.factory = factory
        module = seeded(factory, 0)
        # auto: vmap, checked against the loop on its first batch and falling back to it; but the loop for a
        # convolutional module on a CPU (measured: vmap's grouped convolutions are 2-10x slower there).
        self.auto = strategy == "auto"
        convolutional = any(isinstance(m, _CONVOLUTIONS) for m in module.modules())
        self.strategy = ("loop" if device.type == "cpu" and convolutional else "vmap") if self.auto else strategy
        self._checked = self.strategy == "loop"
        # Examples per evaluation call, at most: on a CPU small chunks keep each layer's activations in cache
        # (LeNet's validation runs 1.9x faster in chunks of 256 than of 2048); fewer where the population's
        # activations would not fit (``eval_chunk``).
        self.eval_chunk = eval_chunk or (4096 if device.type == "cuda" else 256)
        self._sized = eval_chunk is None
        self._example_bytes: int | None = None
        self.loss = loss_function(loss)
        self.metric = metric_function(metric, self.loss)
        self._random: bool | None = None  # whether training draws random numbers: found on the first batch
        self.name = type(module).__name__
        self.param_names = [name for name, _ in module.named_parameters()]
        self.buffer_names = [name for name, _ in module.named_buffers()]
        self.shapes = [(name, tuple(t.shape)) for name, t in (*module.named_parameters(), *module.named_buffers())]
        self._trainable = len(self.param_names)
        # The module the members' tensors are called through; its own tensors are never read.
        self.module = module.to(device)

    @property
    def trainable(self) -> int:
        return self._trainable

    def init(self, generator: torch.Generator) -> Params:
        module = seeded(self.factory, generator.initial_seed())
        return [t.detach() for t in (*module.parameters(), *module.buffers())]

    def batch(self, split: Split, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return split.x[idx], split.y[idx]

    def _state(self, tensors: Sequence[torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        params = dict(zip(self.param_names, tensors[: self._trainable], strict=True))
        return params, dict(zip(self.buffer_names, tensors[self._trainable :], strict=True))

    def outputs(
        self,
        tensors: Sequence[torch.Tensor],
        x: torch.Tensor,
        *,
        shared: bool = False,
        seeds: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """[P, B, ...] outputs for inputs x [P, B, ...] (or [B, ...] for every member when ``shared``).
        ``seeds``: each member's seed for this call's random ops (training); None draws from torch's own."""
        if not self._checked:
            self._check_vmap(tensors, x if shared else x[0])
        if self.strategy == "vmap":
            if seeds is not None:
                manual_seed(hash(tuple(seeds)) % (1 << 63), x.device)  # ints hash the same in every process
            return self._batched(tensors, x, shared)
        return self._looped(tensors, x, shared, seeds)

    def _batched(self, tensors: Sequence[torch.Tensor], x: torch.Tensor, shared: bool) -> torch.Tensor:
        call = vmap(
            lambda p, b, xs: functional_call(self.module, (p, b), (xs,)),
            in_dims=(0, 0, None if shared else 0),
            randomness="different",
        )
        return call(*self._state(tensors), x)

    def _looped(
        self, tensors: Sequence[torch.Tensor], x: torch.Tensor, shared: bool, seeds: Sequence[int] | None
    ) -> torch.Tensor:
        # One unbind per tensor: its backward is one stack of the members' gradients, where indexing each
        # member would fill a zero tensor of the whole population's size per member.
        members = list(zip(*(t.unbind(0) for t in tensors), strict=True))
        inputs = x.unbind(0) if not shared else [x] * len(members)
        outputs = []
        for m, (state, xs) in enumerate(zip(members, inputs, strict=True)):
            if seeds is not None:
                manual_seed(seeds[m], xs.device)
            outputs.append(functional_call(self.module, self._state(state), (xs,)))
        return torch.stack(outputs)

    def _draws_randomness(self, tensors: Sequence[torch.Tensor], x: torch.Tensor) -> bool:
        """Whether the module's training forward draws random numbers (dropout): two members' copies on a
        few examples of ``x``, under two seeds, once. Only then does a batch need each member's seed."""
        if self._random is None:
            copies, training = [t[:2].detach() for t in tensors], self.module.training
            sample = x[:4].unsqueeze(0).expand(len(copies[0]), *x[:4].shape)
            try:
                with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
                    self.module.train(True)
                    first, second = (self._looped([c.clone() for c in copies], sample, False, [s, s]) for s in (1, 2))
            finally:
                self.module.train(training)
            self._random = not torch.equal(first, second)
        return self._random

    def _check_vmap(self, tensors: Sequence[torch.Tensor], x: torch.Tensor) -> None:
        """Run two members both ways on a few examples of ``x``, on copies of their state. An op without a vmap
        rule, or a forward whose in-place tricks vmap gets wrong, means the loop (where the strategy was left
        to lrsearch) or one clear error (where vmap was asked for). So does, on a CPU and left to lrsearch, a
        forward that draws random numbers in training: vmap draws them for the population at once, so a
        member's masks would depend on who else trains."""
        self._checked = True
        copies, training = [t[:2].detach() for t in tensors], self.module.training
        sample = x[:4].unsqueeze(0).expand(len(copies[0]), *x[:4].shape)  # batched as in training, not shared
        try:
            with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
                self.module.train(True)
                self._batched([c.clone() for c in copies], sample, False)
                self.module.train(False)
                batched = self._batched([c.clone() for c in copies], sample, False)
                looped = self._looped([c.clone() for c in copies], sample, False, None)
            if not torch.allclose(batched, looped, rtol=1e-4, atol=1e-5):
                raise RuntimeError("its outputs under vmap differ from its outputs member by member")
        except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
            if not self.auto:
                raise ConfigError(
                    f"{self.name} cannot be trained with strategy 'vmap' ({one_line(exc)}); use 'loop'"
                ) from None
            self.strategy = "loop"
        else:
            if self.auto and x.device.type == "cpu" and self._draws_randomness(tensors, x):
                self.strategy = "loop"
        finally:
            self.module.train(training)

    def logits(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(params, x)

    def loss_and_grads(
        self, params: Params, x: torch.Tensor, target: torch.Tensor, seeds: Seeds | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, Params]:
        members, batch = target.shape[:2]
        self.module.train()
        if seeds is None or not self._draws_randomness(params, x[0]):
            out = self.outputs(params, x)
        else:  # seeded draws, and the caller's own random state left as it was
            with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
                out = self.outputs(params, x, seeds=seeds())
        losses = self.loss(out.flatten(0, 1), target.flatten(0, 1)).view(members, batch)
        grads = list(torch.autograd.grad(losses.sum() / batch, params[: self.trainable]))
        with torch.no_grad():
            metric = self.metric(out.flatten(0, 1), target.flatten(0, 1)).view(members, batch).sum(1)
        return losses.detach().sum(1), metric, grads

    def example_bytes(self, params: Params, x: torch.Tensor) -> int:
        """What one member's evaluation of one example of ``x`` holds in activations (every leaf module's
        output, twice over for what a forward computes between them), measured once."""
        if self._example_bytes is None:
            sizes: list[int] = []

            def record(module: nn.Module, inputs: object, output: object) -> None:
                if isinstance(output, torch.Tensor):
                    sizes.append(output.numel() * output.element_size())

            leaves = [m for m in self.module.modules() if next(m.children(), None) is None]
            hooks = [m.register_forward_hook(record) for m in leaves]
            try:
                with torch.no_grad():
                    self._looped([t[:1] for t in params], x[:1].unsqueeze(0), False, None)
            finally:
                for hook in hooks:
                    hook.remove()
            self._example_bytes = 2 * sum(sizes)
        return self._example_bytes

    def chunk_for(self, params: Params, split: Split) -> int:
        """Examples per evaluation call for this population: ``eval_chunk``, or fewer where the members'
        activations for it would take more than half the device's free memory (LeNet at P = 1024 in chunks
        of 1,000 would need about 40 GB for its first layer's output alone)."""
        if not self._sized:
            return self.eval_chunk
        members = params[0].shape[0]
        return eval_chunk(self.eval_chunk, members * self.example_bytes(params, split.x), free_memory(split.x.device))

    @torch.no_grad()
    def evaluate(self, params: Params, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        members = params[0].shape[0]
        self.module.eval()
        chunk = self.chunk_for(params, split)
        loss = torch.zeros(members, device=split.y.device)
        metric = torch.zeros(members, device=split.y.device)
        for start in range(0, len(split), chunk):
            x, y = split.x[start : start + chunk], split.y[start : start + chunk]
            out = self.outputs(params, x, shared=True).flatten(0, 1)
            target = y.unsqueeze(0).expand(members, *y.shape).flatten(0, 1)
            loss += self.loss(out, target).view(members, -1).sum(1)
            metric += self.metric(out, target).view(members, -1).sum(1)
        return loss / len(split), metric / len(split)
