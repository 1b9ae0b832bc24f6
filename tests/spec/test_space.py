from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from lrsearch.spec.files import bundled_dir
from lrsearch.spec.space import ARM, Choice, FloatRange, IntRange, SearchSpace
from lrsearch.spec.studies import load_study_file

SPACE = SearchSpace(
    params={
        "lr": FloatRange(1e-3, 1.0, log=True),
        "momentum": FloatRange(0.0, 0.9),
        "optimizer": Choice(("sgd", "adam")),
        "schedule": Choice(("cosine", "step")),
        "warmup": IntRange(0, 3),
    },
    fixed={"decay": 1e-4},
    branches={
        "cosine": {"final_lr": FloatRange(1e-5, 1e-3, log=True)},
        "step": {"milestones": Choice(((4, 6), (6,))), "gamma": 0.5},
        "adam": {"beta2": Choice((0.99, 0.999))},
    },
)


def fixed(**params: object) -> optuna.trial.FixedTrial:
    return optuna.trial.FixedTrial(params)


def test_a_branch_is_sampled_only_when_chosen() -> None:
    config = SPACE.sample(
        fixed(lr=0.1, momentum=0.5, optimizer="sgd", schedule="step", warmup=1, **{"step.milestones": "4,6"}), seed=3
    )
    assert config.schedule == "step" and config.schedule_params == {"milestones": (4, 6), "gamma": 0.5}
    assert (config.lr, config.momentum, config.warmup, config.decay, config.seed) == (0.1, 0.5, 1, 1e-4, 3)


def test_momentum_is_left_out_for_optimizers_without_it() -> None:
    config = SPACE.sample(
        fixed(lr=0.01, optimizer="adam", schedule="cosine", warmup=0, **{"cosine.final_lr": 1e-4, "adam.beta2": 0.99}),
        seed=0,
    )
    assert config.optimizer == "adam" and config.momentum == 0.0 and config.optimizer_params == {"beta2": 0.99}


def test_lists_are_categories_by_their_text() -> None:
    assert Choice.encode((4, 6)) == "4,6" and Choice.encode(0.5) == 0.5
    study = optuna.create_study()
    trial = study.ask()
    assert Choice(((4, 6), (6,))).suggest(trial, "m") in ((4, 6), (6,))
    assert trial.params["m"] in ("4,6", "6")


def test_param_names_and_find() -> None:
    assert set(SPACE.param_names()) == {
        "lr",
        "momentum",
        "optimizer",
        "schedule",
        "warmup",
        "cosine.final_lr",
        "step.milestones",
        "adam.beta2",
    }
    assert SPACE.find("step.milestones") == Choice(((4, 6), (6,)))
    assert SPACE.find("step.gamma") is None  # fixed, not searched
    assert SPACE.find("nope") is None


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("schedule", "cosine", {"step.milestones"}),
        ("schedule", "step", {"cosine.final_lr"}),
        ("optimizer", "sgd", {"adam.beta2"}),
        ("optimizer", "adam", set()),
        ("lr", 0.1, set()),
        ("nope", 1, set()),
    ],
)
def test_other_branches_are_the_names_a_choice_rules_out(name: str, value: object, expected: set[str]) -> None:
    assert SPACE.other_branches(name, value) == expected


def test_corners_cover_every_branch_combination() -> None:
    corners = list(SPACE.corners())
    assert {(c.optimizer, c.schedule) for c in corners} == {(o, s) for o in ("sgd", "adam") for s in ("cosine", "step")}
    assert {c.lr for c in corners} == {1e-3, 1.0} and {c.warmup for c in corners} == {0, 3}
    # 2 lr x 2 momentum x 2 warmups, times, per (optimizer, schedule), its branches' own values:
    # sgd+cosine 2, sgd+step 2, adam+cosine 2x2, adam+step 2x2
    assert len(corners) == 2 * 2 * 2 * (2 + 2 + 4 + 4)


def test_arms_fix_their_settings() -> None:
    space = SearchSpace(
        params={ARM: Choice(("constant", "cosine_warmup"))},
        fixed={},
        branches={},
        arms={
            "constant": {"lr": 0.3},
            "cosine_warmup": {"schedule": "cosine", "lr": 0.3, "total": 20, "final_lr": 0.01, "warmup": 5},
        },
    )
    config = space.sample(fixed(arm="cosine_warmup"), seed=0)
    assert (config.schedule, config.warmup, config.schedule_params) == ("cosine", 5, {"total": 20, "final_lr": 0.01})
    assert space.sample(fixed(arm="constant"), seed=0).schedule == "constant"


@pytest.mark.parametrize("path", sorted(bundled_dir().glob("*.toml")), ids=lambda p: p.stem)
def test_bundled_studies_sample_valid_configurations(path: Path) -> None:
    spec = load_study_file(path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        spec.space.sample(trial, seed=trial.number).build_schedule(horizon=spec.epochs)
        study.tell(trial, 0.0)
