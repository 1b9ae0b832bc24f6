"""The examples run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_digits_cnn_runs_its_study_through_the_python_api(tmp_path: Path) -> None:
    process = subprocess.run(
        [sys.executable, str(EXAMPLES / "digits_cnn.py")],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr
    # A verdict either way, or the one for repeats that did not vary (digits' small test set makes that likely).
    verdicts = ("wins", "No significant", "degenerate")
    assert "schedule" in process.stdout and any(v in process.stdout for v in verdicts), process.stdout
    study = optuna.load_study(study_name="digits_cnn", storage=f"sqlite:///{tmp_path / 'digits_cnn.db'}")
    repeats = [t for t in study.trials if "repeat_of" in t.user_attrs]
    assert len(study.trials) == 12 + len(repeats) and len(repeats) == 2 * 3
    assert max(t.value for t in study.trials if t.value is not None) > 0.9  # the CNN learns the digits
