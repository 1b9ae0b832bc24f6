"""``lr = "auto"`` in a study: the range test decides the rate bounds, once per study.

The first worker runs the test (with the study's fixed optimizer settings) and stores the range with the
study; every later worker, and every rerun, samples from that same stored range.
"""

from __future__ import annotations

import dataclasses

import optuna

from lrsearch.engine import Problem
from lrsearch.engine.config import TrainConfig
from lrsearch.engine.lr_find import lr_range_test
from lrsearch.errors import ConfigError, RuntimeFailure
from lrsearch.spec.space import WITH_MOMENTUM, FloatRange
from lrsearch.spec.studies import StudySpec
from lrsearch.storage.retries import retrying

__all__ = ["LR_RANGE", "resolve_auto_lr"]

#: Study user attr holding the range the test found.
LR_RANGE = "lr_range"


def resolve_auto_lr(spec: StudySpec, study: optuna.Study, problem: Problem) -> StudySpec:
    """The study with ``lr = "auto"`` replaced by the range test's bounds (unchanged without it)."""
    param = spec.space.params.get("lr")
    if not (isinstance(param, FloatRange) and param.auto):
        return spec
    found = retrying(lambda: study.user_attrs.get(LR_RANGE))
    if found is None:
        fixed = spec.space.fixed
        optimizer = fixed.get("optimizer", "sgd")
        config = TrainConfig(
            optimizer=optimizer, momentum=fixed.get("momentum", 0.0) if optimizer in WITH_MOMENTUM else 0.0
        )
        try:
            test = lr_range_test(problem, config, start=param.low, end=param.high, batch_size=spec.batch_size)
        except ConfigError as exc:  # the sweep is lrsearch's, not the file's: the problem would not train
            raise RuntimeFailure(f"lr = 'auto': {exc}") from None
        found = {"low": test.low, "high": test.high, "suggested": test.suggested}
        retrying(study.set_user_attr, LR_RANGE, found)
    params = {**spec.space.params, "lr": FloatRange(found["low"], found["high"], log=True)}
    return dataclasses.replace(spec, space=dataclasses.replace(spec.space, params=params))
