from __future__ import annotations

import numpy as np
import pytest
import schedulefree
import torch

from lrsearch.engine.flat import FlatLayout
from lrsearch.engine.kernels import count_kernels
from lrsearch.engine.models import MLP, StackedModel
from lrsearch.engine.modules import ModuleModel
from lrsearch.engine.networks import lenet
from lrsearch.engine.optim import OPTIMIZERS, create_optimizer, optimizer_settings
from lrsearch.errors import ConfigError

# Per optimizer: each member's settings and the torch.optim constructor that should give the same numbers.
MEMBERS = {
    "sgd": [
        ({}, lambda p, lr: torch.optim.SGD(p, lr=lr)),
        ({"momentum": 0.9}, lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9)),
        ({"momentum": 0.5, "nesterov": True}, lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.5, nesterov=True)),
        (
            {"weight_decay": 0.1, "momentum": 0.3},
            lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.3, weight_decay=0.1),
        ),
    ],
    "rmsprop": [
        ({}, lambda p, lr: torch.optim.RMSprop(p, lr=lr)),
        ({"alpha": 0.9, "eps": 1e-7}, lambda p, lr: torch.optim.RMSprop(p, lr=lr, alpha=0.9, eps=1e-7)),
        (
            {"momentum": 0.8, "weight_decay": 0.01},
            lambda p, lr: torch.optim.RMSprop(p, lr=lr, momentum=0.8, weight_decay=0.01),
        ),
    ],
    "adagrad": [
        ({}, lambda p, lr: torch.optim.Adagrad(p, lr=lr)),
        ({"eps": 1e-7, "weight_decay": 0.05}, lambda p, lr: torch.optim.Adagrad(p, lr=lr, eps=1e-7, weight_decay=0.05)),
    ],
    "adam": [
        ({}, lambda p, lr: torch.optim.Adam(p, lr=lr)),
        (
            {"beta1": 0.5, "beta2": 0.9, "eps": 1e-6},
            lambda p, lr: torch.optim.Adam(p, lr=lr, betas=(0.5, 0.9), eps=1e-6),
        ),
        ({"weight_decay": 0.1}, lambda p, lr: torch.optim.Adam(p, lr=lr, weight_decay=0.1)),
    ],
    "adamw": [
        ({}, lambda p, lr: torch.optim.AdamW(p, lr=lr)),
        (
            {"weight_decay": 0.3, "beta1": 0.8},
            lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=0.3, betas=(0.8, 0.999)),
        ),
    ],
    "nadamw": [
        ({}, lambda p, lr: torch.optim.NAdam(p, lr=lr, weight_decay=0.01, decoupled_weight_decay=True)),
        (
            {"weight_decay": 0.1, "beta1": 0.8, "momentum_decay": 0.01},
            lambda p, lr: torch.optim.NAdam(
                p, lr=lr, betas=(0.8, 0.999), weight_decay=0.1, momentum_decay=0.01, decoupled_weight_decay=True
            ),
        ),
    ],
    # The schedule-free ones against the schedulefree package (its warmup and its weighting included).
    "schedulefree_sgd": [
        ({}, lambda p, lr: schedulefree.SGDScheduleFree(p, lr=lr)),
        (
            {"momentum": 0.5, "weight_decay": 0.01, "warmup_steps": 5},
            lambda p, lr: schedulefree.SGDScheduleFree(p, lr=lr, momentum=0.5, weight_decay=0.01, warmup_steps=5),
        ),
        (
            {"r": 1.0, "weight_lr_power": 1.0},
            lambda p, lr: schedulefree.SGDScheduleFree(p, lr=lr, r=1.0, weight_lr_power=1.0),
        ),
    ],
    "schedulefree_adamw": [
        ({}, lambda p, lr: schedulefree.AdamWScheduleFree(p, lr=lr)),
        (
            {"beta1": 0.8, "beta2": 0.99, "weight_decay": 0.1, "warmup_steps": 6},
            lambda p, lr: schedulefree.AdamWScheduleFree(p, lr=lr, betas=(0.8, 0.99), weight_decay=0.1, warmup_steps=6),
        ),
    ],
}

SHAPES = [(3, 4), (4,), (2, 3, 3)]


def run_both(name: str, epochs: int = 3, n_updates: int = 4) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    members = MEMBERS[name]
    count = len(members)
    rng = torch.Generator().manual_seed(0)
    init = [torch.randn(count, *shape, generator=rng, dtype=torch.float64).float() for shape in SHAPES]
    layout = FlatLayout(SHAPES)
    flat = layout.pack(init).clone()
    optimizer = create_optimizer(name, [optimizer_settings(name, s) for s, _ in members], flat)
    singles = [[t[m].clone().requires_grad_() for t in init] for m in range(count)]
    rates = np.geomspace(0.05, 0.01, epochs * n_updates).reshape(epochs, n_updates)
    references = [make(singles[m], 1.0) for m, (_, make) in enumerate(members)]
    for reference in references:
        if hasattr(reference, "train"):  # schedule-free: the parameters hold y while training
            reference.train()
    for epoch in range(epochs):
        # Members get different rates: member m at (m + 1) times the base table.
        lr = np.stack([rates[epoch] * (m + 1) for m in range(count)])
        optimizer.begin_epoch(lr, np.full(count, epoch * n_updates))
        for b in range(n_updates):
            grads = [torch.randn(count, *shape, generator=rng) for shape in SHAPES]
            for m in range(count):
                for group in references[m].param_groups:
                    group["lr"] = lr[m, b]
                for p, g in zip(singles[m], grads, strict=True):
                    p.grad = g[m].clone()
                references[m].step()
            optimizer.step(flat, layout.pack(grads), b)
    if hasattr(references[0], "eval"):  # and x, which a member is evaluated at
        for reference in references:
            reference.eval()
        return layout.views(optimizer.evaluation_point(flat)), singles
    return layout.views(flat), singles


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_member_matches_torch_optim(name: str) -> None:
    stacked, singles = run_both(name)
    for m, single in enumerate(singles):
        for p_stacked, p_single in zip(stacked, single, strict=True):
            torch.testing.assert_close(p_stacked[m], p_single.detach(), rtol=1e-5, atol=1e-6)


def test_select_and_extend_keep_state_rows_with_their_members() -> None:
    params = torch.zeros(3, 2)
    optimizer = create_optimizer("sgd", [optimizer_settings("sgd", {"momentum": m}) for m in (0.1, 0.5, 0.9)], params)
    optimizer.state["momentum_buffer"] += torch.tensor([[1.0], [2.0], [3.0]])
    optimizer.select([2, 0])
    assert optimizer.host["momentum"].tolist() == pytest.approx([0.9, 0.1])
    assert optimizer.state["momentum_buffer"][:, 0].tolist() == [3.0, 1.0]
    optimizer.extend([optimizer_settings("sgd", {"momentum": 0.7})], torch.ones(1, 2))
    assert optimizer.host["momentum"].tolist() == pytest.approx([0.9, 0.1, 0.7])
    assert optimizer.state["momentum_buffer"][:, 0].tolist() == [3.0, 1.0, 0.0]


def test_a_schedule_free_member_s_z_starts_at_its_parameters_and_its_running_sums_follow_it() -> None:
    settings = [optimizer_settings("schedulefree_sgd", {"momentum": m}) for m in (0.5, 0.9)]
    params = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    optimizer = create_optimizer("schedulefree_sgd", settings, params)
    assert torch.equal(optimizer.state["z"], params)
    optimizer.begin_epoch(np.array([[0.1], [0.2]]), np.zeros(2, dtype=int))
    assert optimizer.running["weight_sum"].tolist() == pytest.approx([0.01, 0.04])
    optimizer.select([1])
    optimizer.extend([optimizer_settings("schedulefree_sgd", {})], torch.tensor([[5.0, 6.0]]))
    assert optimizer.state["z"].tolist() == [[3.0, 4.0], [5.0, 6.0]]
    assert optimizer.running["weight_sum"].tolist() == pytest.approx([0.04, 0.0])
    assert optimizer.running["lr_max"].tolist() == pytest.approx([0.2, -1.0])


@pytest.mark.parametrize(
    ("name", "given", "message"),
    [
        ("sgdx", {}, "unknown optimizer 'sgdx'; choose from sgd"),
        ("adam", {"momentum": 0.9}, "optimizer adam has no parameter 'momentum'"),
        ("sgd", {"momentum": 1.0}, r"momentum must be a number in \[0, 1\) but got 1.0"),
        ("sgd", {"momentum": -0.1}, r"momentum must be a number in \[0, 1\)"),
        ("sgd", {"nesterov": True}, "nesterov needs momentum > 0"),
        ("sgd", {"nesterov": "yes"}, "nesterov must be true or false"),
        ("rmsprop", {"alpha": "x"}, r"alpha must be a number in \[0, 1\) but got 'x'"),
        ("adamw", {"weight_decay": -1.0}, r"weight_decay must be a number in \[0, 100\]"),
        ("schedulefree_sgd", {"momentum": 0.0}, r"schedulefree_sgd needs momentum > 0"),
        ("schedulefree_adamw", {"beta1": 0.0}, r"schedulefree_adamw needs beta1 > 0"),
        ("nadamw", {"momentum_decay": -0.1}, r"momentum_decay must be a number in \[0, 1\]"),
    ],
)
def test_bad_settings_name_the_problem(name: str, given: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        optimizer_settings(name, given)


#: Kernels per optimizer step on the flat buffer, whatever the population or the network: (momentum for SGD).
STEP_KERNELS = {
    "sgd": 3,
    "rmsprop": 6,
    "adagrad": 5,
    "adam": 8,
    "adamw": 9,
    "nadamw": 11,
    "schedulefree_sgd": 3,
    "schedulefree_adamw": 9,
}


def _stacked(model: StackedModel, members: int) -> list[torch.Tensor]:
    inits = [model.init(torch.Generator().manual_seed(m)) for m in range(members)]
    return [torch.stack([init[i] for init in inits]) for i in range(model.trainable)]


@pytest.mark.parametrize("members", [4, 64])
@pytest.mark.parametrize("network", ["lenet", "mlp"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_an_update_is_a_few_kernels_whatever_the_population_and_the_network(
    name: str, network: str, members: int
) -> None:
    """LeNet's ten tensors (its gradients as autograd gives them) and the blobs MLP's four: the same few
    kernels per step (before the flat buffer, a step was a kernel per tensor per op: 30 for LeNet's SGD)."""
    model: StackedModel = ModuleModel(lenet) if network == "lenet" else MLP()
    layout = FlatLayout([shape for _, shape in model.shapes[: model.trainable]])
    stacked = [t.requires_grad_(model.needs_autograd) for t in _stacked(model, members)]
    if network == "lenet":
        x, y = torch.randn(members, 8, 1, 28, 28), torch.randint(0, 10, (members, 8))
    else:
        x, y = torch.randn(members, 2, 8), torch.eye(3)[torch.randint(0, 3, (members, 8))].transpose(1, 2)
    _, _, grads = model.loss_and_grads(stacked, x, y)
    flat = layout.pack([t.detach() for t in stacked]).contiguous()
    settings = optimizer_settings(name, {"momentum": 0.9} if name == "sgd" else {})
    optimizer = create_optimizer(name, [settings] * members, flat)
    optimizer.begin_epoch(np.full((members, 1), 0.01), np.zeros(members, dtype=int))
    scratch = layout.pack(grads)
    with torch.no_grad():
        step = count_kernels(lambda: optimizer.step(flat, scratch, 0))
    assert sum(step.values()) == STEP_KERNELS[name], step
    # Packing the gradients: one concatenation, and a copy of each one autograd gave with other strides.
    strided = sum(not g.is_contiguous() for g in grads)
    assert sum(count_kernels(lambda: layout.pack(grads)).values()) <= 1 + strided
