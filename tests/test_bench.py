from __future__ import annotations

import pytest
import torch

from lrsearch.bench import (
    bench_blobs,
    bench_configs,
    bench_sampler,
    bench_search,
    bench_workers,
    default_population,
)
from lrsearch.engine import load_problem, train_population


def test_bench_configs_are_varied_and_all_stable() -> None:
    configs = bench_configs(16)
    assert len({c.lr for c in configs}) == 16 and len({c.seed for c in configs}) == 16
    results = train_population(load_problem("blobs", device=torch.device("cpu")), configs, epochs=20)
    assert all(r.status == "completed" for r in results)  # none leaves the population early


def test_bench_blobs_measures_both_sides_on_the_same_work() -> None:
    population, generic, plain = bench_blobs(torch.device("cpu"), population=8, baseline_trials=2, epochs=3)
    assert (population.trials, generic.trials, plain.trials) == (8, 8, 2)
    assert population.examples == generic.examples == 8 * 500 * 3 and plain.examples == 2 * 500 * 3
    assert population.seconds > 0 and generic.seconds > 0 and plain.seconds > 0


def test_bench_search_times_lrsearch_run_and_the_plain_loop_as_whole_processes() -> None:
    timing = bench_search(torch.device("cpu"), trials=8, baseline_trials=1)
    assert timing.trials == 8 and timing.repeats > 0  # blobs_lr's repeats ran, as a user's run has them
    phases = (timing.startup, timing.setup, timing.searching, timing.report)
    assert all(p > 0 for p in phases) and sum(phases) < timing.seconds
    assert timing.training + timing.asking + timing.telling <= timing.searching
    assert timing.fixed == pytest.approx(timing.seconds - timing.searching)
    assert timing.plain_per_trial > 0 and timing.plain_fixed > 0
    assert timing.plain_seconds == pytest.approx(timing.plain_fixed + 8 * timing.plain_per_trial)
    assert timing.ratio == pytest.approx(timing.plain_seconds / timing.seconds)


def test_default_population_by_device() -> None:
    assert default_population("blobs", torch.device("cpu")) < default_population("blobs", torch.device("cuda"))
    assert default_population("fashion_mnist", torch.device("cpu")) >= 1


@pytest.mark.parametrize(("sampler", "pruner"), [(None, "none"), ("random", "median")])
def test_bench_workers_reads_every_workers_timing(tmp_path, sampler: str | None, pruner: str) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'w.db'}"
    timing = bench_workers(url, workers=2, trials=6, population=3, epochs=5, sampler=sampler, pruner=pruner)
    assert timing.workers == 2 and timing.trials >= 6
    assert 0 < timing.training < timing.wall and 0.0 <= timing.outside_training < 1.0
    # Deciding by the completed trials the view holds takes microseconds an epoch: rounded to 0 ms, at times.
    assert timing.asking > 0 and timing.telling > 0 and (timing.pruning == 0 or pruner != "none")


def test_bench_sampler_times_both_tpes_on_the_same_round() -> None:
    timing = bench_sampler(finished=30, running=8, population=6)
    assert (timing.finished, timing.running, timing.population) == (30, 8, 6)
    assert timing.ours > 0 and timing.optuna > 0 and timing.same  # the same seed gives the same suggestions
