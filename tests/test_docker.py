"""The docker files, checked statically (no Docker engine runs here): they parse, and their services, ports,
volumes and commands agree with each other and with the CLI."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from lrsearch.cli.dashboard import command as dashboard_command
from lrsearch.cli.run import command as run_command
from lrsearch.spec.files import find_study

DOCKER = Path(__file__).resolve().parents[1] / "docker"


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:?message} and ${VAR:-default} substitution."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in values:
            return values[name]
        if op == ":-":
            return arg
        raise KeyError(f"{name} is required: {arg}")

    return re.sub(r"\$\{(\w+)(?:(:\?|:-)([^}]*))?\}", one, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = (DOCKER / "compose.yaml").read_text()
    return yaml.safe_load(interpolate(text, {"LRSEARCH_DB_PASSWORD": "s3cretPW7"}))


def test_the_password_must_be_given() -> None:
    with pytest.raises(KeyError, match="LRSEARCH_DB_PASSWORD is required"):
        interpolate((DOCKER / "compose.yaml").read_text(), {})


def test_services_and_volume(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "dashboard", "worker"}
    mounts = services["postgres"]["volumes"]
    volume = mounts[0].split(":")[0]
    assert volume in compose["volumes"] and mounts[0].endswith(":/var/lib/postgresql/data")
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name} image {image} is not pinned"


def test_the_dashboard_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    ports = compose["services"]["dashboard"]["ports"]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports)
    args = compose["services"]["dashboard"]["command"]
    assert args[0] == "dashboard"
    context = dashboard_command.make_context("dashboard", list(args[1:]))  # parses and checks every option
    assert str(context.params["port"]) == ports[0].split(":")[-1]


def test_workers_and_the_dashboard_share_the_artifacts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("worker", "dashboard"):
        (mount,) = services[name]["volumes"]
        volume, folder = mount.split(":")
        assert volume in compose["volumes"] and services[name]["environment"]["LRSEARCH_ARTIFACTS"] == folder


def test_one_storage_url_that_matches_postgres(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker_url = services["worker"]["environment"]["LRSEARCH_STORAGE"]
    dashboard_url = services["dashboard"]["environment"]["LRSEARCH_STORAGE"]
    assert worker_url == dashboard_url
    url = make_url(worker_url)
    env = services["postgres"]["environment"]
    assert (url.host, url.port) == ("postgres", 5432)
    assert (url.username, url.password, url.database) == (
        env["POSTGRES_USER"],
        env["POSTGRES_PASSWORD"],
        env["POSTGRES_DB"],
    )
    for name in ("worker", "dashboard"):
        assert "storage" not in " ".join(services[name]["command"])  # never on a command line


def test_workers_reserve_a_gpu_each_and_scale(compose: dict[str, Any]) -> None:
    deploy = compose["services"]["worker"]["deploy"]
    assert deploy["replicas"] >= 1
    (device,) = deploy["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["count"] == 1 and "gpu" in device["capabilities"]
    for name in ("worker", "dashboard"):
        assert compose["services"][name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_a_worker_that_dies_is_restarted_and_one_that_finished_is_not(compose: dict[str, Any]) -> None:
    assert compose["services"]["worker"]["restart"] == "on-failure"


def test_the_worker_command_is_a_valid_lrsearch_run(compose: dict[str, Any]) -> None:
    args = compose["services"]["worker"]["command"]
    assert args[0] == "run"
    context = run_command.make_context("run", list(args[1:]))  # parses and checks every option
    assert find_study(context.params["study_name"]).is_file()
    assert context.params["device"] == "cuda"


def test_the_dockerfile() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    base = next(line for line in lines if line.startswith("FROM "))
    assert re.fullmatch(r"FROM python:3\.11\.\d+-slim-\w+", base), base
    assert "pip install torch==2.13.0" in text and "pip install -r docker/requirements.lock" in text
    assert "dataset-fashion-mnist=" in text  # the data package pinned too
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1] not in ("USER root", "USER 0")
    assert lines.index(user[-1]) > max(i for i, line in enumerate(lines) if line.startswith("RUN pip"))
    assert 'ENTRYPOINT ["lrsearch"]' in lines
    # The studies come with the installed package (package data): no copy of them beside it.
    assert (
        "LRSEARCH_STUDIES" not in text
        and "COPY lrsearch ./lrsearch" in lines
        and "RUN pip install --no-deps ." in lines
    )
    assert "ENV LRSEARCH_ARTIFACTS=/artifacts" in lines and "chown lrsearch /artifacts" in text


def test_the_lock_pins_every_dependency() -> None:
    lock = [
        line for line in (DOCKER / "requirements.lock").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.+\-]+", line) for line in lock), lock
    names = {line.split("==")[0].lower() for line in lock}
    assert {"optuna", "optuna-dashboard", "psycopg", "psycopg-binary", "click", "sqlalchemy", "grpcio"} <= names
    assert "torch" not in names  # installed first, at its own pin
