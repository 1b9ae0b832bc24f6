from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from lrsearch.engine import Problem, load_problem
from lrsearch.engine.config import TrainConfig
from lrsearch.engine.schedules import create_schedule
from lrsearch.errors import ConfigError
from lrsearch.search.pbt import EXPLOITS, Explorer, discovered_schedule, lineage, piecewise
from lrsearch.search.runner import Search, worker_id
from lrsearch.search.study import join_study
from lrsearch.spec.pbt import PBTSettings
from lrsearch.spec.space import FloatRange, SearchSpace
from lrsearch.spec.studies import load_study_file
from lrsearch.storage import open_storage
from lrsearch.storage.urls import resolve_url

SPACE = SearchSpace(
    params={"lr": FloatRange(1e-3, 0.5, log=True), "momentum": FloatRange(0.0, 0.9)}, fixed={}, branches={}
)

PBT_STUDY = """
question = "Does PBT find a rate schedule?"
trainer = "blobs"
epochs = 12
compare = "schedule"
strategy = "pbt"
n_trials = 8
population = 8
sampler = "random"

[pbt]
interval = 3

[space]
schedule = ["constant"]
lr = {{ low = 1e-3, high = 0.5, log = true }}
momentum = {{ low = 0.0, high = 0.9 }}
"""


def test_the_bottom_quantile_takes_from_the_top() -> None:
    explorer = Explorer(PBTSettings(quantile=0.25), SPACE, seed=0)
    scores = {m: s for m, s in enumerate([0.5, 0.9, 0.1, 0.7, 0.3, 0.8, math.nan, 0.6])}
    pairs = explorer.plan(scores, maximize=True)
    assert sorted(r for r, _ in pairs) == [2, 6]  # the two worst (a NaN is worst)
    assert all(d in (1, 5) for _, d in pairs)  # donors from the two best
    assert sorted(r for r, _ in explorer.plan(scores, maximize=False)) == [1, 6]  # the highest, and the NaN
    assert explorer.plan({0: 0.5, 1: 0.6}, maximize=True) == []  # a quarter of two is nobody


def test_explore_perturbs_or_resamples_within_the_space() -> None:
    explorer = Explorer(PBTSettings(resample_probability=0.0, perturbations=(0.8, 1.2)), SPACE, seed=1)
    config = TrainConfig(lr=0.1, momentum=0.5, seed=4)
    for _ in range(20):
        explored = explorer.explore(config)
        assert explored.lr in (pytest.approx(0.08), pytest.approx(0.12))
        assert explored.momentum in (pytest.approx(0.4), pytest.approx(0.6)) and explored.seed == 4
        assert explored.decay == 0.0  # zero stays zero
    top = Explorer(PBTSettings(resample_probability=0.0, perturbations=(10.0,)), SPACE, seed=1)
    assert top.explore(config).lr == 0.5 and top.explore(config).momentum == 0.9  # clipped to the space
    fresh = Explorer(PBTSettings(resample_probability=1.0), SPACE, seed=2)
    draws = [fresh.explore(config).lr for _ in range(50)]
    assert all(1e-3 <= d <= 0.5 for d in draws) and len(set(draws)) == 50


def _trial(number: int, rates: list[float], exploits: list[dict]) -> optuna.trial.FrozenTrial:
    return optuna.trial.FrozenTrial(
        number=number,
        state=TrialState.COMPLETE,
        value=0.5,
        datetime_start=None,
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={"lr_history": rates, EXPLOITS: exploits},
        system_attrs={},
        intermediate_values={},
        trial_id=number,
    )


def test_the_lineage_follows_every_donor_back_and_hands_back_a_piecewise_schedule() -> None:
    # 0 trained at 0.1 throughout; 1 took 0's weights after epoch 3 (then 0.08); 2 took 1's after epoch 6.
    trials = {
        0: _trial(0, [0.1] * 9, []),
        1: _trial(1, [0.3, 0.3, 0.3, 0.08, 0.08, 0.08, 0.08, 0.08, 0.08], [{"epoch": 3, "donor": 0}]),
        2: _trial(2, [0.01] * 6 + [0.096] * 3, [{"epoch": 6, "donor": 1}]),
    }
    assert lineage(trials, 2) == [(0, 3), (1, 6), (2, 9)]
    found = discovered_schedule(trials, 2)
    assert found["schedule"] == "piecewise" and found["lr"] == pytest.approx(0.1)
    assert found["piecewise"]["boundaries"] == [2, 5]
    assert found["piecewise"]["values"] == pytest.approx([1.0, 0.8, 0.96])
    replay = create_schedule("piecewise", found["lr"], found["piecewise"])
    np.testing.assert_allclose(replay(np.arange(9)), [0.1] * 3 + [0.08] * 3 + [0.096] * 3)
    assert piecewise([0.2, 0.2]) == {"schedule": "constant", "lr": 0.2}


@pytest.fixture(scope="module")
def blobs() -> Problem:
    return load_problem("blobs", device=torch.device("cpu"))


def test_a_pbt_population_exploits_explores_and_records_what_it_followed(tmp_path: Path, blobs: Problem) -> None:
    path = tmp_path / "pbt.toml"
    path.write_text(PBT_STUDY.format(), encoding="utf-8")
    spec = load_study_file(path)
    assert spec.pbt is not None and spec.pbt.interval == 3 and spec.pruner == "none"
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = join_study(spec, open_storage(resolve_url(url)), worker=worker_id())
    Search(spec, study, blobs).run(n_trials=8, timeout=None)
    trials = {t.number: t for t in study.get_trials()}
    assert len(trials) == 8 and all(t.state == TrialState.COMPLETE for t in trials.values())
    exploits = [(t, e) for t in trials.values() for e in t.user_attrs[EXPLOITS]]
    assert exploits and {e["epoch"] for _, e in exploits} <= {3, 6, 9}
    # Two of eight (the bottom quarter) at each of the three intervals.
    assert len(exploits) == 6
    for trial, exploit in exploits:
        assert exploit["donor"] != trial.number and exploit["donor"] in trials
        # From the exploit on, the trial follows the rate it was given (until its next exploit).
        assert trial.user_attrs["lr_history"][exploit["epoch"]] == pytest.approx(exploit["lr"])
    best = max(trials.values(), key=lambda t: t.value)
    found = discovered_schedule(trials, best.number)
    assert found["schedule"] in ("constant", "piecewise") and found["lr"] > 0


def test_a_pbt_study_refuses_a_pruner_and_bad_settings(tmp_path: Path) -> None:
    path = tmp_path / "pbt.toml"
    for text, message in [
        (
            PBT_STUDY.format().replace('sampler = "random"', 'sampler = "random"\npruner = "median"'),
            "trains every member",
        ),
        (PBT_STUDY.format().replace("interval = 3", "interval = 30"), "pbt.interval"),
        (PBT_STUDY.format().replace("interval = 3", "quantile = 0.9"), "pbt.quantile"),
        (PBT_STUDY.format().replace('strategy = "pbt"', 'strategy = "evolve"'), "strategy: must be one of"),
    ]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            load_study_file(path)


def test_the_report_hands_back_the_best_member_s_schedule_as_a_study_file_snippet(
    tmp_path: Path, blobs: Problem
) -> None:
    import io
    import tomllib

    from rich.console import Console

    from lrsearch.cli.report import print_report
    from lrsearch.review.dashboard import study_note
    from lrsearch.review.page import write_page
    from lrsearch.review.report import build_report

    path = tmp_path / "pbt.toml"
    path.write_text(PBT_STUDY.format(), encoding="utf-8")
    spec = load_study_file(path)
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = join_study(spec, open_storage(resolve_url(url)), worker=worker_id())
    Search(spec, study, blobs).run(n_trials=8, timeout=None)
    report = build_report(study)
    found = report.discovered
    assert found is not None and found["trial"] == max(study.trials, key=lambda t: t.value).number
    assert found["lineage"][-1] == [found["trial"], 12]
    tomllib.loads(found["snippet"])
    # The snippet replays: a study file that fixes it loads, and its schedule is the one found.
    replay = tmp_path / "replay.toml"
    replay.write_text(
        'question = "Replay?"\ntrainer = "blobs"\nepochs = 12\ncompare = "warmup"\nn_trials = 2\n'
        "[space]\nwarmup = [0, 1]\n\n" + found["snippet"],
        encoding="utf-8",
    )
    replayed = load_study_file(replay)
    assert replayed.space.fixed["schedule"] == found["schedule"]["schedule"]
    out = io.StringIO()
    print_report(report, Console(file=out, width=200))
    assert "PBT's discovered schedule" in out.getvalue() and found["snippet"].strip() in out.getvalue()
    # The dashboard's note and the HTML page show it too.
    note = study_note(spec, report)
    assert report.lineage_text() in note and found["snippet"].strip() in note
    write_page(report, study.get_trials(), tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'id="pbt"' in page and "[space.piecewise]" in page
