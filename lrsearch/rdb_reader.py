"""A faster reader of trials from Optuna's RDB schema.

Every worker's cache loads every finished trial once, and Optuna's own reader builds an ORM object for each
row (every parameter, attribute and per-epoch value): with blobs trials of 200 epochs and eight workers,
that was most of a worker's time. This reads the same tables with plain SELECTs and builds the same
FrozenTrials (the tests hold the two equal); ``install`` puts it in place of the storage's reader.

A worker can skip the per-epoch values (``with_steps=False``): the intermediate values and the per-epoch
user attrs (``*_history``). Its sampler never reads them, and its pruner gets the few it needs from
``completed_values``. That is most of the data (200 rows and four 200-long lists per blobs trial).
"""

from __future__ import annotations

import datetime
import functools
import json
from collections import defaultdict
from collections.abc import Container, Iterable
from typing import Any

import sqlalchemy
from optuna import distributions
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

__all__ = ["PER_EPOCH_ATTR_SUFFIX", "completed_values", "install", "read_trials", "reads_steps"]

#: User attrs whose key ends so hold per-epoch lists (``lr_history``...): skipped with the per-epoch values.
PER_EPOCH_ATTR_SUFFIX = "_history"

#: Ids per IN (...) list, below every database's limit on bound variables.
_CHUNK = 500


@functools.lru_cache(maxsize=4096)
def _distribution(text: str) -> distributions.BaseDistribution:
    return distributions.json_to_distribution(text)


def _local(utc: datetime.datetime | None) -> datetime.datetime | None:
    """Optuna's conversion: naive UTC in the database, naive local time in a FrozenTrial."""
    if utc is None:
        return None
    return utc.replace(tzinfo=datetime.timezone.utc).astimezone().replace(tzinfo=None)


def _rows(session: Any, model: Any, columns: Iterable[str], ids: list[int], order: str | None = None,
          where: Any = None) -> list[Any]:  # fmt: skip
    out: list[Any] = []
    for start in range(0, len(ids), _CHUNK):
        query = sqlalchemy.select(*(getattr(model, c) for c in columns)).where(model.trial_id.in_(ids[start : start + _CHUNK]))
        if where is not None:
            query = query.where(where)
        if order:
            query = query.order_by(getattr(model, order))
        out.extend(session.execute(query).all())
    return out


def read_trials(
    backend: RDBStorage,
    study_id: int,
    states: Container[TrialState] | None,
    included_trial_ids: set[int],
    trial_id_greater_than: int,
    *,
    with_steps: bool = True,
) -> list[FrozenTrial]:
    """What ``RDBStorage._get_trials`` returns, read without the ORM (and without the per-epoch values and
    user attrs unless ``with_steps``)."""
    included = [i for i in included_trial_ids if i <= trial_id_greater_than]
    trials = models.TrialModel
    with _create_scoped_session(backend.scoped_session) as session:
        models.StudyModel.find_or_raise_by_id(study_id, session)  # a missing study raises, as Optuna's does
        conditions = [trials.study_id == study_id]
        if states is not None:
            conditions.append(trials.state.in_(list(states)))  # type: ignore[arg-type]
        if included and trial_id_greater_than > -1:
            conditions.append(sqlalchemy.or_(trials.trial_id.in_(included), trials.trial_id > trial_id_greater_than))
        elif trial_id_greater_than > -1:
            conditions.append(trials.trial_id > trial_id_greater_than)
        heads = session.execute(
            sqlalchemy.select(trials.trial_id, trials.number, trials.state, trials._datetime_start_utc,
                              trials._datetime_complete_utc).where(*conditions).order_by(trials.trial_id)
        ).all()  # fmt: skip
        ids = [h.trial_id for h in heads]
        if not ids:
            return []
        params = _rows(session, models.TrialParamModel, ("trial_id", "param_name", "param_value", "distribution_json"),
                       ids, order="param_id")  # fmt: skip
        values = _rows(session, models.TrialValueModel, ("trial_id", "objective", "value", "value_type"), ids)
        attrs = models.TrialUserAttributeModel
        per_epoch = None if with_steps else ~attrs.key.endswith(PER_EPOCH_ATTR_SUFFIX, autoescape=True)
        user = _rows(session, attrs, ("trial_id", "key", "value_json"), ids, where=per_epoch)
        system = _rows(session, models.TrialSystemAttributeModel, ("trial_id", "key", "value_json"), ids)
        steps = _rows(session, models.TrialIntermediateValueModel,
                      ("trial_id", "step", "intermediate_value", "intermediate_value_type"), ids) if with_steps else []  # fmt: skip

    by_trial: dict[str, dict[int, list[Any]]] = {name: defaultdict(list) for name in ("p", "v", "u", "s", "i")}
    for name, rows in (("p", params), ("v", values), ("u", user), ("s", system), ("i", steps)):
        for row in rows:
            by_trial[name][row.trial_id].append(row)
    out = []
    for head in heads:
        tid = head.trial_id
        trial_values: list[float] | None = None
        if by_trial["v"][tid]:
            trial_values = [0.0] * len(by_trial["v"][tid])
            for v in by_trial["v"][tid]:
                trial_values[v.objective] = models.TrialValueModel.stored_repr_to_value(v.value, v.value_type)
        dists = {p.param_name: _distribution(p.distribution_json) for p in by_trial["p"][tid]}
        out.append(
            FrozenTrial(
                number=head.number,
                state=head.state,
                value=None,
                values=trial_values,
                datetime_start=_local(head._datetime_start_utc),
                datetime_complete=_local(head._datetime_complete_utc),
                params={p.param_name: dists[p.param_name].to_external_repr(p.param_value) for p in by_trial["p"][tid]},
                distributions=dists,
                user_attrs={a.key: json.loads(a.value_json) for a in by_trial["u"][tid]},
                system_attrs={a.key: json.loads(a.value_json) for a in by_trial["s"][tid]},
                intermediate_values={
                    i.step: models.TrialIntermediateValueModel.stored_repr_to_intermediate_value(
                        i.intermediate_value, i.intermediate_value_type
                    )
                    for i in by_trial["i"][tid]
                },
                trial_id=tid,
            )
        )
    return out


def install(backend: RDBStorage, *, with_steps: bool = True) -> None:
    """Read trials through ``read_trials`` from now on (the cache Optuna wraps around it is unchanged)."""
    backend._get_trials = functools.partial(read_trials, backend, with_steps=with_steps)  # type: ignore[method-assign]


def reads_steps(backend: RDBStorage) -> bool:
    """Whether the trials read through ``backend`` carry their per-epoch values."""
    reader = backend._get_trials
    return getattr(reader, "func", None) is not read_trials or reader.keywords.get("with_steps", True)


def completed_values(backend: RDBStorage, study_id: int, steps: Iterable[int]) -> dict[int, dict[int, float]]:
    """trial id -> {step: value} of the study's completed trials at ``steps``: what a median or percentile
    pruner compares a running trial with, in one query."""
    trials, values = models.TrialModel, models.TrialIntermediateValueModel
    with _create_scoped_session(backend.scoped_session) as session:
        rows = session.execute(
            sqlalchemy.select(values.trial_id, values.step, values.intermediate_value, values.intermediate_value_type)
            .join(trials, trials.trial_id == values.trial_id)
            .where(trials.study_id == study_id, trials.state == TrialState.COMPLETE, values.step.in_(list(steps)))
        ).all()  # fmt: skip
    out: dict[int, dict[int, float]] = defaultdict(dict)
    for row in rows:
        out[row.trial_id][row.step] = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value(
            row.intermediate_value, row.intermediate_value_type
        )
    return dict(out)
