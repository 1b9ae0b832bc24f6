from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lrsearch.engine.data import load_blobs
from lrsearch.engine.models import MLP, StackedModel
from lrsearch.engine.modules import ModuleModel
from lrsearch.engine.networks import blobs_mlp, lenet
from lrsearch.engine.plain import plain_module
from tests.conftest import tiny_image_problem


def stacked(model: StackedModel, members: int, seed: int = 0) -> tuple[list[list[torch.Tensor]], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    inits = [model.init(g) for _ in range(members)]
    return inits, [torch.stack([init[i] for init in inits]) for i in range(len(inits[0]))]


def plain_with(model: StackedModel, init: list[torch.Tensor]) -> torch.nn.Module:
    module = plain_module(model)
    with torch.no_grad():
        for param, value in zip(module.parameters(), init, strict=True):
            param.copy_(value.reshape(param.shape))
    return module


@pytest.mark.parametrize("batch", [32, 20])
def test_mlp_written_out_backward_matches_autograd(batch: int) -> None:
    model, data = MLP(), load_blobs()
    inits, params = stacked(model, members=4)
    idx = torch.stack([torch.randperm(500, generator=torch.Generator().manual_seed(m))[:batch] for m in range(4)])
    loss_sum, correct, grads = model.loss_and_grads(params, *model.batch(data.train, idx))
    for m in range(4):
        module = plain_with(model, inits[m])
        logits = module(data.train.x[idx[m]])
        loss = F.cross_entropy(logits, data.train.y[idx[m]])
        loss.backward()
        assert float(loss_sum[m]) == pytest.approx(float(loss.detach()) * batch, rel=1e-5)
        assert int(correct[m]) == int((logits.argmax(1) == data.train.y[idx[m]]).sum())
        for param, grad in zip(module.parameters(), grads, strict=True):
            torch.testing.assert_close(grad[m].reshape(param.shape), param.grad, rtol=1e-4, atol=1e-6)


def test_mlp_init_is_he_uniform_then_glorot_with_zero_biases() -> None:
    w1, b1, w2, b2 = MLP().init(torch.Generator().manual_seed(0))
    assert w1.shape == (50, 2) and float(w1.abs().max()) <= math.sqrt(6 / 2)
    assert float(w1.abs().max()) > 0.8 * math.sqrt(6 / 2)  # fills its range: not a narrower init
    assert w2.shape == (3, 50) and float(w2.abs().max()) <= math.sqrt(6 / 53)
    assert not b1.any() and not b2.any()


@pytest.mark.parametrize(
    "model",
    [MLP(), ModuleModel(lenet, strategy="loop"), ModuleModel(lenet, strategy="vmap")],
    ids=["mlp", "lenet-loop", "lenet-vmap"],
)
def test_evaluate_matches_each_member_alone(model: StackedModel) -> None:
    split = load_blobs().val if isinstance(model, MLP) else tiny_image_problem().dataset.val
    inits, params = stacked(model, members=3)
    loss, accuracy = model.evaluate(params, split)
    for m in range(3):
        with torch.no_grad():
            logits = plain_with(model, inits[m])(split.x)
        assert float(loss[m]) == pytest.approx(float(F.cross_entropy(logits, split.y)), rel=1e-5)
        assert float(accuracy[m]) == pytest.approx(float((logits.argmax(1) == split.y).float().mean()))


def test_lenet_strategies_agree() -> None:
    problem = tiny_image_problem()
    results = {}
    for strategy in ("loop", "vmap"):
        model = ModuleModel(lenet, strategy=strategy)
        _, params = stacked(model, members=3)
        idx = torch.stack([torch.randperm(96, generator=torch.Generator().manual_seed(m))[:32] for m in range(3)])
        leaves = [p.clone().requires_grad_() for p in params]
        results[strategy] = model.loss_and_grads(leaves, *model.batch(problem.dataset.train, idx))
    loop, batched = results["loop"], results["vmap"]
    torch.testing.assert_close(loop[0], batched[0], rtol=1e-5, atol=1e-5)
    assert torch.equal(loop[1], batched[1])
    for a, b in zip(loop[2], batched[2], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_the_mlp_fast_path_starts_from_the_module_s_own_parameters() -> None:
    w1, b1, w2, b2 = MLP().init(torch.Generator().manual_seed(7))
    module = ModuleModel(blobs_mlp).init(torch.Generator().manual_seed(7))
    for fast, generic in zip([w1, b1, w2, b2], module, strict=True):
        assert torch.equal(fast.reshape(generic.shape), generic)
