from __future__ import annotations

import json
from collections.abc import Callable

from tests.cli.conftest import Outcome


def test_the_cpu_part_of_the_device_check_passes_and_reports_its_figures(lrsearch: Callable[..., Outcome]) -> None:
    outcome = lrsearch("doctor", "--device", "cpu", "--json")
    assert outcome.code == 0, outcome.err
    report = json.loads(outcome.out)
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks) == {"optimizers", "host syncs", "out of memory", "two workers"}
    assert all(c["ok"] for c in checks.values()), checks
    assert "population halved to 2" in checks["out of memory"]["detail"]
    speeds = report["speeds"]
    assert {s["what"] for s in speeds} == {"blobs", "lenet"}
    assert all(s["rate"] > 0 for s in speeds)
