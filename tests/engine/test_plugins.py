from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lrsearch.engine.plugins import available, check_name, resolve
from lrsearch.errors import ConfigError
from lrsearch.spec.studies import load_study_file
from tests.conftest import USER_PROBLEM, plug_in_study


def test_a_bundled_trainer_resolves_without_its_data() -> None:
    trainer = resolve("fashion_mnist")
    assert (trainer.epochs, trainer.batch_size, trainer.train_examples, trainer.maximize) == (30, 256, 50_000, True)
    assert trainer.problem is None


def test_a_module_beside_the_study_file_is_found(tmp_path: Path, user_module: str) -> None:
    trainer = resolve(f"{user_module}:problem", beside=tmp_path)
    assert trainer.problem is not None and trainer.maximize
    assert (trainer.epochs, trainer.batch_size, trainer.train_examples) == (4, 16, 96)
    assert trainer.description == "Two classes, four features: the user's Net."
    assert str(tmp_path) not in sys.path  # looked up there for this import only


def test_a_module_in_the_working_directory_is_found(
    tmp_path: Path, user_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert not resolve(f"{user_module}:regression").maximize


def test_an_installed_module_is_found() -> None:
    with pytest.raises(ConfigError, match=r"^json:loads\(\) raised TypeError: "):
        resolve("json:loads")


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        ("broken", r"^{m}:broken\(\) raised RuntimeError: the data server is down$"),
        ("not_a_problem", r"^{m}:not_a_problem\(\) must return an lrsearch.Problem but returned int$"),
        ("bad_values", r"^{m}:bad_values: batch_size must be an integer in \[1, 1048576\] but got 0$"),
        ("NOT_CALLABLE", r"^'{m}:NOT_CALLABLE' must name a callable that returns an lrsearch.Problem but names a int$"),
        ("missing", r"^module '{m}' has no 'missing'$"),
    ],
)
def test_a_bad_plug_in_is_one_clear_error(tmp_path: Path, user_module: str, attribute: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.format(m=user_module)):
        resolve(f"{user_module}:{attribute}", beside=tmp_path)


def test_a_module_that_is_nowhere_or_fails_to_import(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^no module 'nowhere_at_all' in {tmp_path}, .* or among installed"):
        resolve("nowhere_at_all:problem", beside=tmp_path)
    (tmp_path / "needs_more.py").write_text("import a_package_nobody_installed\n")
    (tmp_path / "raises_early.py").write_text("raise ValueError('no config file')\n")
    try:
        with pytest.raises(ConfigError, match="^importing 'needs_more' failed: No module named 'a_package_nobody"):
            resolve("needs_more:problem", beside=tmp_path)
        with pytest.raises(ConfigError, match="^importing 'raises_early' raised ValueError: no config file$"):
            resolve("raises_early:problem", beside=tmp_path)
    finally:
        sys.modules.pop("needs_more", None)
        sys.modules.pop("raises_early", None)


@pytest.mark.parametrize("name", ["mnist", "my problem:x", "mod:", ":fn", "a..b:c", 3])
def test_names_that_are_no_trainer(name: object) -> None:
    with pytest.raises(ConfigError, match="unknown trainer|must be a string"):
        check_name(name)


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A distribution installed into a folder on sys.path: its entry point in lrsearch.engine."""
    site = tmp_path / "site"
    info = site / "lrsearch_fake_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lrsearch-fake-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[lrsearch.trainers]\nfake = lrsearch_fake_plugin:problem\nbroken = lrsearch_fake_plugin_gone:problem\n"
    )
    (site / "lrsearch_fake_plugin.py").write_text(USER_PROBLEM)
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("lrsearch_fake_plugin", None)


def test_an_installed_plug_in_is_named_like_a_bundled_trainer(installed_plugin: None) -> None:
    assert check_name("fake") == "fake"
    trainer = resolve("fake")
    assert trainer.problem is not None and trainer.train_examples == 96
    listed = dict(available())
    assert listed["fake"] == "Two classes, four features: the user's Net."
    assert listed["broken"].startswith("cannot be loaded (ModuleNotFoundError")
    assert "blobs" in listed


def test_a_study_file_names_a_module_beside_it(tmp_path: Path, user_module: str) -> None:
    spec = load_study_file(plug_in_study(tmp_path, f"{user_module}:problem"))
    assert spec.resolved_trainer.problem is not None and spec.epochs == 4  # the problem's own default


def test_a_study_file_naming_a_broken_plug_in_names_the_file_and_the_key(tmp_path: Path, user_module: str) -> None:
    path = plug_in_study(tmp_path, f"{user_module}:broken")
    with pytest.raises(ConfigError, match=rf"^{path}: trainer: {user_module}:broken\(\) raised RuntimeError"):
        load_study_file(path)
