from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import optuna_dashboard
import pytest
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState

from tests.cli.conftest import Outcome, assert_one_line_error
from tests.conftest import Reviewed, plug_in_study, write_study


def test_a_small_study_runs_and_answers(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    study = write_study(tmp_path, n_trials=6, population=3, repeats=2)
    db = tmp_path / "s.db"
    outcome = lrsearch("run", "--study", str(study), "--storage", f"sqlite:///{db}")
    assert outcome.code == 0, outcome.err
    assert "Question: Does cosine beat constant" in outcome.out and "Verdict:" in outcome.out
    assert "constant" in outcome.out and "cosine" in outcome.out
    trials = optuna.load_study(study_name="small", storage=f"sqlite:///{db}").trials
    assert len(trials) == 6 + 2 * 2  # the search, then two repeats of each group's best


def test_every_finished_trial_keeps_its_curves_beside_the_database(reviewed: Reviewed) -> None:
    study = optuna.load_study(study_name="small", storage=reviewed.url)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == len(study.trials) == 8 + 2 * 2
    for trial in finished:
        metas = get_all_artifact_meta(trial, storage=study._storage)
        assert sorted(m.filename for m in metas) == ["curves.json", "curves.svg"]
        assert all((reviewed.artifacts / m.artifact_id).is_file() for m in metas)


def test_artifacts_go_where_they_are_told(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    outcome = lrsearch(
        "run",
        "--study",
        str(write_study(tmp_path)),
        "--storage",
        url,
        "--n-trials",
        "2",
        "--population",
        "2",
        "--artifacts",
        str(tmp_path / "elsewhere"),
    )
    assert outcome.code == 0 and len(list((tmp_path / "elsewhere").iterdir())) == 2 * 2
    assert not (tmp_path / "s-artifacts").exists()


def test_the_default_storage_is_sqlite_in_the_working_directory(
    lrsearch: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LRSEARCH_STORAGE", raising=False)
    outcome = lrsearch("run", "--study", str(write_study(tmp_path)), "--n-trials", "2", "--population", "2")
    assert outcome.code == 0 and (tmp_path / "lrsearch.db").is_file()


def test_command_line_overrides(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    outcome = lrsearch(
        "run",
        "--study",
        str(write_study(tmp_path)),
        "--storage",
        url,
        "--n-trials",
        "3",
        "--epochs",
        "4",
        "--pruner",
        "none",
        "--sampler",
        "random",
        "--population",
        "3",
    )
    assert outcome.code == 0
    trials = optuna.load_study(study_name="small", storage=url).trials
    assert len(trials) == 3 and all(t.user_attrs["epochs"] == 4 for t in trials)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--study", "no_such_study"], ["unknown study 'no_such_study'", "cosine_vs_step"]),
        (["--study", "missing.toml"], ["study file missing.toml does not exist"]),
        (["--study", "cosine_vs_step", "--storage", "redis://localhost"], ["scheme 'redis' is not supported"]),
        (["--study", "cosine_vs_step", "--n-trials", "0"], ["n_trials: must be an integer in [1, 10000000] but got 0"]),
        (["--study", "cosine_vs_step", "--pruner", "wavelet"], ["'wavelet' is not one of"]),
        (["--study", "cosine_vs_step", "--device", "tpu"], ["device must be auto"]),
        (["--study", "cosine_vs_step", "--timeout", "-5"], ["timeout: must be a number in (0, 31622400] but got -5.0"]),
        (["--study", "cosine_vs_step", "--timeout", "nan"], ["timeout: must be a number in (0, 31622400] but got nan"]),
        (["--study", "cosine_vs_step", "--seed", "-1"], ["seed: must be an integer in [0, 4294967295] but got -1"]),
        (["--study", "cosine_vs_step", "--epochs", "1000000000000"], ["epochs: must be an integer in [1, 100000]"]),
        (["--study", "cosine_vs_step", "--workers", "0"], ["workers must be an integer in [1, 256] but got 0"]),
        (["--study", "cosine_vs_step", "--heartbeat", "0"], ["heartbeat interval must be an integer in [1, 3600]"]),
        (
            ["--study", "cosine_vs_step", "--workers", "1", "--devices", "cpu,cpu"],
            ["--workers 1 is fewer than the 2 devices listed"],
        ),
        (["--study", "cosine_vs_step", "--data-dir", "/nonexistent"], ["data folder /nonexistent does not exist"]),
        (
            ["--study", "cosine_vs_step", "--storage", "postgresql://u:pw@h:port/db"],
            ["storage postgresql://... is not"],
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    lrsearch: Callable[..., Outcome],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    fragments: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(lrsearch("run", *args), 2, *fragments)
    assert not (tmp_path / "lrsearch.db").exists()  # validated before anything was written


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("question = [", "not valid TOML"),
        ('question = "q"\ntrainer = "blobs"\ncompare = "x"', "a study needs a budget"),
    ],
)
def test_a_bad_study_file_names_itself(
    lrsearch: Callable[..., Outcome], tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    assert_one_line_error(
        lrsearch("run", "--study", str(path), "--storage", f"sqlite:///{tmp_path / 's.db'}"), 2, str(path), fragment
    )
    assert not (tmp_path / "s.db").exists()


def test_an_unreachable_database_is_one_line_within_30_seconds(
    lrsearch: Callable[..., Outcome], tmp_path: Path
) -> None:
    started = time.monotonic()
    outcome = lrsearch(
        "run", "--study", str(write_study(tmp_path)), "--storage", "postgresql://me:hunter2@127.0.0.1:9/lrsearch"
    )
    assert time.monotonic() - started < 30
    assert_one_line_error(outcome, 1, "cannot open the study database", "me:***@127.0.0.1:9")
    assert "hunter2" not in outcome.err


def test_a_changed_definition_is_refused(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = str(write_study(tmp_path))
    assert lrsearch("run", "--study", study, "--storage", url, "--n-trials", "1", "--population", "1").code == 0
    outcome = lrsearch("run", "--study", study, "--storage", url, "--epochs", "3")
    assert_one_line_error(outcome, 2, "already exists in this storage with a different definition")


@pytest.mark.parametrize(("extra", "retried"), [((), 4), (("--max-retry", "0"), 0)])
def test_ctrl_c_leaves_the_study_consistent_and_exits_130(tmp_path: Path, extra: tuple[str, ...], retried: int) -> None:
    import signal
    import subprocess
    import sys

    db = tmp_path / "s.db"
    study = write_study(tmp_path, n_trials=4, population=4, epochs=100000, pruner='"none"')
    process = subprocess.Popen(
        [sys.executable, "-m", "lrsearch", "run", "--study", str(study), "--storage", f"sqlite:///{db}", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the population is training
            time.sleep(0.5)
            try:
                if len(optuna.load_study(study_name="small", storage=f"sqlite:///{db}").trials) == 4:
                    break
            except KeyError:  # the study is not created yet
                pass
        time.sleep(1)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()  # never leave a 100000-epoch run behind
    assert process.returncode == 130 and err.strip().endswith("lrsearch: interrupted")
    trials = optuna.load_study(study_name="small", storage=f"sqlite:///{db}").trials
    states = sorted(t.state.name for t in trials)
    assert (
        states == ["FAIL"] * 4 + ["WAITING"] * retried
    )  # nothing left RUNNING; each enqueued again, as --max-retry says


@pytest.mark.parametrize("whom", ["the run only", "its process group"])
def test_ctrl_c_stops_local_workers_and_exits_130(tmp_path: Path, whom: str) -> None:
    """A notebook's interrupt reaches the run only, which passes it on; a terminal's reaches every worker too
    (each stops once)."""
    import os
    import signal
    import subprocess
    import sys

    db = tmp_path / "s.db"
    study = write_study(tmp_path, n_trials=8, population=2, epochs=100000, pruner='"none"')
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lrsearch",
            "run",
            "--study",
            str(study),
            "--storage",
            f"sqlite:///{db}",
            "--workers",
            "2",
            "--device",
            "cpu",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # until both workers' populations are training
            time.sleep(0.5)
            try:
                if len(optuna.load_study(study_name="small", storage=f"sqlite:///{db}").trials) == 4:
                    break
            except KeyError:  # the study is not created yet
                pass
        time.sleep(1)
        if whom == "the run only":
            process.send_signal(signal.SIGINT)
        else:
            os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=90)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # never leave a 100000-epoch run behind
        process.wait()
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "lrsearch: interrupted" and "Traceback" not in err
    trials = optuna.load_study(study_name="small", storage=f"sqlite:///{db}").trials
    states = sorted(t.state.name for t in trials)
    assert states == ["FAIL"] * 4 + ["WAITING"] * 4  # nothing left RUNNING; each one enqueued again


def test_two_runs_started_together_on_a_fresh_sqlite_file_share_it(tmp_path: Path) -> None:
    """Both create the schema and the study at the same moment (it used to end one of them with
    "UNIQUE constraint failed: alembic_version" or "database is locked")."""
    import subprocess
    import sys

    study = write_study(tmp_path, n_trials=4, population=2)
    url = f"sqlite:///{tmp_path / 's.db'}"
    command = [
        sys.executable,
        "-m",
        "lrsearch",
        "run",
        "--study",
        str(study),
        "--storage",
        url,
        "--device",
        "cpu",
        "--no-report",
    ]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    trials = optuna.load_study(study_name="small", storage=url).trials
    assert len(trials) >= 4 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)


def test_the_sampler_help_says_why_cma_es_is_not_offered(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch("run", "--help")
    assert outcome.code == 0 and "Not CMA-ES" in outcome.out and "unpickles" in outcome.out


def test_a_user_s_own_module_runs_as_a_study(
    lrsearch: Callable[..., Outcome], tmp_path: Path, user_module: str, storage_url: str
) -> None:
    """Their own nn.Module (BatchNorm, dropout) in their own file beside the study: pruning, repeats, the
    report, the dashboard's note and the curves as artifacts."""
    study = plug_in_study(tmp_path, f"{user_module}:problem")
    study.write_text(study.read_text().replace("repeats = 0", "repeats = 2").replace("n_trials = 8", "n_trials = 6"))
    outcome = lrsearch("run", "--study", str(study), "--storage", storage_url, "--artifacts", str(tmp_path / "a"))
    assert outcome.code == 0, outcome.err
    assert "Verdict:" in outcome.out
    loaded = optuna.load_study(study_name="small", storage=storage_url)
    assert len(loaded.trials) == 6 + 2 * 2
    assert {t.state for t in loaded.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert all(len(t.intermediate_values) <= 4 for t in loaded.trials)  # the problem's own 4 epochs
    assert "Two classes" not in outcome.err and user_module in optuna_dashboard.get_note(loaded)
    finished = [t for t in loaded.trials if t.state == TrialState.COMPLETE]
    assert all(get_all_artifact_meta(t, storage=loaded._storage) for t in finished)


def test_a_user_s_module_that_fails_is_one_line_and_writes_nothing(
    lrsearch: Callable[..., Outcome], tmp_path: Path, user_module: str
) -> None:
    study = plug_in_study(tmp_path, f"{user_module}:broken")
    outcome = lrsearch("run", "--study", str(study), "--storage", f"sqlite:///{tmp_path / 's.db'}")
    assert_one_line_error(outcome, 2, f"{study}: trainer: {user_module}:broken() raised RuntimeError")
    assert not (tmp_path / "s.db").exists()


def test_a_regression_is_a_minimized_study_end_to_end(
    lrsearch: Callable[..., Outcome], tmp_path: Path, user_module: str, storage_url: str
) -> None:
    """MSE with metric "loss": the study minimizes, each group's best (the one repeated) is its lowest, the
    pruner and the report rank lower as better, and every label says loss."""
    study = plug_in_study(tmp_path, f"{user_module}:regression")
    study.write_text(study.read_text().replace("repeats = 0", "repeats = 2"))
    outcome = lrsearch("run", "--study", str(study), "--storage", storage_url)
    assert outcome.code == 0, outcome.err
    loaded = optuna.load_study(study_name="small", storage=storage_url)
    assert loaded.direction == optuna.study.StudyDirection.MINIMIZE and loaded.metric_names == ["val_loss"]
    search = [t for t in loaded.trials if "repeat_of" not in t.user_attrs and t.state == TrialState.COMPLETE]
    repeated = {t.user_attrs["repeat_of"] for t in loaded.trials if "repeat_of" in t.user_attrs}
    for group in {t.params["schedule"] for t in search}:
        lowest = min((t for t in search if t.params["schedule"] == group), key=lambda t: t.value)
        assert lowest.number in repeated
    assert "test loss" in outcome.out and "accuracy" not in outcome.out.split("Verdict:")[1]
    report = json.loads(lrsearch("report", "--study", "small", "--storage", storage_url, "--json").out)
    assert report["metric"] == "loss" and report["maximize"] is False
    # Its attrs are named by the metric: no accuracy anywhere, the repeats' test loss in the report.
    attrs = {key for t in loaded.trials for key in t.user_attrs}
    assert {"val_loss", "test_loss", "train_loss_history"} <= attrs and not any("accuracy" in key for key in attrs)
    assert all(g["repeats"]["n"] == 2 for g in report["groups"])
    # The progress lines' best is the lowest.
    best = re.findall(r"best ([0-9.]+) \(trial (\d+)\)", outcome.err)[-1]
    lowest = min((t for t in loaded.trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert int(best[1]) == lowest.number and float(best[0]) == pytest.approx(lowest.value, abs=1e-4)


@pytest.mark.parametrize(("population", "max_retry", "failed", "retried"), [(4, 3, 4, 4), (4, 0, 4, 0), (1, 3, 1, 0)])
def test_out_of_memory_fails_the_round_halves_the_population_and_carries_on(
    tmp_path: Path, population: int, max_retry: int, failed: int, retried: int
) -> None:
    """In a worker process of its own, through the fault switch: the population's trials end FAIL saying
    why, come back as retries (as --max-retry allows; never where one trial alone ran out of memory), and the
    run reaches its total with the smaller population."""
    import os
    import subprocess
    import sys

    db = tmp_path / "s.db"
    study = write_study(tmp_path, n_trials=6, population=population, epochs=4, pruner='"none"')
    command = [sys.executable, "-m", "lrsearch", "run", "--study", str(study), "--storage", f"sqlite:///{db}"]
    run = subprocess.run(
        [*command, "--device", "cpu", "--no-report", "--max-retry", str(max_retry)],
        env={**os.environ, "LRSEARCH_INJECT_OOM": "2"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    said = "with a population of 4; retried with 2" if population > 1 else "training one trial alone; it fails for good"
    assert f"out of memory on cpu {said}" in run.stderr
    trials = optuna.load_study(study_name="small", storage=f"sqlite:///{db}").trials
    fail = [t for t in trials if t.state == TrialState.FAIL]
    assert len(fail) == failed and all("out of memory" in t.user_attrs["error"] for t in fail)
    assert all(t.user_attrs["worker"] and t.user_attrs["device"] == "cpu" for t in fail)
    retries = [t for t in trials if "failed_trial" in t.system_attrs]
    assert len(retries) == retried and all(t.state == TrialState.COMPLETE for t in retries)
    by_number = {t.number: t for t in fail}
    assert all(t.params == by_number[t.system_attrs["failed_trial"]].params for t in retries)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 6  # the total, the retries counted in it
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def test_a_fault_switch_set_wrong_is_one_line_and_writes_nothing(
    lrsearch: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LRSEARCH_INJECT_OOM", "soon")
    db = tmp_path / "s.db"
    outcome = lrsearch("run", "--study", str(write_study(tmp_path)), "--storage", f"sqlite:///{db}")
    assert_one_line_error(outcome, 2, "LRSEARCH_INJECT_OOM must be an epoch", "'soon'")
    assert not db.exists()
