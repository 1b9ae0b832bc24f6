"""A faster reader of trials from Optuna's RDB schema.

Every worker's cache loads every finished trial once, and Optuna's own reader builds an ORM object for each
row (every parameter, attribute and per-epoch value): with blobs trials of 200 epochs and eight workers,
that was most of a worker's time. This reads the same tables with plain SELECTs and builds the same
FrozenTrials (the tests hold the two equal); ``install`` puts it in place of the storage's reader.

A worker can skip the per-epoch values (``with_steps=False``): the intermediate values and the per-epoch
user attrs (``*_history``). Its sampler never reads them, and its pruner gets the few it needs from
``completed_values``. That is most of the data (200 rows and four 200-long lists per blobs trial).

Optuna's cache reads every running trial again at every read of the study (hundreds, with several workers
each training a population), yet a running trial rarely changes: its parameters arrive once, its end
once. The installed reader (``Reader``) keeps the running trials it built and builds one again only when its
state, or the number or ids of its rows, changed since (one grouped query tells); a row overwritten in
place, which neither lrsearch nor Optuna's samplers do to a running trial, would be seen when it ends.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import threading
from collections import defaultdict
from collections.abc import Container, Iterable
from typing import Any

import numpy as np
import sqlalchemy
from optuna import distributions
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

from lrsearch.schema import PER_EPOCH_SUFFIX

__all__ = ["Reader", "completed_curves", "completed_values", "install", "read_trials", "reads_steps"]

#: Ids per IN (...) list, below every database's limit on bound variables.
_CHUNK = 500


@functools.lru_cache(maxsize=4096)
def _distribution(text: str) -> distributions.BaseDistribution:
    return distributions.json_to_distribution(text)


def _local(utc: datetime.datetime | None) -> datetime.datetime | None:
    """Optuna's conversion: naive UTC in the database, naive local time in a FrozenTrial."""
    if utc is None:
        return None
    return utc.replace(tzinfo=datetime.UTC).astimezone().replace(tzinfo=None)


def _rows(
    session: Any, model: Any, columns: Iterable[str], ids: list[int], order: str | None = None, where: Any = None
) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(ids), _CHUNK):
        query = sqlalchemy.select(*(getattr(model, c) for c in columns)).where(
            model.trial_id.in_(ids[start : start + _CHUNK])
        )
        if where is not None:
            query = query.where(where)
        if order:
            query = query.order_by(getattr(model, order))
        out.extend(session.execute(query).all())
    return out


#: A running trial's rows as ``_stamps`` counts them: (table, count, sum of row ids) per child table.
Stamp = tuple[tuple[str, int, int], ...]


def _children(with_steps: bool) -> list[tuple[Any, Any, Any]]:
    """The tables a trial's rows live in, each with its row id and the condition on what is read."""
    attrs = models.TrialUserAttributeModel
    per_epoch = None if with_steps else ~attrs.key.endswith(PER_EPOCH_SUFFIX, autoescape=True)
    out = [
        (models.TrialParamModel, models.TrialParamModel.param_id, None),
        (attrs, attrs.trial_user_attribute_id, per_epoch),
        (models.TrialSystemAttributeModel, models.TrialSystemAttributeModel.trial_system_attribute_id, None),
        (models.TrialValueModel, models.TrialValueModel.trial_value_id, None),
    ]
    if with_steps:
        out.append(
            (models.TrialIntermediateValueModel, models.TrialIntermediateValueModel.trial_intermediate_value_id, None)
        )
    return out


def _stamps(session: Any, ids: list[int], with_steps: bool) -> dict[int, Stamp]:
    """Per trial, how many rows it has in each child table and the sum of their ids: rows are only added or
    deleted (new ids are larger than every old one), so any change alters one or the other."""
    found: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
    for model, row_id, where in _children(with_steps):
        for start in range(0, len(ids), _CHUNK):
            query = (
                sqlalchemy.select(model.trial_id, sqlalchemy.func.count(), sqlalchemy.func.sum(row_id))
                .where(model.trial_id.in_(ids[start : start + _CHUNK]))
                .group_by(model.trial_id)
            )
            if where is not None:
                query = query.where(where)
            for trial_id, count, total in session.execute(query):
                found[trial_id].append((model.__tablename__, count, int(total)))
    return {trial_id: tuple(sorted(found[trial_id])) for trial_id in ids}


def read_trials(
    backend: RDBStorage,
    study_id: int,
    states: Container[TrialState] | None,
    included_trial_ids: set[int],
    trial_id_greater_than: int,
    *,
    with_steps: bool = True,
    running: dict[int, tuple[Stamp, FrozenTrial]] | None = None,
) -> list[FrozenTrial]:
    """What ``RDBStorage._get_trials`` returns, read without the ORM (and without the per-epoch values and
    user attrs unless ``with_steps``). ``running``: the running trials built before, by id with their stamps;
    those unchanged are not read again, and it is brought up to date with this read."""
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
            sqlalchemy.select(
                trials.trial_id, trials.number, trials.state, trials._datetime_start_utc, trials._datetime_complete_utc
            )
            .where(*conditions)
            .order_by(trials.trial_id)
        ).all()
        if not heads:
            return []
        stamps: dict[int, Stamp] = {}
        kept: dict[int, FrozenTrial] = {}
        if running is not None:
            # Stamped before the rows are read: a change in between is read now and seen again next time.
            stamps = _stamps(session, [h.trial_id for h in heads if h.state == TrialState.RUNNING], with_steps)
            kept = {
                tid: running[tid][1] for tid, stamp in stamps.items() if tid in running and running[tid][0] == stamp
            }
        ids = [h.trial_id for h in heads if h.trial_id not in kept]
        params = _rows(
            session,
            models.TrialParamModel,
            ("trial_id", "param_name", "param_value", "distribution_json"),
            ids,
            order="param_id",
        )
        values = _rows(session, models.TrialValueModel, ("trial_id", "objective", "value", "value_type"), ids)
        attrs = models.TrialUserAttributeModel
        per_epoch = None if with_steps else ~attrs.key.endswith(PER_EPOCH_SUFFIX, autoescape=True)
        user = _rows(session, attrs, ("trial_id", "key", "value_json"), ids, where=per_epoch)
        system = _rows(session, models.TrialSystemAttributeModel, ("trial_id", "key", "value_json"), ids)
        steps = (
            _rows(
                session,
                models.TrialIntermediateValueModel,
                ("trial_id", "step", "intermediate_value", "intermediate_value_type"),
                ids,
            )
            if with_steps
            else []
        )

    by_trial: dict[str, dict[int, list[Any]]] = {name: defaultdict(list) for name in ("p", "v", "u", "s", "i")}
    for name, rows in (("p", params), ("v", values), ("u", user), ("s", system), ("i", steps)):
        for row in rows:
            by_trial[name][row.trial_id].append(row)
    out = []
    for head in heads:
        tid = head.trial_id
        if tid in kept:
            out.append(kept[tid])
            continue
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
    if running is not None:
        for t in out:
            if t.state == TrialState.RUNNING:
                running[t._trial_id] = (stamps[t._trial_id], t)
            else:
                running.pop(t._trial_id, None)
    return out


class Reader:
    """``RDBStorage._get_trials`` as ``read_trials``, keeping each study's running trials between reads."""

    def __init__(self, backend: RDBStorage, *, with_steps: bool) -> None:
        self.backend, self.with_steps = backend, with_steps
        self._running: dict[int, dict[int, tuple[Stamp, FrozenTrial]]] = defaultdict(dict)
        self._lock = threading.Lock()  # one study's memo, one read at a time

    def __call__(
        self,
        study_id: int,
        states: Container[TrialState] | None,
        included_trial_ids: set[int],
        trial_id_greater_than: int,
    ) -> list[FrozenTrial]:
        with self._lock:
            return read_trials(
                self.backend,
                study_id,
                states,
                included_trial_ids,
                trial_id_greater_than,
                with_steps=self.with_steps,
                running=self._running[study_id],
            )


def install(backend: RDBStorage, *, with_steps: bool = True) -> None:
    """Read trials through a ``Reader`` from now on (the cache Optuna wraps around it is unchanged)."""
    backend._get_trials = Reader(backend, with_steps=with_steps)  # type: ignore[method-assign]


def reads_steps(backend: RDBStorage) -> bool:
    """Whether the trials read through ``backend`` carry their per-epoch values."""
    reader = backend._get_trials
    return not isinstance(reader, Reader) or reader.with_steps


def completed_values(backend: RDBStorage, study_id: int, steps: Iterable[int]) -> dict[int, dict[int, float]]:
    """trial id -> {step: value} of the study's completed trials at ``steps``: what a median or percentile
    pruner compares a running trial with, in one query."""
    trials, values = models.TrialModel, models.TrialIntermediateValueModel
    with _create_scoped_session(backend.scoped_session) as session:
        rows = session.execute(
            sqlalchemy.select(values.trial_id, values.step, values.intermediate_value, values.intermediate_value_type)
            .join(trials, trials.trial_id == values.trial_id)
            .where(trials.study_id == study_id, trials.state == TrialState.COMPLETE, values.step.in_(list(steps)))
        ).all()
    out: dict[int, dict[int, float]] = defaultdict(dict)
    for row in rows:
        out[row.trial_id][row.step] = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value(
            row.intermediate_value, row.intermediate_value_type
        )
    return dict(out)


#: A stored value's kind -> the float it stands for (FINITE: the stored value itself).
_NOT_FINITE = {"INF_POS": math.inf, "INF_NEG": -math.inf, "NAN": math.nan}


def completed_curves(
    backend: RDBStorage, study_id: int, known: Container[int]
) -> tuple[list[int], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The study's completed trials but the ``known`` ones, and all their per-epoch values as (trial id, step,
    value) arrays: a worker's pruner reads each completed trial once, hundreds of values each, so they come
    through the driver's own cursor as plain tuples (SQLAlchemy's rows and a Python object per value took
    3x as long as that, and the ids in the query are integers, safe to write into it)."""
    trials, values = models.TrialModel, models.TrialIntermediateValueModel
    rows: list[tuple[int, int, float | None]] = []
    not_finite: dict[tuple[int, int], float] = {}
    with _create_scoped_session(backend.scoped_session) as session:
        ids = [
            i
            for i in session.scalars(
                sqlalchemy.select(trials.trial_id).where(
                    trials.study_id == study_id, trials.state == TrialState.COMPLETE
                )
            )
            if i not in known
        ]
        connection = session.connection()
        cursor = connection.connection.driver_connection.cursor()
        kind = sqlalchemy.type_coerce(values.intermediate_value_type, sqlalchemy.String)  # its name, not the enum
        for start in range(0, len(ids), _CHUNK):
            chunk = values.trial_id.in_(ids[start : start + _CHUNK])
            query = sqlalchemy.select(values.trial_id, values.step, values.intermediate_value).where(chunk)
            cursor.execute(str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})))
            rows += cursor.fetchall()
            # Stored without a value (few): infinities and NaN.
            not_finite.update(
                ((t, step), _NOT_FINITE[name])
                for t, step, name in session.execute(
                    sqlalchemy.select(values.trial_id, values.step, kind).where(
                        chunk,
                        values.intermediate_value_type
                        != models.TrialIntermediateValueModel.TrialIntermediateValueType.FINITE,
                    )
                )
            )
    trial_ids, steps, stored = (np.array(column) for column in zip(*rows)) if rows else (np.empty(0),) * 3
    value = np.array(stored, dtype=float)  # None -> NaN
    for i in np.flatnonzero(np.isnan(value)):
        value[i] = not_finite.get((int(trial_ids[i]), int(steps[i])), math.nan)
    return ids, (trial_ids.astype(np.int64), steps.astype(np.int64), value)
