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
from lrsearch.errors import ConfigError
from lrsearch.schema import PBT_SCHEDULE
from lrsearch.search.pbt import EXPLOITS, Explorer, followed_schedule, lineage, piecewise, replayed
from lrsearch.search.runner import Search, worker_id
from lrsearch.search.study import join_study
from lrsearch.spec.pbt import PBTSettings
from lrsearch.spec.space import FloatRange, SearchSpace
from lrsearch.spec.studies import load_study_file
from lrsearch.storage.opening import open_storage
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


def _stitched(trials: dict[int, optuna.trial.FrozenTrial], number: int) -> list[float]:
    """The rates ``number``'s weights followed, by its lineage: each ancestor's own rates up to its piece's end."""
    rates: list[float] = []
    for ancestor, until in lineage(trials, number):
        rates += trials[ancestor].user_attrs["lr_history"][len(rates) : until]
    return rates


def test_the_lineage_follows_every_donor_back() -> None:
    # 0 trained at 0.1 throughout; 1 took 0's weights after epoch 3 (then 0.08); 2 took 1's after epoch 6.
    trials = {
        0: _trial(0, [0.1] * 9, []),
        1: _trial(1, [0.3, 0.3, 0.3, 0.08, 0.08, 0.08, 0.08, 0.08, 0.08], [{"epoch": 3, "donor": 0}]),
        2: _trial(2, [0.01] * 6 + [0.096] * 3, [{"epoch": 6, "donor": 1}]),
    }
    assert lineage(trials, 2) == [(0, 3), (1, 6), (2, 9)]
    assert _stitched(trials, 2) == [0.1] * 3 + [0.08] * 3 + [0.096] * 3


def test_followed_rates_become_a_piecewise_schedule_that_replays_them() -> None:
    rates = [0.1] * 3 + [0.08] * 3 + [0.096] * 3
    found = followed_schedule(rates, TrainConfig(lr=0.5, momentum=0.7, warmup=2, decay=0.01, schedule="cosine"))
    assert found["schedule"] == "piecewise" and found["lr"] == pytest.approx(0.1) and found["momentum"] == 0.7
    assert found["piecewise"]["boundaries"] == [2, 5]
    assert found["piecewise"]["values"] == pytest.approx([1.0, 0.8, 0.96])
    replay = replayed(TrainConfig(lr=0.5, momentum=0.1, warmup=2, decay=0.01, schedule="cosine", seed=9), found)
    assert (replay.warmup, replay.decay, replay.momentum, replay.seed) == (0, 0.0, 0.7, 9)
    np.testing.assert_allclose(replay.build_schedule(9)(np.arange(9)), rates)
    assert piecewise([0.2, 0.2]) == {"schedule": "constant", "lr": 0.2}
    # A warmup from 0: the peak is the rate, and the first epoch a pause that replays as one.
    paused = piecewise([0.0, 0.1, 0.1])
    assert paused == {"schedule": "piecewise", "lr": 0.1, "piecewise": {"boundaries": [0], "values": [0.0, 1.0]}}
    np.testing.assert_allclose(replayed(TrainConfig(), paused).build_schedule(3)(np.arange(3)), [0.0, 0.1, 0.1])


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
    # What each trial's weights followed, recorded as it trained, is what its lineage says.
    for trial in trials.values():
        found = trial.user_attrs[PBT_SCHEDULE]
        replay = replayed(TrainConfig(), found).build_schedule(12)
        np.testing.assert_allclose(replay(np.arange(12)), _stitched(trials, trial.number), rtol=1e-9)


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
        (PBT_STUDY.format().replace("interval = 3", "interval = 3\nmembers = 1"), "pbt.members"),
        (PBT_STUDY.format().replace("interval = 3", "interval = 3\nmembers = true"), "pbt.members"),
        (PBT_STUDY.format().replace("interval = 3", "interval = 3\nmembers = 9"), "at most the population"),
        (PBT_STUDY.format().replace("interval = 3", "quantile = 0.1"), "exploits nobody"),
        (PBT_STUDY.format().replace("population = 8", "population = 3"), "at least 4 members train together"),
        (PBT_STUDY.format().replace('schedule = ["constant"]', 'optimizer = ["sgd", "adam"]'), "share one optimizer"),
    ]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            load_study_file(path)


def test_the_report_hands_back_the_best_member_s_schedule_as_a_study_file_snippet(
    tmp_path: Path, blobs: Problem
) -> None:
    import html
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
    assert 'id="pbt"' in page and html.escape(found["snippet"]) in page


COMPARISON = """
question = "Does PBT find a better schedule than constant and cosine?"
trainer = "blobs"
epochs = 8
compare = "schedule"
strategy = "pbt"
n_trials = 6
population = 4
repeats = 2
sampler = "random"
pruner = { name = "median", n_startup_trials = 2, n_warmup_steps = 1 }

[pbt]
interval = 2
members = 4

[space]
schedule = ["constant", "cosine"]
lr = { low = 1e-3, high = 0.5, log = true }
momentum = { low = 0.0, high = 0.9 }
"""


def test_a_comparison_searches_runs_a_pbt_population_and_replays_its_schedule_beside_the_static_ones(
    tmp_path: Path,
) -> None:
    import lrsearch
    from lrsearch.schema import PBT_MEMBER, REPEAT_OF, REPLAY

    path = tmp_path / "versus.toml"
    path.write_text(COMPARISON, encoding="utf-8")
    spec = load_study_file(path)
    assert spec.pbt is not None and spec.pbt.members == 4 and spec.pruner == "median"  # the search prunes
    url = f"sqlite:///{tmp_path / 's.db'}"
    report = lrsearch.run(path, storage=url, device="cpu", progress=False)
    assert report is not None
    trials = {t.number: t for t in optuna.load_study(study_name="versus", storage=url).trials}
    searched = [t for t in trials.values() if not {REPEAT_OF, PBT_MEMBER} & t.user_attrs.keys()]
    members = [t for t in trials.values() if PBT_MEMBER in t.user_attrs]
    assert len(searched) == 6 and not any(EXPLOITS in t.user_attrs for t in searched)
    # The population trained as PBT: never pruned, one of four exploited at epochs 2, 4 and 6.
    assert len(members) == 4 and all(t.state == TrialState.COMPLETE for t in members)
    assert sorted(e["epoch"] for t in members for e in t.user_attrs[EXPLOITS]) == [2, 4, 6]
    assert all(min(t.number for t in members) > t.number for t in searched)  # after the search
    # Each group's best is repeated; the best member's repeats replay, from scratch, what its weights followed.
    best = max(members, key=lambda t: t.value)
    replays = [t for t in trials.values() if t.user_attrs.get(REPEAT_OF) == best.number]
    assert len(replays) == 2 and all(t.state == TrialState.COMPLETE for t in replays)
    for replay in replays:
        assert replay.user_attrs[REPLAY] == best.user_attrs[PBT_SCHEDULE]
        assert EXPLOITS not in replay.user_attrs and replay.user_attrs["seed"] != best.user_attrs["seed"]
        np.testing.assert_allclose(replay.user_attrs["lr_history"], _stitched(trials, best.number), rtol=1e-9)
    # The report compares the discovered schedule with the static ones, with intervals.
    groups = {g.value: g for g in report.summary.groups}
    assert set(groups) == {"constant", "cosine", "pbt"}
    assert groups["pbt"].best_trial == best.number and groups["pbt"].trials == 4
    assert all(g.repeats is not None and len(g.repeats.values) == 2 for g in groups.values())
    assert report.summary.discovered is not None and report.summary.discovered["trial"] == best.number
