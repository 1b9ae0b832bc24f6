"""``population = "auto"`` in a study: each worker trains as many trials at once as trains fastest on its
own device (``engine.sizing``), within what the sampler's feedback allows (``StudySpec.largest_population``)."""

from __future__ import annotations

from collections.abc import Callable

from lrsearch.engine import Problem
from lrsearch.engine.sizing import fastest_population
from lrsearch.spec.studies import AUTO, StudySpec

__all__ = ["resolve_auto_population"]


def resolve_auto_population(spec: StudySpec, problem: Problem, say: Callable[[str], None]) -> StudySpec:
    """The study with ``population = "auto"`` replaced by the size measured on ``problem``'s device (at least
    a PBT population's members), said through ``say``; unchanged for a given size."""
    if spec.population != AUTO:
        return spec
    sizing = fastest_population(problem, most=spec.largest_population, batch_size=spec.batch_size)
    size = max(sizing.size, spec.pbt_members or 1)
    say(f"population auto: {size} on {problem.device} ({sizing.describe()})")
    return spec.with_overrides(population=size)
