"""The package as a wheel installs it: the bundled studies are package data, listed and run without a
checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, installed into a folder of its own (offline: no build isolation)."""
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(folder / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (folder / "dist").glob("lrsearch-*.whl")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(folder / "site"), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return folder / "site"


def lrsearch(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``lrsearch`` from the installed wheel only: without site processing (this checkout's editable
    install hooks in there), the wheel's folder first, then the dependencies."""
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]]; sys.path.append(sys.argv[2]); import lrsearch; "
        "assert lrsearch.__file__.startswith(sys.argv[1]), lrsearch.__file__; "
        "from lrsearch.cli import main; sys.exit(main(sys.argv[3:]))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LRSEARCH_STUDIES")}
    return subprocess.run(
        [sys.executable, "-S", "-c", code, str(site), sysconfig.get_paths()["purelib"], *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
        check=False,
    )


def test_a_wheel_install_lists_and_runs_the_bundled_studies(installed: Path, tmp_path: Path) -> None:
    listed = lrsearch(installed, "studies", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in ("cosine_vs_step", "blobs_lr", "seed004_sgd_rates"))
    ran = lrsearch(
        installed,
        "run",
        "--study",
        "blobs_lr",
        "--storage",
        f"sqlite:///{tmp_path / 's.db'}",
        "--n-trials",
        "2",
        "--population",
        "2",
        "--epochs",
        "2",
        "--device",
        "cpu",
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    assert "Verdict:" in ran.stdout
