from __future__ import annotations

from pathlib import Path

import pytest

from lrsearch.errors import ConfigError
from lrsearch.spec.files import bundled_dir
from lrsearch.spec.studies import load_study_file
from tests.conftest import write_study

BUNDLED = {
    "blobs_lr",
    "cosine_vs_step",
    "d2l_schedules",
    "pbt_vs_static",
    "seed000_lr",
    "seed000_momentum",
    "seed000_decay",
    "seed000_plateau",
    "seed000_optimizers",
    "seed004_sgd_rates",
    "seed004_schedules",
    "seed004_optimizers",
    "seed002_decay",
}


def test_bundled_studies_are_there_and_valid() -> None:
    names = {p.stem for p in bundled_dir().glob("*.toml")}
    assert names == BUNDLED
    for name in names:
        spec = load_study_file(bundled_dir() / f"{name}.toml")
        assert spec.question.endswith("?") and spec.n_trials


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_every_bundled_study_has_a_gpu_budget_that_trains_more_at_once(name: str) -> None:
    """A GPU gains from populations of hundreds; a grid study's repeats then train in one population."""
    spec = load_study_file(bundled_dir() / f"{name}.toml")
    on_gpu = spec.for_device("cuda")
    assert on_gpu.population > spec.largest_population and on_gpu.n_trials >= spec.n_trials
    if spec.sampler == "grid":
        assert on_gpu.population >= spec.n_trials * spec.repeats


def test_definition_is_what_makes_trials_comparable(tmp_path: Path) -> None:
    spec = load_study_file(write_study(tmp_path))
    assert spec.definition() == spec.with_overrides(n_trials=99, population=2).definition()
    assert spec.definition() != spec.with_overrides(epochs=13).definition()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\nbogus = 1', "bogus: unknown key"),
        ('trainer = "blobs"\ncompare = "x"\nn_trials = 3', "question: missing"),
        ('question = "q"\ntrainer = "mnist"\ncompare = "x"\nn_trials = 3', "trainer: unknown trainer 'mnist'"),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\n[space]\nschedule = ["constant", "cosine"]',
            "a study needs a budget",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 0',
            "n_trials: must be an integer in [1, 10000000] but got 0",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\nepochs = "ten"',
            "epochs: must be an integer",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "lr"\nn_trials = 3\n[space]\nlr = { low = 0.5, high = 0.1 }',
            "space.lr: low must be < high but got low=0.5, high=0.1",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "lr"\nn_trials = 3\n[space]\nlr = { low = 0.0, high = 0.1, log = true }',
            "space.lr: a log range needs low > 0",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "lr"\nn_trials = 3\n[space]\nlr = { low = 0.01, high = 0.1 }',
            "compare: must name a searched parameter with a list of values",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosinus"]',
            "space.schedule: unknown schedule 'cosinus'",
        ),
        (
            (
                'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "step"]\n'
                "[space.step]\ngama = 0.1"
            ),
            "space.step.gama: step has no parameter 'gama'",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "step"]',
            "step needs milestones or a step_size",
        ),
        (
            (
                'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\n'
                "[space.step]\ngamma = 0.1"
            ),
            "space.step: the schedule step is never chosen",
        ),
        (
            (
                'question = "q"\ntrainer = "blobs"\nepochs = 10\ncompare = "schedule"\nn_trials = 3\n[space]\n'
                'schedule = ["constant", "cosine"]\nwarmup = { low = 0, high = 10 }'
            ),
            "cosine total (10) must be longer than warmup (10)",
        ),
        (
            (
                'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\nsampler = "grid"\n[space]\n'
                'schedule = ["constant", "cosine"]\nlr = { low = 0.01, high = 0.1 }'
            ),
            "grid sampler needs lists, but space.lr",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\nsampler = "cmaes"\n[space]\nschedule = ["constant"]',
            "sampler: unknown sampler 'cmaes'",
        ),
        (
            (
                'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\npruner = { name = "median", patience = 3 }\n'
                '[space]\nschedule = ["constant"]'
            ),
            "pruner: pruner median has no setting 'patience'",
        ),
        (
            (
                'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[fixed]\nmomentum = 1.5\n[space]\n'
                'schedule = ["constant"]'
            ),
            "momentum must be a number in [0, 1) but got 1.5",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "arm"\nn_trials = 3\n[arms.a]\nlr = 0.1\nbeta9 = 2',
            "arms.a.beta9: unknown setting",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space\nschedule = 1',
            "not valid TOML",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\ndecay = { low = 0.0, high = inf }',
            "space.decay.high: must be a finite number but got inf",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\nwarmup_start = { low = 0.0, high = inf }',
            "space.warmup_start.high: must be a finite number but got inf",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\ndecay = { low = 0.0, high = 1e300 }',
            "decay must be a number in [0, 1000000] but got 1e+300",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\nepochs = 1000000000000\n[space]\nschedule = ["constant", "cosine"]\n',
            "epochs: must be an integer in [1, 100000] but got 1000000000000",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\nepochs = 1e12\n[space]\nschedule = ["constant", "cosine"]\n',
            "epochs: must be an integer in [1, 100000] but got 1000000000000.0",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\npopulation = 100000000000000000000000000\n[space]\nschedule = ["constant", "cosine"]\n',
            "population: must be an integer in [1, 4096]",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\nseed = -1\n[space]\nschedule = ["constant", "cosine"]\n',
            "seed: must be an integer in [0, 4294967295] but got -1",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\ntimeout = nan\n[space]\nschedule = ["constant", "cosine"]\n',
            "timeout: must be a number in (0, 31622400] but got nan",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\nrepeats = 1.5\n[space]\nschedule = ["constant", "cosine"]\n',
            "repeats: must be an integer in [0, 1000] but got 1.5",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\nrepeats = { min = 1, max = 5 }\n[space]\nschedule = ["constant", "cosine"]\n',
            "repeats.min: must be an integer in [2, 1000] but got 1",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\nrepeats = { min = 4, max = 3 }\n[space]\nschedule = ["constant", "cosine"]\n',
            "repeats.max: must be an integer in [4, 1000] but got 3",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\nrepeats = { min = 3 }\n[space]\nschedule = ["constant", "cosine"]\n',
            "repeats: must be a count or a table { min = 3, max = 10 }",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\nlr = { low = 0.01, high = 0.1, step = 0 }',
            "space.lr.step: must be a number in (0, 0.09] but got 0",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\nlr = { low = 0.01, high = 0.1, step = "a" }',
            "space.lr.step: must be a number",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\nlr = { low = 0.01, high = 0.1, step = 0.01, log = true }',
            "space.lr: a log range cannot have a step",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\nlr = { low = 0.01, high = 0.1, step = 0.04 }',
            "space.lr: step must divide high - low (0.09) but got 0.04",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\nwarmup = { low = 0, high = 5, step = 2 }',
            "space.warmup: step must divide high - low (5) but got 2",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\nwarmup = { low = 0, high = 4, step = 0 }',
            "space.warmup.step: must be an integer in [1, 4] but got 0",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\npruner = { name = "median", n_startup_trials = 1.5 }\n[space]\nschedule = ["constant", "cosine"]\n',
            "pruner: n_startup_trials must be an integer in [0, 10000000] but got 1.5",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\n\n[gpu]\ntimeout = -5',
            "gpu.timeout: must be a number in (0, 31622400] but got -5",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\n\n[gpu]\npopulation = 0',
            "gpu.population: must be an integer in [1, 4096] but got 0",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\nmomentum = [0.5, "fast"]',
            "space.momentum: choices must all be of one kind but got number, string",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\nmomentum = [{ a = 1 }]',
            "space.momentum: a choice must be a number, a string, true/false or a list of numbers",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\nmomentum = [[0.5]]',
            "momentum must be a number in [0, 1) but got (0.5,)",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\nwarmup = [1, 1.0]',
            "space.warmup: choices must be distinct but got [1, 1.0]",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\nmomentum = [nan, 0.5]',
            "space.momentum: a choice must be a finite number but got nan",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "step"]\n[space.step]\nmilestones = [5, 2]',
            "milestones must be in increasing order but got [5, 2]",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[fixed]\noptimizer = ["sgd"]\n[space]\nschedule = ["constant", "cosine"]\n',
            "fixed.optimizer: unknown optimizer ['sgd']",
        ),
        (
            'question = "q"\ntrainer = "blobs"\ncompare = "schedule"\nn_trials = 3\n[space]\nschedule = ["constant", "cosine"]\n\n[arms.""]\nlr = 0.1',
            "arms: an arm's name: must be a non-empty string",
        ),
    ],
)
def test_bad_files_name_the_file_the_key_and_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_study_file(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and fragment in message and "\n" not in message


def test_a_gpu_table_changes_the_budget_on_a_gpu_only(tmp_path: Path) -> None:
    path = write_study(tmp_path)
    path.write_text(path.read_text() + "\n[gpu]\nn_trials = 64\npopulation = 32\n", encoding="utf-8")
    spec = load_study_file(path)
    assert (spec.for_device("cpu").n_trials, spec.for_device("cpu").population) == (8, 4)
    assert (spec.for_device("cuda").n_trials, spec.for_device("cuda").population) == (64, 32)
    assert spec.for_device("cuda").definition() == spec.definition()
    path.write_text(path.read_text() + "epochs = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="gpu.epochs: a \\[gpu\\] table changes only the budget"):
        load_study_file(path)


def test_overrides_are_validated(tmp_path: Path) -> None:
    spec = load_study_file(write_study(tmp_path))
    with pytest.raises(ConfigError, match=r"population: must be an integer in \[1, 4096\] but got 0"):
        spec.with_overrides(population=0)


def test_a_file_that_is_not_utf8_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('question = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=f"{path}: not UTF-8 text \\(byte 15\\)"):
        load_study_file(path)


def test_repeats_may_adapt_between_a_least_and_a_most(tmp_path: Path) -> None:
    spec = load_study_file(write_study(tmp_path, repeats="{ min = 3, max = 10 }"))
    assert (spec.repeats, spec.max_repeats) == (3, 10)
    fixed = load_study_file(write_study(tmp_path, name="fixed", repeats=3))
    assert (fixed.repeats, fixed.max_repeats) == (3, None)


def test_the_largest_valid_values_are_accepted(tmp_path: Path) -> None:
    """The ranges are sane, not tight: the edges themselves pass (a run of 100000 epochs is a study)."""
    path = write_study(tmp_path, epochs=100_000, population=4096, repeats=1000)
    spec = load_study_file(path)
    assert (spec.epochs, spec.population, spec.repeats) == (100_000, 4096, 1000)


def test_an_auto_population_is_bounded_by_the_sampler_s_need_for_feedback(tmp_path: Path) -> None:
    spec = load_study_file(write_study(tmp_path, population='"auto"', n_trials=64))
    assert spec.population == "auto" and spec.largest_population == 16  # a quarter of the trials
    assert load_study_file(write_study(tmp_path, population='"auto"', n_trials=2)).largest_population == 1
    assert spec.with_overrides(population=3).population == 3
    for bad in ('"many"', "0", "true"):
        with pytest.raises(ConfigError, match="population"):
            load_study_file(write_study(tmp_path, population=bad))
