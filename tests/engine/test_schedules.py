from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lrsearch.engine.config import TrainConfig
from lrsearch.engine.schedules import (
    SCHEDULES,
    PlateauState,
    coerce_params,
    create_schedule,
    parse_params,
    update_rates,
)
from lrsearch.errors import ConfigError


def torch_rates(make_scheduler, lr: float, steps: int) -> list[float]:
    """Rates PyTorch's scheduler gives at steps 0..steps-1 (one optimizer step between scheduler steps)."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=lr)
    scheduler = make_scheduler(optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


# --- seed 002: TensorFlow's printed ExponentialDecay values --------------------------------------------------


def test_exponential_matches_tensorflow_printed_values() -> None:
    schedule = create_schedule("exponential", 0.01, {"decay_rate": 0.9, "decay_steps": 10})
    printed = [
        0.009895192,
        0.009791483,
        0.009688861,
        0.009587315,
        0.009486833,
        0.009387404,
        0.009289017,
        0.00919166,
        0.009095325,
        0.009,
    ]
    np.testing.assert_allclose(schedule(np.arange(1, 11)), printed, rtol=1e-6)


def test_exponential_staircase_steps_down_once_per_decay_steps() -> None:
    schedule = create_schedule("exponential", 0.01, {"decay_rate": 0.9, "decay_steps": 10, "staircase": True})
    assert schedule(9) == pytest.approx(0.01)
    assert schedule(10) == pytest.approx(0.009)
    assert schedule(25) == pytest.approx(0.01 * 0.81)


def test_rates_advance_with_the_step_counter() -> None:
    # Seed 002's classic bug: a step counter that never advances leaves the rate at lr_0.
    rates = update_rates(
        create_schedule("exponential", 0.01, {"decay_rate": 0.9}), n_updates=5, updates_per_epoch=1, unit="update"
    )
    assert np.all(np.diff(rates) < 0)


# --- seed 000: Keras's time-based decay ------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["inverse_time", "decay"])
def test_keras_decay_figures(via: str) -> None:
    def rates(decay: float) -> np.ndarray:
        if via == "inverse_time":
            schedule = create_schedule("inverse_time", 0.01, {"decay": decay})
            return update_rates(schedule, n_updates=3200, updates_per_epoch=16, unit="update")
        return update_rates(create_schedule("constant", 0.01), n_updates=3200, updates_per_epoch=16, decay=decay)

    fast = rates(1e-1)
    assert fast[50] < 0.002  # "drops below 0.002 within 50 updates"
    assert fast[-1] == pytest.approx(3.1e-05, rel=0.01)  # "ends near 3.1e-05 after 3,200 updates"
    assert rates(1e-4)[-1] == pytest.approx(0.0075, rel=0.02)  # "ends near 0.0075"


# --- seed 001: d2l's schedulers --------------------------------------------------------------------------------


def d2l_cosine_warmup(t: int, base_lr: float, final_lr: float, max_update: int, warmup: int) -> float:
    """d2l-java's CosineWarmupTracker (seed 001), transcribed."""
    if t <= warmup:
        return 0.0 + (base_lr - 0.0) * t / warmup
    if t > max_update:
        return final_lr
    return final_lr + (base_lr - final_lr) / 2 * (1 + math.cos(math.pi * (t - warmup) / (max_update - warmup)))


def test_cosine_matches_d2l() -> None:
    schedule = create_schedule("cosine", 0.5, {"final_lr": 0.01, "total": 20})
    for t in range(30):
        expected = 0.01 if t > 20 else 0.01 + (0.5 - 0.01) / 2 * (1 + math.cos(math.pi * t / 20))
        assert schedule(t) == pytest.approx(expected)


def test_warmup_cosine_matches_d2l() -> None:
    schedule = create_schedule("cosine", 0.5, {"final_lr": 0.01, "total": 20}, warmup=5)
    for t in range(30):
        assert schedule(t) == pytest.approx(d2l_cosine_warmup(t, 0.5, 0.01, 20, 5))


def test_total_defaults_to_the_horizon_and_shrinks_by_warmup() -> None:
    explicit = create_schedule("cosine", 0.5, {"final_lr": 0.01, "total": 20}, warmup=5)
    from_horizon = create_schedule("cosine", 0.5, {"final_lr": 0.01}, warmup=5, horizon=20)
    np.testing.assert_allclose(explicit(np.arange(25)), from_horizon(np.arange(25)))


def test_sqrt_matches_d2l() -> None:
    schedule = create_schedule("sqrt", 0.1)
    assert [schedule(t) for t in range(4)] == pytest.approx([0.1 * (t + 1) ** -0.5 for t in range(4)])


def test_factor_matches_d2l() -> None:
    # d2l's FactorScheduler(factor=0.9, stop_factor_lr=1e-2, base_lr=2): max(stop, lr * factor) each step.
    schedule = create_schedule("factor", 2.0, {"factor": 0.9, "min_lr": 1e-2})
    lr, expected = 2.0, []
    for _ in range(60):
        expected.append(lr)
        lr = max(1e-2, lr * 0.9)
    np.testing.assert_allclose(schedule(np.arange(60)), expected)


def test_step_matches_d2l_multifactor() -> None:
    schedule = create_schedule("step", 0.5, {"milestones": [15, 30], "gamma": 0.5})
    assert (schedule(0), schedule(14), schedule(15), schedule(29), schedule(30)) == pytest.approx(
        (0.5, 0.5, 0.25, 0.25, 0.125)
    )


# --- PyTorch's own schedulers ----------------------------------------------------------------------------------

PYTORCH_CASES = {
    "step": (
        {"milestones": [3, 7, 7], "gamma": 0.5},
        lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[3, 7, 7], gamma=0.5),
        12,
    ),
    "exponential": (
        {"decay_rate": 0.8},
        lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.8),
        12,
    ),
    "cosine": (
        {"total": 10, "final_lr": 0.01},
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.01),
        11,  # PyTorch's cosine turns back up after T_max; ours holds final_lr
    ),
    "polynomial": (
        {"total": 8, "power": 2.0},
        lambda o: torch.optim.lr_scheduler.PolynomialLR(o, total_iters=8, power=2.0),
        12,
    ),
    "cosine_restarts": (
        {"period": 3, "final_lr": 0.001},
        lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=3, eta_min=0.001),
        20,
    ),
    "cosine_restarts_tmult": (
        {"period": 2, "t_mult": 2, "final_lr": 0.0},
        lambda o: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2),
        40,
    ),
    "one_cycle": (
        {"total": 50, "pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0},
        lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o,
            max_lr=0.4,
            total_steps=50,
            pct_start=0.25,
            div_factor=10.0,
            final_div_factor=100.0,
            cycle_momentum=False,
        ),
        50,
    ),
    "cyclic": (
        {"min_lr": 0.01, "step_size_up": 4},
        lambda o: torch.optim.lr_scheduler.CyclicLR(
            o, base_lr=0.01, max_lr=0.4, step_size_up=4, mode="triangular", cycle_momentum=False
        ),
        30,
    ),
}


@pytest.mark.parametrize("case", sorted(PYTORCH_CASES))
def test_matches_pytorch_scheduler(case: str) -> None:
    params, make, steps = PYTORCH_CASES[case]
    name = case.removesuffix("_tmult")
    schedule = create_schedule(name, 0.4, params)
    np.testing.assert_allclose(schedule(np.arange(steps)), torch_rates(make, 0.4, steps), rtol=1e-6, atol=1e-12)


def test_warmup_matches_pytorch_linear_lr() -> None:
    schedule = create_schedule("constant", 0.4, warmup=6, warmup_start=0.1)
    expected = torch_rates(lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=6), 0.4, 12)
    np.testing.assert_allclose(schedule(np.arange(12)), expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("patience", "cooldown", "min_lr", "min_delta"), [(2, 0, 0.0, 0.0), (0, 2, 1e-3, 0.0), (3, 1, 0.0, 0.05)]
)
def test_plateau_matches_pytorch_reduce_on_plateau(
    patience: int, cooldown: int, min_lr: float, min_delta: float
) -> None:
    rng = np.random.default_rng(7)
    losses = np.concatenate([np.linspace(2.0, 1.0, 10), 1.0 + 0.1 * rng.random(40), np.linspace(0.9, 0.5, 10)])
    params = {"factor": 0.5, "patience": patience, "cooldown": cooldown, "min_lr": min_lr, "min_delta": min_delta}
    state = create_schedule("plateau", 0.4, params).tracker()
    assert isinstance(state, PlateauState)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.4)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        factor=0.5,
        patience=patience,
        cooldown=cooldown,
        min_lr=min_lr,
        threshold=min_delta,
        threshold_mode="abs",
    )
    rate = 0.4
    for loss in losses:
        rate *= state.step(float(loss))
        reference.step(float(loss))
        assert rate == pytest.approx(optimizer.param_groups[0]["lr"])


def test_plateau_rate_before_reductions_is_constant_and_keeps_warmup() -> None:
    schedule = create_schedule("plateau", 0.1, warmup=2)
    assert [schedule(t) for t in range(4)] == pytest.approx([0.0, 0.05, 0.1, 0.1])
    assert schedule.tracker() is not None
    assert create_schedule("cosine", 0.1, {"total": 5}).tracker() is None


# --- run tables ------------------------------------------------------------------------------------------------


def test_epoch_unit_holds_the_rate_within_an_epoch() -> None:
    rates = update_rates(create_schedule("step", 1.0, {"milestones": [1]}), n_updates=6, updates_per_epoch=3)
    np.testing.assert_allclose(rates, [1, 1, 1, 0.1, 0.1, 0.1])


def test_update_unit_steps_every_update() -> None:
    rates = update_rates(
        create_schedule("step", 1.0, {"milestones": [1]}), n_updates=4, updates_per_epoch=3, unit="update"
    )
    np.testing.assert_allclose(rates, [1, 0.1, 0.1, 0.1])


def test_unknown_unit_is_rejected() -> None:
    with pytest.raises(ConfigError, match="schedule_unit"):
        update_rates(create_schedule("constant", 1.0), n_updates=4, updates_per_epoch=2, unit="batch")


# --- the schedules of today: transformers' implementations and the published formulas ------------------------


@pytest.mark.parametrize("shape", ["1-sqrt", "linear", "cosine"])
@pytest.mark.parametrize(("warmup", "final_lr"), [(0, 0.0), (10, 0.0), (10, 0.02)])
def test_wsd_matches_transformers(shape: str, warmup: int, final_lr: float) -> None:
    from transformers.optimization import get_wsd_schedule

    lr, total, fraction = 0.1, 110, 0.2
    decay = round(fraction * (total - warmup))  # the wrapped schedule's total is the run's less the warmup
    params = {"decay_fraction": fraction, "shape": shape, "final_lr": final_lr}
    # transformers' warmup rises from the final rate: warmup_start says so here.
    ours = create_schedule("wsd", lr, params, warmup=warmup, warmup_start=final_lr, horizon=total)
    theirs = torch_rates(
        lambda opt: get_wsd_schedule(
            opt,
            num_warmup_steps=warmup,
            num_decay_steps=decay,
            num_stable_steps=total - warmup - decay,
            decay_type=shape,
            min_lr_ratio=final_lr / lr,
        ),
        lr,
        total + 5,
    )
    np.testing.assert_allclose(ours(np.arange(total + 5)), theirs, rtol=1e-9, atol=1e-12)


def test_wsd_is_the_published_formula() -> None:
    # Stable until D = 0.25 * 40 = 10 steps remain, then 1 - sqrt(p) of the way down: p = 0.25 at t = 32.5.
    schedule = create_schedule("wsd", 1.0, {"total": 40, "decay_fraction": 0.25, "final_lr": 0.2})
    assert schedule(29) == 1.0 and schedule(30) == 1.0
    assert schedule(32.5) == pytest.approx(0.2 + 0.8 * (1 - math.sqrt(0.25)))
    assert schedule(40) == pytest.approx(0.2) and schedule(100) == pytest.approx(0.2)


@pytest.mark.parametrize("warmup", [0, 5])
def test_linear_matches_transformers(warmup: int) -> None:
    from transformers.optimization import get_linear_schedule_with_warmup

    lr, total = 0.3, 50
    ours = create_schedule("linear", lr, warmup=warmup, horizon=total)
    theirs = torch_rates(lambda opt: get_linear_schedule_with_warmup(opt, warmup, total), lr, total + 3)
    np.testing.assert_allclose(ours(np.arange(total + 3)), theirs, rtol=1e-9, atol=1e-12)


def test_linear_falls_to_its_final_rate() -> None:
    schedule = create_schedule("linear", 1.0, {"total": 10, "final_lr": 0.5})
    np.testing.assert_allclose(schedule(np.array([0, 5, 10, 20])), [1.0, 0.75, 0.5, 0.5])


@pytest.mark.parametrize(("warmup", "timescale"), [(4, 4.0), (10, 25.0)])
def test_inverse_sqrt_matches_transformers(warmup: int, timescale: float) -> None:
    from transformers.optimization import get_inverse_sqrt_schedule

    lr = 0.2
    ours = create_schedule("inverse_sqrt", lr, {"timescale": timescale}, warmup=warmup)
    theirs = torch_rates(lambda opt: get_inverse_sqrt_schedule(opt, warmup, timescale=int(timescale)), lr, 80)
    # transformers' warmup starts at 0 and reaches lr at step `warmup`, as the shared wrapper does.
    np.testing.assert_allclose(ours(np.arange(80)), theirs, rtol=1e-9, atol=1e-12)


def test_inverse_sqrt_is_the_transformer_rule() -> None:
    schedule = create_schedule("inverse_sqrt", 1.0)  # timescale 1: lr / sqrt(t + 1)
    np.testing.assert_allclose(schedule(np.array([0, 3, 8, 99])), [1.0, 0.5, 1 / 3, 0.1])


def test_rex_is_the_published_formula() -> None:
    schedule = create_schedule("rex", 1.0, {"total": 4})
    # p = 0, 1/4, 1/2, 3/4, 1: (1 - p) / (1 - p / 2)
    np.testing.assert_allclose(schedule(np.arange(6)), [1.0, 6 / 7, 2 / 3, 0.4, 0.0, 0.0])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"total": 10, "shape": "square"}, "wsd shape must be one of 1-sqrt, linear, cosine but got 'square'"),
        ({"total": 10, "decay_fraction": 0.0}, r"decay_fraction must be a number in \(0, 1\]"),
        ({"total": 10, "decay_fraction": 1.5}, "decay_fraction"),
        ({"total": 10, "shape": 3}, "wsd parameter shape must be a string but got 3"),
    ],
)
def test_bad_wsd_parameters_name_the_problem(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_schedule("wsd", 0.1, params)


def test_a_string_parameter_parses_from_the_command_line() -> None:
    assert parse_params("wsd", ["shape=cosine", "total=9"]) == {"shape": "cosine", "total": 9}


# --- the interface: names, parameters, errors ------------------------------------------------------------------


def test_catalogue_names() -> None:
    assert set(SCHEDULES) == {
        "constant",
        "inverse_time",
        "exponential",
        "natural_exp",
        "step",
        "piecewise",
        "factor",
        "sqrt",
        "polynomial",
        "cosine",
        "wsd",
        "linear",
        "inverse_sqrt",
        "rex",
        "linear_cosine",
        "noisy_linear_cosine",
        "cosine_restarts",
        "one_cycle",
        "cyclic",
        "plateau",
    }


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_type_starts_finite_and_positive(name: str) -> None:
    required = {
        "inverse_time": {"decay": 0.1},
        "exponential": {"decay_rate": 0.9},
        "step": {"milestones": [2]},
        "factor": {"factor": 0.9},
        "cyclic": {"min_lr": 0.01, "step_size_up": 3},
        "cosine_restarts": {"period": 4},
        "natural_exp": {"decay_rate": 0.1},
        "piecewise": {"boundaries": [5, 10], "values": [1.0, 0.5, 0.1]},
    }.get(name, {})
    rates = create_schedule(name, 0.1, required, warmup=2, horizon=20)(np.arange(30))
    # lr is the peak, but for TensorFlow's linear cosine (its beta on top) and the noise of its noisy twin
    peak = {"linear_cosine": 0.1 * (1 + 0.001), "noisy_linear_cosine": math.inf}.get(name, 0.1)
    assert np.all(np.isfinite(rates)) and np.all(rates >= 0) and rates.max() <= peak + 1e-12


def test_parse_params_types() -> None:
    assert parse_params("step", ["milestones=5,30", "gamma=0.5"]) == {"milestones": (5, 30), "gamma": 0.5}
    assert parse_params("exponential", ["decay_rate=0.9", "staircase=true"]) == {
        "decay_rate": 0.9,
        "staircase": True,
    }
    assert parse_params("cosine", ["total=20"]) == {"total": 20}
    assert parse_params("piecewise", ["boundaries=5,10", "values=1,0.5,0.05"]) == {
        "boundaries": (5, 10),
        "values": (1.0, 0.5, 0.05),
    }
    assert parse_params("step", ["step_size=10"]) == {"step_size": 10}


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("cosine", {"tota": 3}, "has no parameter 'tota'"),
        ("cosine", {"total": "ten"}, "total must be an integer but got 'ten'"),
        ("cosine", {"total": 2.5}, "total must be an integer"),
        ("exponential", {"decay_rate": 0.9, "staircase": "yes"}, "must be true or false"),
        ("exponential", {"decay_rate": float("nan")}, "must be a finite number"),
        ("step", {"milestones": [3, "x"]}, "must be an integer"),
        ("constant", {"gamma": 0.1}, r"takes: none"),
    ],
)
def test_bad_parameters_name_the_problem(name: str, params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        coerce_params(name, params)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: create_schedule("cosinus", 0.1), "unknown schedule 'cosinus'; choose from constant"),
        (lambda: create_schedule("constant", 0.0), r"lr must be a number in \(0, 10000\] but got 0.0"),
        (lambda: create_schedule("constant", -1.0), r"lr must be a number in \(0, 10000\] but got -1.0"),
        (lambda: create_schedule("constant", float("inf")), "lr must be a number"),
        (lambda: create_schedule("cosine", 0.1), "needs parameter 'total'"),
        (lambda: create_schedule("step", 0.1), "step needs milestones or a step_size"),
        (lambda: create_schedule("cosine", 0.1, {"total": 5}, warmup=5), r"total \(5\) must be longer than warmup"),
        (
            lambda: create_schedule("constant", 0.1, warmup=-1),
            r"warmup must be an integer in \[0, 1000000000\] but got -1",
        ),
        (lambda: create_schedule("plateau", 0.1, {"factor": 1.5}), r"factor must be a number in \(0, 1\)"),
        (lambda: create_schedule("one_cycle", 0.1, {"total": 2}), "pct_start \\* total > 1"),
        (lambda: create_schedule("cosine_restarts", 0.1, {"period": 3, "t_mult": 0}), "t_mult must be"),
        (
            lambda: create_schedule("exponential", 0.1, {"decay_rate": -0.5}),
            r"decay_rate must be a number in \(0, 1000\] but got -0.5",
        ),
        (lambda: parse_params("step", ["milestones"]), "key=value"),
        (
            lambda: create_schedule("step", 0.1, {"milestones": [5, 2]}),
            r"milestones must be in increasing order but got \[5, 2\]",
        ),
        (lambda: create_schedule("cosine", 0.1, {"total": 10**400}), r"total must be an integer in \[1, 1000000000\]"),
        (lambda: create_schedule("cosine", 0.1, {"final_lr": 10**400, "total": 3}), "final_lr must be a finite number"),
        (
            lambda: create_schedule("constant", 0.1, warmup=2, warmup_start=float("nan")),
            "warmup_start must be a number",
        ),
        (lambda: create_schedule("constant", 1e5), r"lr must be a number in \(0, 10000\]"),
        (
            lambda: create_schedule("exponential", 1.0, {"decay_rate": 2.0}).check_rates(20),
            "the exponential schedule's rate grows past 10000 by step 14",
        ),
        (
            lambda: create_schedule("step", 1.0, {"milestones": [1, 2], "gamma": 1000.0}).check_rates(5),
            "the step schedule's rate grows past 10000",
        ),
    ],
)
def test_bad_input_raises_config_error(call, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()


def test_a_repeated_milestone_counts_twice_as_in_pytorch() -> None:
    assert create_schedule("step", 1.0, {"milestones": [2, 2], "gamma": 0.5})(2) == pytest.approx(0.25)


def test_growth_within_bounds_passes_the_rate_check() -> None:
    create_schedule("exponential", 1.0, {"decay_rate": 2.0}).check_rates(13)  # 2**12 = 4096 at the last step


# --- seed 002's TensorFlow schedules and PyTorch's StepLR -----------------------------------------------------


def test_step_with_a_step_size_is_pytorch_s_step_lr() -> None:
    """Seed 002's StepLR(step_size=10, gamma=0.1), stepped by hand in PyTorch."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.1)
    reference = []
    for _ in range(35):
        reference.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    schedule = create_schedule("step", 0.1, {"step_size": 10})
    np.testing.assert_allclose(schedule(np.arange(35)), reference, rtol=1e-12)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "step needs milestones or a step_size"),
        ({"milestones": [5], "step_size": 3}, "step needs milestones or a step_size"),
        ({"step_size": 0}, r"step_size must be an integer in \[1, 1000000000\]"),
    ],
)
def test_step_takes_milestones_or_a_step_size(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_schedule("step", 0.1, params)


def test_piecewise_is_tensorflow_s_piecewise_constant() -> None:
    """TensorFlow's own example: boundaries [100000, 110000], values [1.0, 0.5, 0.1] (here times lr)."""
    schedule = create_schedule("piecewise", 2.0, {"boundaries": [100000, 110000], "values": [1.0, 0.5, 0.1]})
    steps = [0, 100000, 100001, 110000, 110001, 10**9]
    np.testing.assert_allclose(schedule(np.array(steps)), [2.0, 2.0, 1.0, 1.0, 0.2, 0.2])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"boundaries": [10, 5], "values": [1, 0.5, 0.1]}, "boundaries must be strictly increasing"),
        ({"boundaries": [5, 5], "values": [1, 0.5, 0.1]}, "boundaries must be strictly increasing"),
        ({"boundaries": [5], "values": [1.0]}, r"values must hold one more entry than boundaries \(2\) but got 1"),
        ({"boundaries": [5], "values": [1.0, -0.5]}, "each value must be a number in"),
        ({"boundaries": [5]}, "schedule piecewise needs parameter 'values'"),
    ],
)
def test_bad_piecewise_schedules(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_schedule("piecewise", 0.1, params)


@pytest.mark.parametrize("staircase", [False, True])
def test_natural_exp_is_tensorflow_s_formula(staircase: bool) -> None:
    schedule = create_schedule("natural_exp", 0.1, {"decay_rate": 0.5, "decay_steps": 4, "staircase": staircase})
    for t in range(20):
        exponent = (t // 4) if staircase else t / 4
        assert schedule(t) == pytest.approx(0.1 * math.exp(-0.5 * exponent), rel=1e-12)


def _tf_linear_cosine(
    lr: float, t: int, steps: int, periods: float, alpha: float, beta: float, noise: float = 0.0
) -> float:
    """tf.compat.v1.train.linear_cosine_decay, written from its documented formula."""
    t = min(t, steps)
    linear = (steps - t) / steps + noise
    cosine = 0.5 * (1 + math.cos(math.pi * 2 * periods * t / steps))
    return lr * ((alpha + linear) * cosine + beta)


@pytest.mark.parametrize(("periods", "alpha", "beta"), [(0.5, 0.0, 0.001), (2.0, 0.1, 0.0)])
def test_linear_cosine_is_tensorflow_s_formula(periods: float, alpha: float, beta: float) -> None:
    schedule = create_schedule(
        "linear_cosine", 0.1, {"total": 50, "num_periods": periods, "alpha": alpha, "beta": beta}
    )
    for t in (0, 1, 10, 25, 49, 50, 80):
        assert schedule(t) == pytest.approx(_tf_linear_cosine(0.1, t, 50, periods, alpha, beta), rel=1e-12)
    assert schedule(0) == pytest.approx(0.1 * (1 + alpha + beta))  # TensorFlow's rate starts above lr


def test_noisy_linear_cosine_adds_decaying_seeded_noise() -> None:
    quiet = create_schedule("noisy_linear_cosine", 0.1, {"total": 2000, "initial_variance": 1e-4, "seed": 1})
    again = create_schedule("noisy_linear_cosine", 0.1, {"total": 2000, "initial_variance": 1e-4, "seed": 1})
    other = create_schedule("noisy_linear_cosine", 0.1, {"total": 2000, "initial_variance": 1e-4, "seed": 2})
    plain = create_schedule("linear_cosine", 0.1, {"total": 2000})
    steps = np.arange(2000)
    np.testing.assert_array_equal(quiet(steps), again(steps))  # a pure function of (seed, t)
    assert not np.array_equal(quiet(steps), other(steps))
    # The noise is N(0, variance / (1 + t) ** 0.55) on the linear part: recover it and test its law.
    cosine = 0.5 * (1 + np.cos(math.pi * steps / 2000))
    noise = (quiet(steps) - plain(steps)) / (0.1 * cosine)
    scaled = noise[:1900] / np.sqrt(1e-4 / (1 + steps[:1900]) ** 0.55)  # where cosine is far from 0
    assert abs(scaled.mean()) < 0.1 and 0.9 < scaled.std() < 1.1
    assert np.all(create_schedule("noisy_linear_cosine", 0.1, {"total": 100, "seed": 0})(np.arange(100)) >= 0)


def test_a_noisy_schedule_takes_each_run_s_own_seed_unless_given() -> None:
    def rates(seed: int, params: dict) -> np.ndarray:
        config = TrainConfig(lr=0.1, seed=seed, schedule="noisy_linear_cosine", schedule_params=params)
        return np.asarray(config.build_schedule(horizon=30)(np.arange(30)))

    assert not np.array_equal(rates(1, {}), rates(2, {}))
    np.testing.assert_array_equal(rates(1, {"seed": 5}), rates(2, {"seed": 5}))
