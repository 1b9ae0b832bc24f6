from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lrsearch.engine.data import FASHION_MNIST_FILES
from tests.cli.conftest import Outcome, assert_one_line_error, run_process


def test_json_output(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch(
        "train",
        "--trainer",
        "blobs",
        "--momentum",
        "0.9",
        "--epochs",
        "5",
        "--schedule",
        "step",
        "--schedule-param",
        "milestones=3",
        "--json",
    )
    assert outcome.code == 0, outcome.err
    result = json.loads(outcome.out)
    assert set(result) >= {"config", "history", "val_accuracy", "test_accuracy", "diverged", "seconds"}
    config = result["config"]
    assert config["trainer"] == "blobs" and config["lr"] == 0.01  # blobs' default: seed 000's SGD rate
    assert config["momentum"] == 0.9 and config["schedule_params"] == {"milestones": [3]}
    history = result["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert [h["lr"] for h in history] == pytest.approx([0.01, 0.01, 0.01, 0.001, 0.001])
    assert set(history[0]) == {"epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy"}
    assert result["diverged"] is False and result["status"] == "completed"
    assert result["val_accuracy"] == pytest.approx(history[-1]["val_accuracy"])


def test_a_diverging_run_is_reported_not_an_error(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch("train", "--trainer", "blobs", "--lr", "100", "--momentum", "0.9", "--epochs", "3", "--json")
    assert outcome.code == 0
    result = json.loads(outcome.out)
    assert result["diverged"] is True and result["status"] == "diverged"
    assert result["val_accuracy"] is None and result["test_accuracy"] is None


def test_table_output(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch("train", "--trainer", "blobs", "--lr", "0.1", "--epochs", "20")
    assert outcome.code == 0
    assert "val acc" in outcome.out and "completed" in outcome.out and "test accuracy" in outcome.out


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["--trainer", "mnist"],
            ["unknown trainer 'mnist'; choose from blobs, fashion_mnist", "'module.path:callable'"],
        ),
        (["--trainer", "json:loads", "--lr", "0.1"], ["json:loads() raised TypeError"]),
        (["--trainer", "blobs", "--optimizer", "sgdx"], ["unknown optimizer 'sgdx'"]),
        (["--trainer", "blobs", "--schedule", "cosinus"], ["unknown schedule 'cosinus'"]),
        (["--trainer", "blobs", "--schedule", "step", "--schedule-param", "gama=0.1"], ["no parameter 'gama'"]),
        (["--trainer", "blobs", "--lr", "0"], ["lr must be a number in (0, 10000] but got 0.0"]),
        (["--trainer", "blobs", "--lr", "-0.5"], ["lr must be a number in (0, 10000] but got -0.5"]),
        (["--trainer", "blobs", "--lr", "abc"], ["'abc' is not a valid float"]),
        (["--trainer", "blobs", "--momentum", "x"], ["'x' is not a valid float"]),
        (["--trainer", "blobs", "--momentum", "1.2"], ["momentum must be a number in [0, 1) but got 1.2"]),
        (["--trainer", "blobs", "--optimizer", "adam", "--momentum", "0.9"], ["adam has no parameter 'momentum'"]),
        (["--trainer", "blobs", "--optimizer-param", "beta1=0.9"], ["sgd has no parameter 'beta1'"]),
        (["--trainer", "blobs", "--optimizer", "adam", "--optimizer-param", "beta1=x"], ["beta1 must be a number"]),
        (["--trainer", "blobs", "--nesterov"], ["nesterov needs momentum > 0"]),
        (["--trainer", "blobs", "--decay", "-1"], ["decay must be a number in [0, 1000000] but got -1.0"]),
        (["--trainer", "blobs", "--epochs", "0"], ["epochs must be an integer in [1, 100000] but got 0"]),
        (["--trainer", "blobs", "--batch-size", "-2"], ["batch_size must be an integer in [1, 1048576]"]),
        (["--trainer", "blobs", "--warmup", "-1"], ["warmup must be an integer in [0, 1000000000] but got -1"]),
        (["--trainer", "blobs", "--schedule", "cosine", "--warmup", "300"], ["longer than warmup"]),
        (["--trainer", "blobs", "--schedule-unit", "batch"], ["'batch' is not one of 'epoch', 'update'"]),
        (["--trainer", "blobs", "--device", "tpu"], ["device must be auto, cpu, cuda or cuda:N but got 'tpu'"]),
        (["--trainer", "blobs", "--seed", "-1"], ["seed must be an integer in [0, 4294967295] but got -1"]),
        (
            ["--trainer", "blobs", "--warmup-start", "nan", "--warmup", "2"],
            ["warmup_start must be a number in [0, 10000] but got nan"],
        ),
        (["--trainer", "blobs", "--warmup-start", "nan"], ["warmup_start must be a number in [0, 10000] but got nan"]),
        (["--trainer", "blobs", "--decay", "inf"], ["decay must be a number in [0, 1000000] but got inf"]),
        (["--trainer", "blobs", "--lr", "1e400"], ["lr must be a number in (0, 10000] but got inf"]),
        (["--trainer", "blobs", "--epochs", "1000000000000"], ["epochs must be an integer in [1, 100000]"]),
        (["--trainer", "blobs", "--seed", "99999999999999999999"], ["seed must be an integer in [0, 4294967295]"]),
        (
            ["--trainer", "blobs", "--optimizer-param", "eps=nan", "--optimizer", "adam"],
            ["eps must be a number in [0, 1]"],
        ),
        (["--trainer", "blobs", "--schedule", "step", "--schedule-param", "milestones=5,2"], ["increasing order"]),
        (
            ["--trainer", "fashion_mnist", "--data-dir", "/nonexistent/folder"],
            ["data folder /nonexistent/folder does not exist"],
        ),
        (["--lr", "0.1"], ["Missing option '--trainer'"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    lrsearch: Callable[..., Outcome], args: list[str], fragments: list[str]
) -> None:
    outcome = lrsearch("train", *args)
    assert_one_line_error(outcome, 2, *fragments)
    assert outcome.out == ""


def test_unusable_data_is_one_line_and_exit_1(lrsearch: Callable[..., Outcome], tmp_path: Path) -> None:
    for stem in FASHION_MNIST_FILES.values():
        (tmp_path / stem).write_bytes(b"not an idx file")
    outcome = lrsearch("train", "--trainer", "fashion_mnist", "--epochs", "1", "--data-dir", str(tmp_path))
    assert_one_line_error(outcome, 1, "not an IDX file", str(tmp_path))


def test_debug_shows_the_traceback(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch("--debug", "train", "--trainer", "blobs", "--lr", "-1")
    assert outcome.code == 2 and "Traceback" in outcome.err and "ConfigError" in outcome.err


# Up to a second: inside the imports, where an interrupt inside a dataclass's exec once made CPython exit -2
# and one inside __set_name__ came out as a RuntimeError; 4 s: mostly training by then.
@pytest.mark.parametrize("delay", [0, 0.25, 0.5, 0.75, 1, 4])
def test_ctrl_c_exits_130_with_one_line(delay: float) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "lrsearch", "train", "--trainer", "blobs", "--epochs", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # torch's library mapped (a loaded machine can take seconds to get there), then the delay.
        deadline = time.monotonic() + 60
        while "libtorch" not in Path(f"/proc/{process.pid}/maps").read_text():
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.01)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()  # never leave a 100000-epoch run behind
    assert process.returncode == 130
    assert err.strip() == "lrsearch: interrupted"


def test_the_console_script_and_module_entry_points() -> None:
    script = Path(sys.executable).parent / "lrsearch"
    assert subprocess.run([str(script), "--version"], capture_output=True, text=True, check=False).stdout.startswith(
        "lrsearch"
    )
    process = run_process("train", "--trainer", "blobs", "--epochs", "2", "--json")
    assert process.returncode == 0 and json.loads(process.stdout)["history"][-1]["epoch"] == 2


@pytest.fixture
def in_user_folder(tmp_path: Path, user_module: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # the user's module is found in the working directory
    return user_module


def test_a_user_s_own_module_trains(lrsearch: Callable[..., Outcome], in_user_folder: str) -> None:
    outcome = lrsearch("train", "--trainer", f"{in_user_folder}:problem", "--lr", "0.1", "--momentum", "0.9", "--json")
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    assert report["status"] == "completed" and len(report["history"]) == 4 and report["test_accuracy"] > 0.6


def test_a_user_s_regression_names_its_metric(lrsearch: Callable[..., Outcome], in_user_folder: str) -> None:
    outcome = lrsearch("train", "--trainer", f"{in_user_folder}:regression", "--lr", "0.1")
    assert outcome.code == 0, outcome.err
    assert "val loss" in outcome.out and "accuracy" not in outcome.out
    as_json = lrsearch("train", "--trainer", f"{in_user_folder}:regression", "--lr", "0.1", "--json")
    report = json.loads(as_json.out)
    assert report["metric"] == "loss" and report["test_loss"] is not None and "accuracy" not in as_json.out
    assert set(report["history"][0]) == {"epoch", "lr", "train_loss", "val_loss"}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "lr: required for a problem of your own"),
        (["--lr", "0.1", "--data-dir", "."], "--data-dir is for the bundled Fashion-MNIST trainers"),
    ],
)
def test_a_user_s_module_needs_its_rate_and_brings_its_own_data(
    lrsearch: Callable[..., Outcome], in_user_folder: str, args: list[str], fragment: str
) -> None:
    assert_one_line_error(lrsearch("train", "--trainer", f"{in_user_folder}:problem", *args), 2, fragment)
