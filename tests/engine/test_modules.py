from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from lrsearch.engine import MemberResult, member_seeds, train_population, update_seed
from lrsearch.engine.config import TrainConfig
from lrsearch.engine.data import Dataset, Split
from lrsearch.engine.devices import free_memory
from lrsearch.engine.modules import LOSSES, ModuleModel, eval_chunk
from lrsearch.engine.networks import lenet
from lrsearch.engine.plain import TORCH_OPTIMIZERS
from lrsearch.engine.problems import Problem
from lrsearch.engine.schedules import update_rates
from lrsearch.errors import ConfigError

CPU = torch.device("cpu")
EPOCHS, BATCH = 4, 24


class UserNet(nn.Module):
    """A network nobody on the project wrote: BatchNorm (running statistics), dropout, a residual."""

    def __init__(self, dropout: float = 0.3, outputs: int = 3) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 16, bias=False)  # a bias before BatchNorm has no gradient but float noise
        self.norm = nn.BatchNorm1d(16)
        self.drop = nn.Dropout(dropout)
        self.hidden = nn.Linear(16, 16)
        self.out = nn.Linear(16, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(torch.relu(self.norm(self.inp(x))))
        return self.out(h + torch.tanh(self.hidden(h)))


def toy_split(n: int, seed: int, *, regression: bool = False) -> Split:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    if regression:
        return Split(x, (x[:, :1] * 2 - x[:, 1:2] + 0.1 * torch.randn(n, 1, generator=g)))
    return Split(x, (x[:, 0] > 0).long() + (x[:, 1] + x[:, 2] > 0.5).long())


def toy_problem(model: ModuleModel, *, regression: bool = False) -> Problem:
    train, val = toy_split(150, 0, regression=regression), toy_split(60, 1, regression=regression)
    dataset = Dataset("toy", train=train, val=val, test=val, num_classes=3, source="test")
    return Problem(
        name="toy", dataset=dataset, model=model, batch_size=BATCH, epochs=EPOCHS, restore_best=False, device=CPU
    )


def alone(
    factory: Callable[[], nn.Module], problem: Problem, config: TrainConfig, loss: str = "cross_entropy"
) -> np.ndarray:
    """The member trained by hand in plain PyTorch: its module made under its seed, torch.optim, its data
    order and dropout seeds; per epoch (train loss, train metric, val loss, val metric)."""
    init_seed, data_seed, noise_seed = member_seeds(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        module = factory()
    criterion, train, val = LOSSES[loss], problem.dataset.train, problem.dataset.val
    metric = LOSSES[loss] if loss != "cross_entropy" else (lambda out, y: (out.argmax(-1) == y).float())
    optimizer = TORCH_OPTIMIZERS[config.optimizer](module.parameters(), config.optimizer_settings())
    per_epoch = math.ceil(len(train) / BATCH)
    rates = update_rates(
        config.build_schedule(EPOCHS),
        n_updates=EPOCHS * per_epoch,
        updates_per_epoch=per_epoch,
        unit="epoch",
        decay=config.decay,
    )
    order, update, rows = torch.Generator().manual_seed(data_seed), 0, []
    for _ in range(EPOCHS):
        module.train()
        loss_sum = metric_sum = 0.0
        perm = torch.randperm(len(train), generator=order)
        for start in range(0, len(train), BATCH):
            x, y = train.x[perm[start : start + BATCH]], train.y[perm[start : start + BATCH]]
            for group in optimizer.param_groups:
                group["lr"] = float(rates[update])
            torch.manual_seed(update_seed(noise_seed, update))
            out = module(x)
            losses = criterion(out, y)
            optimizer.zero_grad()
            losses.mean().backward()
            optimizer.step()
            loss_sum += float(losses.detach().sum())
            metric_sum += float(metric(out, y).detach().sum())
            update += 1
        module.eval()
        with torch.no_grad():
            out = module(val.x)
        rows.append(
            [
                loss_sum / len(train),
                metric_sum / len(train),
                float(criterion(out, val.y).mean()),
                float(metric(out, val.y).mean()),
            ]
        )
    return np.array(rows)


def curves(result: MemberResult) -> np.ndarray:
    return np.array([[m.train_loss, m.train_metric, m.val_loss, m.val_metric] for m in result.history])


CONFIGS = [
    TrainConfig(lr=0.05, momentum=0.9, seed=3, schedule="cosine", warmup=1),
    TrainConfig(lr=0.01, optimizer="adam", seed=1),
    TrainConfig(lr=0.01, optimizer="adamw", seed=6, weight_decay=1e-2),
    TrainConfig(lr=0.02, momentum=0.5, nesterov=True, seed=7, weight_decay=1e-3),
    TrainConfig(lr=0.005, optimizer="rmsprop", seed=2),
]


@pytest.mark.parametrize(("strategy", "dropout"), [("loop", 0.3), ("vmap", 0.0)])
def test_each_member_of_a_user_module_equals_it_trained_alone_with_torch_optim(strategy: str, dropout: float) -> None:
    """Loop: the same dropout masks as alone; vmap draws its masks for the population at once, so it is held
    to the lone run with dropout off."""
    factory = lambda: UserNet(dropout)
    problem = toy_problem(ModuleModel(factory, strategy=strategy))
    together = train_population(problem, CONFIGS)
    for config, member in zip(CONFIGS, together, strict=True):
        np.testing.assert_allclose(curves(member), alone(factory, problem, config), rtol=1e-4, atol=1e-5)


def test_batchnorm_statistics_are_per_member_and_evaluation_uses_them() -> None:
    model = ModuleModel(lambda: UserNet(0.0))
    problem = toy_problem(model)
    (a, b) = train_population(problem, CONFIGS[:2])
    assert curves(a)[-1, 2] != curves(b)[-1, 2]
    # Evaluation is in eval mode: the same weights give the same validation figures whatever the batch.
    state = [torch.stack([t, t]) for t in model.init(torch.Generator().manual_seed(5))]
    loss, _ = model.evaluate(state, problem.dataset.val)
    assert float(loss[0]) == float(loss[1])


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_dropout_masks_differ_between_members(strategy: str) -> None:
    model = ModuleModel(lambda: UserNet(0.5), strategy=strategy)
    state = [torch.stack([t, t]) for t in model.init(torch.Generator().manual_seed(5))]
    x = toy_split(8, 2).x
    model.module.train()
    out = model.outputs(state, x, shared=True, seeds=[1, 2])
    assert not torch.equal(out[0], out[1])


@pytest.mark.parametrize(("dropout", "seeded"), [(0.0, False), (0.5, True)])
def test_only_a_module_that_draws_random_numbers_asks_for_its_members_seeds(dropout: float, seeded: bool) -> None:
    model = ModuleModel(lambda: UserNet(dropout), strategy="loop")
    state = [
        torch.stack([t, t]).requires_grad_(i < model.trainable)
        for i, t in enumerate(model.init(torch.Generator().manual_seed(5)))
    ]
    asked: list[int] = []
    x, y = toy_split(8, 2).x, toy_split(8, 2).y
    for _ in range(3):
        model.loss_and_grads(state, torch.stack([x, x]), torch.stack([y, y]), lambda: asked.append(1) or [1, 2])
    assert len(asked) == (3 if seeded else 0)


def test_a_regression_module_trains_on_its_loss() -> None:
    factory = lambda: UserNet(0.0, outputs=1)
    problem = toy_problem(ModuleModel(factory, loss="mse", metric="loss"), regression=True)
    config = TrainConfig(lr=0.01, optimizer="adam", seed=4)
    (member,) = train_population(problem, [config])
    np.testing.assert_allclose(curves(member), alone(factory, problem, config, loss="mse"), rtol=1e-4, atol=1e-5)
    assert curves(member)[-1, 2] < curves(member)[0, 2]


def test_a_diverging_member_of_a_user_module_leaves_the_others_untouched() -> None:
    problem = toy_problem(ModuleModel(lambda: UserNet(0.3)))
    bad = TrainConfig(lr=1e4, momentum=0.9, seed=9)
    with_bad = train_population(problem, [CONFIGS[0], bad, CONFIGS[1]])
    without = train_population(problem, CONFIGS[:2])
    assert with_bad[1].status == "diverged"
    for a, b in zip([with_bad[0], with_bad[2]], without, strict=True):
        np.testing.assert_array_equal(curves(a), curves(b))


class Unbatchable(nn.Module):
    """Reads a value to the host: no vmap rule can run it."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) * (2.0 if float(x.sum()) > 0 else 1.0)


class InPlace(nn.Module):
    """Keeps the last batch's mean in a plain tensor, written in place: shared by every member vmap runs."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 3)
        self.last = torch.zeros(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last.copy_(x.mean(0))
        return self.lin(x)


@pytest.mark.parametrize("module", [Unbatchable, InPlace])
def test_a_module_vmap_cannot_run_is_one_clear_error_and_trains_with_the_loop(module: type[nn.Module]) -> None:
    problem = toy_problem(ModuleModel(module, strategy="vmap"))
    name = module.__name__
    with pytest.raises(ConfigError, match=rf"^{name} cannot be trained with strategy 'vmap' \(.*\); use 'loop'$"):
        train_population(problem, CONFIGS[:2])
    (member,) = train_population(toy_problem(ModuleModel(module, strategy="loop")), CONFIGS[:1])
    assert member.status == "completed"


def test_auto_loops_over_a_convolutional_module_on_a_cpu_and_batches_the_rest() -> None:
    assert ModuleModel(lenet).strategy == "loop"
    assert ModuleModel(UserNet).strategy == "vmap"


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_a_population_of_one_keeps_the_strategy_auto_chose(dropout: float) -> None:
    """The first batch's checks run on as many members as there are (they once assumed two)."""
    model = ModuleModel(functools.partial(UserNet, dropout))
    (member,) = train_population(toy_problem(model), CONFIGS[:1])
    assert member.status == "completed" and model.strategy == ("vmap" if dropout == 0 else "loop")


def test_auto_falls_back_to_the_loop_for_a_module_vmap_cannot_run() -> None:
    model = ModuleModel(Unbatchable)
    assert model.strategy == "vmap"
    (member,) = train_population(toy_problem(model), CONFIGS[:1])
    assert model.strategy == "loop" and member.status == "completed"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"factory": lambda: "not a module"}, "must return a torch.nn.Module but got str"),
        ({"factory": UserNet, "strategy": "fast"}, "strategy must be one of auto, loop, vmap but got 'fast'"),
        ({"factory": UserNet, "loss": "hinge"}, "loss must be one of cross_entropy, mse, mae, huber or a callable"),
        ({"factory": UserNet, "metric": "f1"}, "metric must be one of accuracy, loss or a callable but got 'f1'"),
    ],
)
def test_bad_settings_name_the_bad_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ModuleModel(**kwargs)


def test_members_made_under_their_seeds_get_the_module_s_own_initialisation() -> None:
    model = ModuleModel(UserNet)
    first, again = model.init(torch.Generator().manual_seed(11)), model.init(torch.Generator().manual_seed(11))
    other = model.init(torch.Generator().manual_seed(12))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        reference = UserNet()
    assert all(torch.equal(a, b) for a, b in zip(first, [*reference.parameters(), *reference.buffers()], strict=True))


def test_a_record_reads_each_member_s_parameters_after_every_epoch() -> None:
    problem = dataclasses.replace(
        toy_problem(ModuleModel(lambda: UserNet(0.0))),
        record=lambda p: {"out_bias": p["out.bias"][0], "mean": p["out.weight"].mean()},
    )
    a, b = train_population(problem, CONFIGS[:2])
    for member in (a, b):
        assert [sorted(m.recorded) for m in member.history] == [["mean", "out_bias"]] * EPOCHS
    assert a.history[-1].recorded != b.history[-1].recorded  # each member's own parameters


@pytest.mark.parametrize(
    ("preferred", "example_bytes", "free", "chunk"),
    [(256, 1_000, 10**9, 256), (4096, 10**6, 10**9, 500), (4096, 10**10, 10**9, 1), (1000, 0, 0, 1)],
)
def test_the_evaluation_chunk_fits_half_the_free_memory(
    preferred: int, example_bytes: int, free: int, chunk: int
) -> None:
    assert eval_chunk(preferred, example_bytes, free) == chunk


def test_lenet_s_activations_per_example_are_its_layers_outputs() -> None:
    model = ModuleModel(lenet)
    params = [t.unsqueeze(0) for t in model.init(torch.Generator().manual_seed(0))]
    # conv 6x28x28, its activation, pool 6x14x14, conv 16x10x10, activation, pool 16x5x5, flatten 400,
    # 120 and its activation, 84 and its activation, 10: floats, twice over.
    floats = 2 * 4704 + 1176 + 2 * 1600 + 400 + 400 + 2 * 120 + 2 * 84 + 10
    assert model.example_bytes(params, torch.randn(3, 1, 28, 28)) == 2 * 4 * floats


def test_a_population_too_large_for_memory_evaluates_in_smaller_chunks() -> None:
    model = ModuleModel(lenet)
    one = [t.unsqueeze(0) for t in model.init(torch.Generator().manual_seed(0))]
    split = Split(torch.randn(300, 1, 28, 28), torch.randint(0, 10, (300,)))
    assert model.chunk_for(one, split) == 256
    per_member = model.example_bytes(one, split.x)
    members = free_memory(torch.device("cpu")) // (per_member * 64)  # half the memory holds about 32 examples
    many = [t.expand(members, *t.shape[1:]) for t in one]  # a population by shape only
    assert 16 <= model.chunk_for(many, split) <= 40
    fixed = ModuleModel(lenet, eval_chunk=100)
    assert fixed.chunk_for(many, split) == 100  # a chunk the user chose stands
