"""Optuna's RDB tables, read and written by lrsearch's own SQL: the one module that touches them.

It was written for one schema version (``SCHEMA_VERSION``), and ``check_version`` refuses a database at any
other. What it does that Optuna's storage does one call, and one transaction, at a time:

- reading a study's trials without the ORM (Optuna's reader builds an ORM object for every parameter,
  attribute and per-epoch value: with blobs trials of 200 epochs and eight workers, most of a worker's
  time), optionally without the per-epoch values (the intermediate values and the ``*_history`` user
  attrs: most of the data, which a worker's sampler never reads), and with the running trials built before
  kept while they are settled (``schema.SETTLED``) or their rows are unchanged (one grouped query tells);
- a round's trials created in one transaction, numbered as Optuna numbers them; a round's parameters and
  system attrs written in one; finished trials' per-epoch values, attrs, values and states in one (on
  PostgreSQL with COPY);
- heartbeats for many trials, the running trials' last heartbeats, claims, counts.

The tests hold every read equal to what Optuna's own reader returns (tests/storage/test_tables.py), and
tests/contract/test_optuna_contract.py checks that Optuna still writes this schema version.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import functools
import json
import math
from collections import defaultdict
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import sqlalchemy
from optuna import distributions
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

from lrsearch.errors import RuntimeFailure
from lrsearch.schema import PER_EPOCH_SUFFIX, SETTLED
from lrsearch.storage.records import TrialRecord
from lrsearch.storage.urls import masked

__all__ = [
    "SCHEMA_VERSION",
    "Stamp",
    "beat",
    "check_version",
    "claim",
    "completed_curves",
    "completed_ids",
    "completed_values",
    "count_trials",
    "create_trials",
    "has_tables",
    "read_trials",
    "record_heartbeats",
    "silent_trials",
    "write_finished",
    "write_round",
]

#: The schema version of Optuna's tables that this module reads and writes.
SCHEMA_VERSION = "v3.2.0.a"


def check_version(backend: RDBStorage, url: str) -> None:
    """Refuse, in one line, a database at a schema version this module was not written for."""
    version = backend.get_current_version()
    if version != SCHEMA_VERSION:
        raise RuntimeFailure(
            f"the study database {masked(url)} has Optuna's schema {version}; lrsearch writes "
            f"and reads schema {SCHEMA_VERSION} only"
        )


def has_tables(engine: sqlalchemy.engine.Engine) -> bool:
    """Whether the database holds Optuna's tables, looked at without creating anything."""
    return sqlalchemy.inspect(engine).has_table(models.StudyModel.__tablename__)


def _utc_now() -> datetime.datetime:
    """Now as Optuna 5 stores trial times: naive UTC."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


@contextlib.contextmanager
def _reading(backend: RDBStorage) -> Iterator[sqlalchemy.engine.Connection]:
    """A connection to read with. On PostgreSQL outside a transaction: under READ COMMITTED each statement
    sees what was committed when it began, in a transaction or not, and BEGIN and COMMIT were two of a
    simple read's three round trips (with eight workers on a busy machine each one waits for the scheduler
    twice). SQLite reads in a transaction, as Optuna's sessions do (one snapshot for all its statements)."""
    engine = backend.engine
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield connection
    else:
        with engine.connect() as connection, connection.begin():
            yield connection


#: Ids per IN (...) list where they are written into the statement (not on PostgreSQL): short statements.
_CHUNK = 500


def _listed(ids: Sequence[int]) -> str:
    """Trial ids as the text of an IN (...) list: integers, safe to write into a statement."""
    return ",".join(str(int(i)) for i in ids)


def _among(model: Any, ids: Sequence[int], dialect: str) -> Any:
    """``model.trial_id`` among ``ids``. On PostgreSQL one array parameter: the statement's text is then the
    same whatever the ids, so the driver prepares it (planning a list of hundreds of ids took longer than
    the query). Elsewhere the ids written into the statement: hundreds of bound parameters (a study's
    running trials) cost more to convert and send than the query takes (integers, safe there)."""
    if not ids:
        return sqlalchemy.false()
    if dialect == "postgresql":
        listed = [int(i) for i in ids]
        return model.trial_id == sqlalchemy.any_(
            sqlalchemy.bindparam("ids", listed, type_=sqlalchemy.ARRAY(sqlalchemy.Integer), unique=True)
        )
    return sqlalchemy.text(f"{model.__tablename__}.trial_id IN ({_listed(ids)})")


@functools.lru_cache(maxsize=4096)
def _distribution(text: str) -> distributions.BaseDistribution:
    return distributions.json_to_distribution(text)


def _local(utc: datetime.datetime | None) -> datetime.datetime | None:
    """Optuna's conversion: naive UTC in the database, naive local time in a FrozenTrial."""
    if utc is None:
        return None
    return utc.replace(tzinfo=datetime.UTC).astimezone().replace(tzinfo=None)


def _rows(
    connection: sqlalchemy.engine.Connection,
    model: Any,
    columns: str,
    ids: Sequence[int],
    where: str = "",
    order: str = "",
) -> list[tuple[Any, ...]]:
    """``SELECT columns FROM model's table WHERE trial_id among ids [AND where] [ORDER BY order]`` through the
    driver's own cursor, as plain tuples: a worker reads every trial of the study a few times, and
    SQLAlchemy's statement building and its rows took most of a read (2x this). An enum column comes as its
    name. The ids as ``_among`` gives them: on PostgreSQL one array parameter (a statement the driver
    prepares), elsewhere written into the statement a chunk at a time."""
    table = model.__tablename__
    condition = f" AND {where}" if where else ""
    ordering = f" ORDER BY {order}" if order else ""
    cursor = connection.connection.driver_connection.cursor()
    try:
        if connection.dialect.name == "postgresql":
            among = f"trial_id = ANY(%s){condition.replace('%', '%%')}"
            cursor.execute(f"SELECT {columns} FROM {table} WHERE {among}{ordering}", ([int(i) for i in ids],))
            return cursor.fetchall()
        out: list[tuple[Any, ...]] = []
        for start in range(0, len(ids), _CHUNK):
            listed = _listed(ids[start : start + _CHUNK])
            cursor.execute(f"SELECT {columns} FROM {table} WHERE trial_id IN ({listed}){condition}{ordering}")
            out += cursor.fetchall()
        return out
    finally:
        cursor.close()


#: A worker's reads leave out the per-epoch lists (user attrs whose key ends with ``PER_EPOCH_SUFFIX``).
_NOT_PER_EPOCH = "key NOT LIKE '%{}' ESCAPE '/'".format(
    PER_EPOCH_SUFFIX.replace("/", "//").replace("_", "/_").replace("%", "/%")
)


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
                .where(_among(model, ids[start : start + _CHUNK], session.dialect.name))
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
    running: dict[int, tuple[Stamp | None, FrozenTrial]] | None = None,
) -> list[FrozenTrial]:
    """The study's trials in ``states`` among ``included_trial_ids`` and those after
    ``trial_id_greater_than`` (what ``RDBStorage._get_trials`` returns), read without the ORM (and without
    the per-epoch values and user attrs unless ``with_steps``). ``running``: the running trials built before,
    by id with their stamps; those settled or unchanged are not read again, and it is brought up to date
    with this read."""
    included = [i for i in included_trial_ids if i <= trial_id_greater_than]
    trials = models.TrialModel
    with _reading(backend) as session:
        conditions = [trials.study_id == study_id]
        if states is not None:
            conditions.append(trials.state.in_(list(states)))
        if included and trial_id_greater_than > -1:
            conditions.append(
                sqlalchemy.or_(_among(trials, included, session.dialect.name), trials.trial_id > trial_id_greater_than)
            )
        elif trial_id_greater_than > -1:
            conditions.append(trials.trial_id > trial_id_greater_than)
        heads = session.execute(
            sqlalchemy.select(
                trials.trial_id,
                trials.number,
                trials.state,
                trials._datetime_start_utc.label("started"),
                trials._datetime_complete_utc.label("completed"),
            )
            .where(*conditions)
            .order_by(trials.trial_id)
        ).all()
        if not heads:
            study = models.StudyModel
            if session.scalar(sqlalchemy.select(study.study_id).where(study.study_id == study_id)) is None:
                raise KeyError(models.NOT_FOUND_MSG)  # as Optuna's reader raises
            return []
        stamps: dict[int, Stamp] = {}
        kept: dict[int, FrozenTrial] = {}
        if running is not None:
            # A settled trial stays as read while it runs; a settling one (its round's writes to come) is read
            # again, its few rows costing less than stamps; an unmarked one is stamped before its rows are read
            # (a change in between is read now and seen again next time), from its second read on (most are
            # marked, and a trial read for the first time is read anyway).
            settling = {
                h.trial_id: running[h.trial_id][1].system_attrs.get(SETTLED)
                for h in heads
                if h.state == TrialState.RUNNING and h.trial_id in running
            }
            kept = {tid: running[tid][1] for tid, settled in settling.items() if settled is True}
            stamps = _stamps(session, [tid for tid, settled in settling.items() if settled is None], with_steps)
            kept.update((tid, running[tid][1]) for tid, stamp in stamps.items() if running[tid][0] == stamp)
        ids = [h.trial_id for h in heads if h.trial_id not in kept]
        # The system attrs first: on PostgreSQL each statement sees what was committed when it began, so a
        # trial read settled has its round's parameters and attrs (written with the mark) in the reads after.
        system = _rows(session, models.TrialSystemAttributeModel, "trial_id, key, value_json", ids)
        params = _rows(
            session,
            models.TrialParamModel,
            "trial_id, param_name, param_value, distribution_json",
            ids,
            order="param_id",
        )
        values = _rows(session, models.TrialValueModel, "trial_id, objective, value, value_type", ids)
        user = _rows(
            session,
            models.TrialUserAttributeModel,
            "trial_id, key, value_json",
            ids,
            where="" if with_steps else _NOT_PER_EPOCH,
        )
        steps = (
            _rows(
                session,
                models.TrialIntermediateValueModel,
                "trial_id, step, intermediate_value, intermediate_value_type",
                ids,
            )
            if with_steps
            else []
        )

    by_trial: dict[str, dict[int, list[tuple[Any, ...]]]] = {name: defaultdict(list) for name in ("p", "v", "i")}
    for name, rows in (("p", params), ("v", values), ("i", steps)):
        for row in rows:
            by_trial[name][row[0]].append(row)
    user_attrs, system_attrs = _attrs_by_trial(user), _attrs_by_trial(system)
    value_type, step_type = (
        models.TrialValueModel.TrialValueType,
        models.TrialIntermediateValueModel.TrialIntermediateValueType,
    )
    out = []
    for head in heads:
        tid = head.trial_id
        if tid in kept:
            out.append(kept[tid])
            continue
        trial_values: list[float] | None = None
        if by_trial["v"][tid]:
            trial_values = [0.0] * len(by_trial["v"][tid])
            for _, objective, value, kind in by_trial["v"][tid]:
                trial_values[objective] = models.TrialValueModel.stored_repr_to_value(value, value_type[kind])
        dists = {name: _distribution(text) for _, name, _, text in by_trial["p"][tid]}
        out.append(
            FrozenTrial(
                number=head.number,
                state=head.state,
                value=None,
                values=trial_values,
                datetime_start=_local(head.started),
                datetime_complete=_local(head.completed),
                params={name: dists[name].to_external_repr(internal) for _, name, internal, _ in by_trial["p"][tid]},
                distributions=dists,
                user_attrs=user_attrs.get(tid, {}),
                system_attrs=system_attrs.get(tid, {}),
                intermediate_values={
                    step: models.TrialIntermediateValueModel.stored_repr_to_intermediate_value(value, step_type[kind])
                    for _, step, value, kind in by_trial["i"][tid]
                },
                trial_id=tid,
            )
        )
    if running is not None:
        for t in out:
            if t.state == TrialState.RUNNING:
                running[t._trial_id] = (stamps.get(t._trial_id), t)  # None: not stamped
            else:
                running.pop(t._trial_id, None)
    return out


def _attrs_by_trial(rows: Sequence[tuple[Any, ...]]) -> dict[int, dict[str, Any]]:
    """Attr rows (trial id, key, JSON text) by trial, the values parsed in one call: each row holds valid
    JSON, so their texts joined are one JSON list (a call per value, thousands per read, cost more than the
    parsing)."""
    out: dict[int, dict[str, Any]] = defaultdict(dict)
    for (trial_id, key, _), value in zip(rows, json.loads(f"[{','.join(row[2] for row in rows)}]"), strict=True):
        out[trial_id][key] = value
    return out


def completed_values(backend: RDBStorage, study_id: int, steps: Iterable[int]) -> dict[int, dict[int, float]]:
    """trial id -> {step: value} of the study's completed trials at ``steps``: what a median or percentile
    pruner compares a running trial with, in one query."""
    trials, values = models.TrialModel, models.TrialIntermediateValueModel
    with _reading(backend) as session:
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


def completed_ids(backend: RDBStorage, study_id: int, from_id: int) -> list[int]:
    """The ids of the study's completed trials from ``from_id`` on, in one query (a bound, not a list of the
    trials in question: hundreds of ids in a statement cost more to plan than the query takes)."""
    trials = models.TrialModel
    with _reading(backend) as session:
        return list(
            session.scalars(
                sqlalchemy.select(trials.trial_id).where(
                    trials.study_id == study_id, trials.state == TrialState.COMPLETE, trials.trial_id >= from_id
                )
            )
        )


#: The kinds of stored value without one, and the floats they stand for.
_NOT_FINITE = {
    models.TrialIntermediateValueModel.TrialIntermediateValueType.INF_POS: math.inf,
    models.TrialIntermediateValueModel.TrialIntermediateValueType.INF_NEG: -math.inf,
    models.TrialIntermediateValueModel.TrialIntermediateValueType.NAN: math.nan,
}


def completed_curves(backend: RDBStorage, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-epoch values of the trials ``ids`` as (trial id, step, value) arrays: a worker's pruner reads
    each completed trial once, hundreds of values each, so they come as plain numbers (``_rows``), a value
    stored without one (inf, NaN) as its kind's code."""
    kinds = " ".join(f"WHEN '{kind.name}' THEN {code}" for code, kind in enumerate(_NOT_FINITE, 1))
    columns = f"trial_id, step, intermediate_value, CASE intermediate_value_type {kinds} ELSE 0 END"
    with _reading(backend) as connection:
        rows = _rows(connection, models.TrialIntermediateValueModel, columns, ids)
    table = np.array(rows, dtype=float).reshape(-1, 4)  # one C loop over the tuples; None -> NaN
    value = table[:, 2]
    for code, number in enumerate(_NOT_FINITE.values(), 1):
        value[table[:, 3] == code] = number
    return table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), value


# --- writes ---------------------------------------------------------------------------------------------


def _blank(
    number: int,
    trial_id: int,
    started: datetime.datetime,
    user_attrs: Mapping[str, Any],
    system_attrs: Mapping[str, Any],
) -> FrozenTrial:
    return FrozenTrial(
        number=number,
        state=TrialState.RUNNING,
        value=None,
        values=None,
        datetime_start=started,
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs=dict(user_attrs),
        system_attrs=dict(system_attrs),
        intermediate_values={},
        trial_id=trial_id,
    )


def create_trials(
    backend: RDBStorage,
    study_id: int,
    count: int,
    user_attrs: Mapping[str, Any],
    *,
    beating: bool,
    settling: bool = False,
) -> list[FrozenTrial]:
    """``count`` new RUNNING trials in one transaction, numbered as Optuna numbers them (under the same lock
    on the study row, so no other worker's trial takes a number in between), with ``user_attrs``, if
    ``beating`` their first heartbeat, and if ``settling`` the mark that they will be settled
    (``schema.SETTLED`` false: readers look at them again until it is true)."""
    trials = models.TrialModel
    with _create_scoped_session(backend.scoped_session, True) as session:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        first = session.scalar(
            sqlalchemy.select(sqlalchemy.func.count(trials.trial_id)).where(trials.study_id == study_id)
        )
        now = datetime.datetime.now()
        rows = [
            trials(study_id=study_id, number=first + i, state=TrialState.RUNNING, datetime_start=now)
            for i in range(count)
        ]
        session.add_all(rows)
        session.flush()
        ids = [r.trial_id for r in rows]
        system_attrs = {SETTLED: False} if settling else {}
        # New trials have no attrs or heartbeats to replace: inserts alone, the fewer round trips under the lock.
        _insert(session, models.TrialUserAttributeModel, _attr_rows(dict.fromkeys(ids, user_attrs)))
        _insert(session, models.TrialSystemAttributeModel, _attr_rows(dict.fromkeys(ids, system_attrs)))
        if beating:
            beat(session, ids, new=True)
        return [_blank(r.number, r.trial_id, r.datetime_start, user_attrs, system_attrs) for r in rows]


def write_round(
    backend: RDBStorage,
    params: Sequence[tuple[int, str, float, distributions.BaseDistribution]],
    system_attrs: Mapping[int, Mapping[str, Any]],
    user_attrs: Mapping[int, Mapping[str, Any]],
    beating: Sequence[int],
) -> None:
    """A round's parameters (trial id, name, internal value, distribution), system attrs and user attrs, and
    heartbeats for the trials ``beating``, in one transaction."""
    rows = [
        {
            "trial_id": trial_id,
            "param_name": name,
            "param_value": internal,
            "distribution_json": distributions.distribution_to_json(distribution),
        }
        for trial_id, name, internal, distribution in params
    ]
    with _create_scoped_session(backend.scoped_session, True) as session:
        _insert(session, models.TrialParamModel, rows)
        _set_attrs(session, models.TrialSystemAttributeModel, system_attrs)
        _set_attrs(session, models.TrialUserAttributeModel, user_attrs)
        if beating:
            beat(session, beating)


def write_finished(backend: RDBStorage, records: Sequence[TrialRecord]) -> list[int]:
    """End trials: per-epoch values, attributes, value and state, in one transaction. A trial another worker
    ended meanwhile (failed as stale, say) is left as it is; returns the ids of the trials this call ended."""
    if not records:
        return []
    now = _utc_now()
    trials = models.TrialModel
    with _create_scoped_session(backend.scoped_session) as session:
        ids = [r.trial_id for r in records]
        running = set(
            session.scalars(
                sqlalchemy.select(trials.trial_id)
                .where(trials.trial_id.in_(ids), trials.state == TrialState.RUNNING)
                .with_for_update()
            )
        )
        ending = [r for r in records if r.trial_id in running]
        if not ending:
            return []
        rows = []
        for r in ending:
            for step, value in r.intermediate.items():
                stored, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)
                rows.append(
                    {
                        "trial_id": r.trial_id,
                        "step": step,
                        "intermediate_value": stored,
                        "intermediate_value_type": kind,
                    }
                )
        _insert(session, models.TrialIntermediateValueModel, rows)
        # A trial keeps what it was enqueued with (a repeat's repeat_of); a retry's copy of its original's
        # attributes is overwritten where this run has news.
        _set_attrs(session, models.TrialUserAttributeModel, {r.trial_id: r.user_attrs for r in ending})
        _set_attrs(session, models.TrialSystemAttributeModel, {r.trial_id: r.system_attrs for r in ending})
        value_rows = []
        for r in ending:
            final = r.final_value()
            if final is not None:
                stored, kind = models.TrialValueModel.value_to_stored_repr(final)
                value_rows.append({"trial_id": r.trial_id, "objective": 0, "value": stored, "value_type": kind})
        _insert(session, models.TrialValueModel, value_rows)
        for state in {r.state for r in ending}:
            session.execute(
                sqlalchemy.update(trials)
                .where(trials.trial_id.in_([r.trial_id for r in ending if r.state == state]))
                .values(state=state, _datetime_complete_utc=now)
            )
    return [r.trial_id for r in ending]


def _insert(session: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) in the session's transaction: on PostgreSQL with COPY
    (a population's per-epoch values are thousands of rows: 2-4x faster than executemany), elsewhere with
    one Core executemany (the ORM's bulk insert builds an object per row)."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        columns = list(rows[0])
        with (
            connection.connection.driver_connection.cursor() as cursor,
            cursor.copy(f"COPY {model.__tablename__} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row([v.name if isinstance(v, enum.Enum) else v for v in row.values()])
    else:
        connection.execute(model.__table__.insert(), rows)


def _set_attrs(session: Any, model: Any, attrs: Mapping[int, Mapping[str, Any]]) -> None:
    """Set trials' attributes (trial id -> {key: value}) in the session's transaction, replacing only the
    keys given. One DELETE per set of keys (a population's trials share theirs): a list of (trial, key)
    pairs costs more to build and to plan than the rows it removes."""
    by_keys: dict[frozenset[str], list[int]] = {}
    for trial_id, values in attrs.items():
        if values:
            by_keys.setdefault(frozenset(values), []).append(trial_id)
    for keys, ids in by_keys.items():
        session.execute(sqlalchemy.delete(model).where(model.trial_id.in_(ids), model.key.in_(sorted(keys))))
    _insert(session, model, _attr_rows(attrs))


def _attr_rows(attrs: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"trial_id": trial_id, "key": k, "value_json": json.dumps(v)}
        for trial_id, values in attrs.items()
        for k, v in values.items()
    ]


# --- heartbeats, claims, counts -------------------------------------------------------------------------


def beat(session: Any, trial_ids: Sequence[int], *, new: bool = False) -> None:
    """Record a heartbeat, stamped by the database's clock, for each trial, in the session's transaction:
    the beats there updated in one statement and the others inserted in another (only the latter for
    ``new`` trials, which have none)."""
    model = models.TrialHeartbeatModel
    ids = [int(i) for i in trial_ids]
    if not new:
        updated = session.execute(
            sqlalchemy.update(model)
            .where(model.trial_id.in_(ids))
            .values(heartbeat=sqlalchemy.func.now())
            .returning(model.trial_id)
        )
        beating = set(updated.scalars())
        ids = [i for i in ids if i not in beating]
    if ids:
        session.execute(
            sqlalchemy.insert(model).values([{"trial_id": i, "heartbeat": sqlalchemy.func.now()} for i in ids])
        )


def record_heartbeats(backend: RDBStorage, trial_ids: Sequence[int]) -> None:
    """Record a heartbeat for each trial, in one transaction (Optuna's takes one per trial)."""
    with _create_scoped_session(backend.scoped_session, True) as session:
        beat(session, trial_ids)


def silent_trials(backend: RDBStorage, study_id: int, grace: datetime.timedelta) -> list[int]:
    """The study's running trials with no heartbeat for ``grace`` (by the database's clock), or, for a trial
    whose first heartbeat never came (its worker died at once), started longer ago than ``grace``."""
    trials, beats = models.TrialModel, models.TrialHeartbeatModel
    with _reading(backend) as session:
        rows = session.execute(
            sqlalchemy.select(trials.trial_id, trials._datetime_start_utc, beats.heartbeat, sqlalchemy.func.now())
            .outerjoin(beats, beats.trial_id == trials.trial_id)
            .where(trials.study_id == study_id, trials.state == TrialState.RUNNING)
        ).all()
    now = _utc_now()  # Optuna stores start times in UTC, from the clock of the worker that started the trial
    return [
        trial_id
        for trial_id, started, heartbeat, db_now in rows
        if (heartbeat is not None and db_now.replace(tzinfo=None) - heartbeat.replace(tzinfo=None) > grace)
        or (heartbeat is None and started is not None and now - started > grace)
    ]


def claim(backend: RDBStorage, study_id: int, key: str) -> bool:
    """Add the study system attr ``key``; False if it is there already (the table's unique constraint on a
    study's keys decides, whichever process or machine asks)."""
    try:
        with _create_scoped_session(backend.scoped_session) as session:
            session.add(models.StudySystemAttributeModel(study_id=study_id, key=key, value_json="true"))
    except sqlalchemy.exc.IntegrityError:
        return False
    return True


def count_trials(
    backend: RDBStorage, study_id: int, states: Sequence[TrialState], user_attrs: Sequence[str], present: bool
) -> int:
    """How many of the study's trials are in ``states`` (and lack every user attr of ``user_attrs``, or with
    ``present`` have one of them), in one query."""
    trials, attrs = models.TrialModel, models.TrialUserAttributeModel
    query = (
        sqlalchemy.select(sqlalchemy.func.count())
        .select_from(trials)
        .where(trials.study_id == study_id, trials.state.in_(list(states)))
    )
    if user_attrs:
        marked = sqlalchemy.exists().where(attrs.trial_id == trials.trial_id, attrs.key.in_(list(user_attrs)))
        query = query.where(marked if present else ~marked)
    with _reading(backend) as session:
        return int(session.scalar(query))
