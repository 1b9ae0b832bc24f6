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
import dataclasses
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
import sqlalchemy.dialects.sqlite
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
    "put_back",
    "read_trials",
    "record_heartbeats",
    "silent_trials",
    "take_waiting",
    "write_finished",
    "write_round",
    "write_steps",
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


@contextlib.contextmanager
def _driver(connection: sqlalchemy.engine.Connection) -> Iterator[Any]:
    """The driver's own connection under ``connection`` (psycopg's, sqlite3's), for this module's SQL; an
    error of the driver's raised as SQLAlchemy raises it, a lost connection invalidated first, so that
    ``retries`` retries it on a fresh one (a raw driver error would pass as a bug, and the dead connection
    go back to the pool)."""
    dbapi = connection.dialect.loaded_dbapi
    try:
        yield connection.connection.driver_connection
    except dbapi.Error as exc:
        lost = connection.dialect.is_disconnect(exc, connection.connection.dbapi_connection, None)
        if lost:
            connection.invalidate(exc)
        raise sqlalchemy.exc.DBAPIError.instance(None, None, exc, dbapi.Error, connection_invalidated=lost) from exc


def _fetched(connection: sqlalchemy.engine.Connection, sql: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of one statement written out (``%s`` placeholders, sqlite3's ``?`` on SQLite), through the
    driver's cursor: for the queries every worker makes every round, where SQLAlchemy's statement building
    cost several times the query."""
    if connection.dialect.name != "postgresql":
        sql = sql.replace("%s", "?")
    with _driver(connection) as driver, contextlib.closing(driver.cursor()) as cursor:
        cursor.execute(sql, parameters)
        return cursor.fetchall()


#: Ids per IN (...) list where they are written into the statement (not on PostgreSQL): short statements.
_CHUNK = 500


def _listed(ids: Sequence[int]) -> str:
    """Trial ids as the text of an IN (...) list: integers, safe to write into a statement."""
    return ",".join(str(int(i)) for i in ids)


def _among(model: Any, ids: Sequence[int], dialect: str) -> Any:
    """``model.trial_id`` among ``ids``. On PostgreSQL one array parameter: the statement's text is then the
    same whatever the ids, so the driver prepares it (planning a list of hundreds of ids took longer than
    the query); an untyped one, which the server takes as the array once (a VARCHAR one, cast in the
    statement, is parsed again for every row compared with it: 40 ms instead of 2 for a thousand trials).
    Elsewhere the ids written into the statement: hundreds of bound parameters (a study's running trials)
    cost more to convert and send than the query takes (integers, safe there)."""
    if not ids:
        return sqlalchemy.false()
    if dialect == "postgresql":
        listed = sqlalchemy.bindparam("ids", _array(ids, int), type_=sqlalchemy.types.NullType(), unique=True)
        return model.trial_id == sqlalchemy.any_(sqlalchemy.cast(listed, sqlalchemy.ARRAY(sqlalchemy.Integer)))
    return sqlalchemy.text(f"{model.__tablename__}.trial_id IN ({_listed(ids)})")


def _array(values: Iterable[Any], kind: type[int | float | str]) -> str:
    """PostgreSQL's text form of an array of integers, floats or strings, for a parameter cast to one
    (``%s::int[]``): psycopg converts a list element by element in Python (5 ms for 1,600 of them), this
    joins them at once (0.3 ms)."""
    if kind is str:
        items: Iterable[str] = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    elif kind is int:
        items = map(str, map(int, values))
    else:
        items = map(repr, map(float, values))
    return "{" + ",".join(items) + "}"


@functools.lru_cache(maxsize=4096)
def _distribution(text: str) -> distributions.BaseDistribution:
    return distributions.json_to_distribution(text)


def _local(utc: datetime.datetime | None) -> datetime.datetime | None:
    """Optuna's conversion: naive UTC in the database, naive local time in a FrozenTrial."""
    if utc is None:
        return None
    return utc.replace(tzinfo=datetime.UTC).astimezone().replace(tzinfo=None)


@dataclasses.dataclass(frozen=True)
class _Select:
    """``SELECT columns FROM model's table WHERE trial_id among the ids [AND where] [ORDER BY order]``."""

    model: Any
    columns: str
    where: str = ""
    order: str = ""


def _rows(
    connection: sqlalchemy.engine.Connection, selects: Sequence[_Select], ids: Sequence[int]
) -> list[list[tuple[Any, ...]]]:
    """Each of ``selects``' rows for the trials ``ids``, through the driver's own cursor, as plain tuples: a
    worker reads every trial of the study a few times, and SQLAlchemy's statement building and its rows
    took most of a read (2x this). An enum column comes as its name. On PostgreSQL the ids are one array
    parameter (a statement the driver prepares: planning a list of hundreds took longer than the query)
    and the selects go in one round trip (``_pipelined``); elsewhere the ids are written into each
    statement a chunk at a time (integers, safe there)."""
    if connection.dialect.name == "postgresql":
        listed = _array(ids, int)
        statements = [
            (
                f"SELECT {q.columns} FROM {q.model.__tablename__} WHERE trial_id = ANY(%s::int[])"
                + (f" AND {q.where.replace('%', '%%')}" if q.where else "")
                + (f" ORDER BY {q.order}" if q.order else ""),
                (listed,),
            )
            for q in selects
        ]
        with _driver(connection) as driver:
            return _pipelined(driver, statements, transaction=False)
    out: list[list[tuple[Any, ...]]] = []
    with _driver(connection) as driver, contextlib.closing(driver.cursor()) as cursor:
        for q in selects:
            rows: list[tuple[Any, ...]] = []
            for start in range(0, len(ids), _CHUNK):
                condition = f"trial_id IN ({_listed(ids[start : start + _CHUNK])})" + (
                    f" AND {q.where}" if q.where else ""
                )
                ordering = f" ORDER BY {q.order}" if q.order else ""
                cursor.execute(f"SELECT {q.columns} FROM {q.model.__tablename__} WHERE {condition}{ordering}")
                rows += cursor.fetchall()
            out.append(rows)
        return out


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
    if not ids:
        return {}
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
    by id with their stamps; those still running and settled are left out (the server leaves them out: with
    eight workers most of the study is running, and a worker read every one's row at every round), those
    unchanged are not read again, and it is brought up to date with this read."""
    included = [i for i in included_trial_ids if i <= trial_id_greater_than]
    settled = [i for i, (_, trial) in (running or {}).items() if trial.system_attrs.get(SETTLED) is True]
    trials, study = models.TrialModel, models.StudyModel
    with _reading(backend) as session:
        conditions = [trials.study_id == study.study_id]
        if states is not None:
            conditions.append(trials.state.in_(list(states)))
        if included and trial_id_greater_than > -1:
            conditions.append(
                sqlalchemy.or_(_among(trials, included, session.dialect.name), trials.trial_id > trial_id_greater_than)
            )
        elif trial_id_greater_than > -1:
            conditions.append(trials.trial_id > trial_id_greater_than)
        if settled:
            still = sqlalchemy.and_(_among(trials, settled, session.dialect.name), trials.state == TrialState.RUNNING)
            conditions.append(sqlalchemy.not_(still))
        # From the study's row: a study that is not there is told from one without new trials in the same query.
        found = session.execute(
            sqlalchemy.select(
                trials.trial_id,
                trials.number,
                trials.state,
                trials._datetime_start_utc.label("started"),
                trials._datetime_complete_utc.label("completed"),
            )
            .select_from(study)
            .outerjoin(trials, sqlalchemy.and_(*conditions))
            .where(study.study_id == study_id)
            .order_by(trials.trial_id)
        ).all()
        if not found:
            raise KeyError(models.NOT_FOUND_MSG)  # as Optuna's reader raises
        heads = [h for h in found if h.trial_id is not None]
        if not heads:
            return []
        stamps: dict[int, Stamp] = {}
        kept: dict[int, FrozenTrial] = {}
        if running is not None:
            # A settling trial (its round's writes to come) is read again, its few rows costing less than
            # stamps; an unmarked one is stamped before its rows are read (a change in between is read now and
            # seen again next time), from its second read on (most are marked, and a trial read for the first
            # time is read anyway).
            unmarked = [
                h.trial_id
                for h in heads
                if h.state == TrialState.RUNNING
                and h.trial_id in running
                and running[h.trial_id][1].system_attrs.get(SETTLED) is None
            ]
            stamps = _stamps(session, unmarked, with_steps)
            kept = {tid: running[tid][1] for tid, stamp in stamps.items() if running[tid][0] == stamp}
        ids = [h.trial_id for h in heads if h.trial_id not in kept]
        selects = [
            _Select(models.TrialSystemAttributeModel, "trial_id, key, value_json"),
            _Select(models.TrialParamModel, "trial_id, param_name, param_value, distribution_json", order="param_id"),
            _Select(models.TrialValueModel, "trial_id, objective, value, value_type"),
            _Select(
                models.TrialUserAttributeModel, "trial_id, key, value_json", where="" if with_steps else _NOT_PER_EPOCH
            ),
        ]
        if with_steps:
            selects.append(
                _Select(
                    models.TrialIntermediateValueModel, "trial_id, step, intermediate_value, intermediate_value_type"
                )
            )
        # The system attrs first: on PostgreSQL each statement sees what was committed when it began, so a
        # trial read settled has its round's parameters and attrs (written with the mark) in the reads after.
        system, params, values, user, *more = _rows(session, selects, ids)
        steps = more[0] if with_steps else []

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
    each completed trial once, hundreds of values each, so they come as plain numbers, a value stored
    without one (inf, NaN) as its kind's code. On PostgreSQL each column comes as one array in the server's
    binary form (``array_send``), which numpy reads as it is: 106,000 values cost 14-19 ms of the worker's
    CPU instead of 96-130 as a row each (``_rows``)."""
    kinds = " ".join(f"WHEN '{kind.name}' THEN {code}" for code, kind in enumerate(_NOT_FINITE, 1))
    code = f"CASE intermediate_value_type {kinds} ELSE 0 END"
    with _reading(backend) as connection:
        if connection.dialect.name == "postgresql":
            columns = [
                _ArrayColumn("trial_id", np.int32),
                _ArrayColumn("step", np.int32),
                _ArrayColumn("COALESCE(intermediate_value, 'NaN')", np.float64),
                _ArrayColumn(code, np.int32),
            ]
            trial, step, value, kind = _column_arrays(connection, models.TrialIntermediateValueModel, columns, ids)
        else:
            (rows,) = _rows(
                connection,
                [_Select(models.TrialIntermediateValueModel, f"trial_id, step, intermediate_value, {code}")],
                ids,
            )
            table = np.array(rows, dtype=float).reshape(-1, 4)  # one C loop over the tuples; None -> NaN
            trial, step, value, kind = table.T
    value = value.astype(float)
    for number_code, number in enumerate(_NOT_FINITE.values(), 1):
        value[kind == number_code] = number
    return trial.astype(np.int64), step.astype(np.int64), value


@dataclasses.dataclass(frozen=True)
class _ArrayColumn:
    """A column read as one array (``_column_arrays``): its SQL, never NULL, and its numpy type."""

    sql: str
    kind: type[np.number]


#: The element types ``_column_arrays`` reads, as PostgreSQL sends them in an array's binary form: each
#: element its length, then its big-endian value.
_ELEMENTS = {
    np.int32: np.dtype([("length", ">i4"), ("value", ">i4")]),
    np.float64: np.dtype([("length", ">i4"), ("value", ">f8")]),
}


def _column_arrays(
    connection: sqlalchemy.engine.Connection, model: Any, columns: Sequence[_ArrayColumn], ids: Sequence[int]
) -> list[np.ndarray]:
    """PostgreSQL: ``columns`` of ``model``'s rows for the trials ``ids``, each as one array (the rows in the
    same order in every one). The server aggregates each column into one array and sends it in its binary
    form, which numpy reads without a Python object per value."""
    aggregated = ", ".join(f"array_send(array_agg({column.sql}))" for column in columns)
    with _driver(connection) as driver, driver.cursor() as cursor:
        cursor.execute(
            f"SELECT {aggregated} FROM {model.__tablename__} WHERE trial_id = ANY(%s::int[])", (_array(ids, int),)
        )
        blobs = cursor.fetchone()
    return [_binary_array(blob, column.kind) for blob, column in zip(blobs, columns, strict=True)]


def _binary_array(blob: bytes | None, kind: type[np.number]) -> np.ndarray:
    """A one-dimensional array without NULLs in PostgreSQL's binary form (a header of five 4-byte integers:
    dimensions, a has-NULLs flag, the element type, the length, the lower bound; then each element), or
    NULL: the aggregate of no rows."""
    if blob is None:
        return np.empty(0, dtype=kind)
    dimensions, has_nulls = int.from_bytes(blob[0:4], "big"), int.from_bytes(blob[4:8], "big")
    if dimensions != 1 or has_nulls:
        raise ValueError(f"expected a one-dimensional array without NULLs, but got {dimensions} dimensions")
    elements = np.frombuffer(blob, dtype=_ELEMENTS[kind], offset=20)
    return elements["value"].astype(kind)


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
    (``schema.SETTLED`` false: readers look at them again until it is true). On PostgreSQL the transaction
    goes in one round trip (``_one_trip``): every worker's round starts when its population ends, which
    for a search's first populations is at the same moment, and each waited for the lock through the
    others' seven round trips (3.4 s of eight workers' asking at 1,024 trials)."""
    system_attrs = {SETTLED: False} if settling else {}
    if backend.engine.dialect.name == "postgresql":
        created = _created_in_one_trip(backend, study_id, count, user_attrs, system_attrs, beating)
        return [_blank(number, trial_id, started, user_attrs, system_attrs) for trial_id, number, started in created]
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
        # New trials have no attrs or heartbeats to replace: inserts alone, the fewer round trips under the lock.
        _insert(session, models.TrialUserAttributeModel, _attr_rows(dict.fromkeys(ids, user_attrs)))
        _insert(session, models.TrialSystemAttributeModel, _attr_rows(dict.fromkeys(ids, system_attrs)))
        if beating:
            beat(session, ids, new=True)
        return [_blank(r.number, r.trial_id, r.datetime_start, user_attrs, system_attrs) for r in rows]


#: A round's trials, their attrs and first heartbeats in one statement, after the study row's lock (taken by
#: the statement before: this one's snapshot, and so its count, comes after it). Nothing is inserted for a
#: study that is not there.
_CREATE = """
WITH new AS (
    INSERT INTO trials (number, study_id, state, datetime_start)
    SELECT (SELECT count(*) FROM trials WHERE study_id = %(study)s) + i, studies.study_id, 'RUNNING', %(now)s
    FROM studies, generate_series(0, %(count)s - 1) AS i
    WHERE studies.study_id = %(study)s
    ORDER BY i
    RETURNING trial_id, number, datetime_start
), user_attrs AS (
    INSERT INTO trial_user_attributes (trial_id, key, value_json)
    SELECT new.trial_id, a.key, a.value FROM new, unnest(%(user_keys)s::text[], %(user_values)s::text[]) AS a(key, value)
), system_attrs AS (
    INSERT INTO trial_system_attributes (trial_id, key, value_json)
    SELECT new.trial_id, a.key, a.value FROM new, unnest(%(system_keys)s::text[], %(system_values)s::text[]) AS a(key, value)
), beats AS (
    INSERT INTO trial_heartbeats (trial_id, heartbeat) SELECT trial_id, now() FROM new WHERE %(beating)s
)
SELECT trial_id, number, datetime_start FROM new ORDER BY trial_id
"""


def _created_in_one_trip(
    backend: RDBStorage,
    study_id: int,
    count: int,
    user_attrs: Mapping[str, Any],
    system_attrs: Mapping[str, Any],
    beating: bool,
) -> list[tuple[int, int, datetime.datetime | None]]:
    """PostgreSQL's ``create_trials``: (trial id, number, local start) of each new trial."""
    lock = "SELECT study_id FROM studies WHERE study_id = %s FOR UPDATE"
    parameters = {
        "study": study_id,
        "now": _utc_now(),
        "count": count,
        "user_keys": _array(user_attrs, str),
        "user_values": _array(map(json.dumps, user_attrs.values()), str),
        "system_keys": _array(system_attrs, str),
        "system_values": _array(map(json.dumps, system_attrs.values()), str),
        "beating": beating,
    }
    _, created = _one_trip(backend, [(lock, (study_id,)), (_CREATE, parameters)], transaction=True)
    if not created:
        raise KeyError(models.NOT_FOUND_MSG)  # as Optuna's storage raises for a study that is not there
    return [(trial_id, number, _local(started)) for trial_id, number, started in created]


def _one_trip(
    backend: RDBStorage, statements: Sequence[tuple[str, Any]], *, transaction: bool
) -> list[list[tuple[Any, ...]]]:
    """PostgreSQL: ``statements`` in one round trip (``_pipelined``) on a connection of their own."""
    with (
        backend.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection,
        _driver(connection) as driver,
    ):
        return _pipelined(driver, statements, transaction=transaction)


def _pipelined(driver: Any, statements: Sequence[tuple[str, Any]], *, transaction: bool) -> list[list[tuple[Any, ...]]]:
    """PostgreSQL, on a psycopg connection in autocommit: ``statements`` (SQL with psycopg's placeholders,
    and parameters) sent together and answered together (psycopg's pipeline), one round trip however
    many (with eight workers on a busy machine each round trip waits for the scheduler, twice). With
    ``transaction``, as one transaction, BEGIN and COMMIT in the same batch: a lock taken in it is held
    only while the server runs it, never across a round trip. Without, each statement sees what was
    committed when it began, as on its own. Each statement's rows ([] for one that returns none)."""
    import psycopg
    from psycopg.pq import TransactionStatus

    cursors = [driver.cursor() for _ in statements]
    try:
        with driver.pipeline():
            if transaction:
                driver.execute("BEGIN")
            for cursor, (sql, parameters) in zip(cursors, statements, strict=True):
                cursor.execute(sql, parameters)
            if transaction:
                driver.execute("COMMIT")
        return [cursor.fetchall() if cursor.description is not None else [] for cursor in cursors]
    except BaseException:
        # A statement that failed left its transaction open (the rest of the batch was skipped); over a lost
        # connection there is none to end, and the error at hand says so.
        if driver.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            with contextlib.suppress(psycopg.Error):
                driver.execute("ROLLBACK")
        raise
    finally:
        for cursor in cursors:
            cursor.close()


#: PostgreSQL: a round's parameters from arrays (trial ids, names, internal values, distributions as JSON).
_PARAMS = (
    "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
    "SELECT * FROM unnest(%s::int[], %s::text[], %s::float8[], %s::text[])"
)


def write_round(
    backend: RDBStorage,
    params: Sequence[tuple[int, str, float, distributions.BaseDistribution]],
    system_attrs: Mapping[int, Mapping[str, Any]],
    user_attrs: Mapping[int, Mapping[str, Any]],
    beating: Sequence[int],
) -> None:
    """A round's parameters (trial id, name, internal value, distribution), system attrs and user attrs, and
    heartbeats for the trials ``beating``, in one transaction (on PostgreSQL in one round trip)."""
    if backend.engine.dialect.name == "postgresql":
        statements = [
            (
                _PARAMS,
                (
                    _array((p[0] for p in params), int),
                    _array((p[1] for p in params), str),
                    _array((p[2] for p in params), float),
                    _array((_distribution_json(p[3]) for p in params), str),
                ),
            ),
            *_attr_statements(models.TrialSystemAttributeModel, system_attrs),
            *_attr_statements(models.TrialUserAttributeModel, user_attrs),
        ]
        if beating:
            statements.append((_BEATS, (_array(beating, int),)))
        _one_trip(backend, statements, transaction=True)
        return
    rows = [
        {
            "trial_id": trial_id,
            "param_name": name,
            "param_value": internal,
            "distribution_json": _distribution_json(distribution),
        }
        for trial_id, name, internal, distribution in params
    ]
    with _create_scoped_session(backend.scoped_session, True) as session:
        _insert(session, models.TrialParamModel, rows)
        _set_attrs(session, models.TrialSystemAttributeModel, system_attrs)
        _set_attrs(session, models.TrialUserAttributeModel, user_attrs)
        if beating:
            beat(session, beating)


@functools.lru_cache(maxsize=4096)
def _distribution_json(distribution: distributions.BaseDistribution) -> str:
    return distributions.distribution_to_json(distribution)


def _attr_statements(model: Any, attrs: Mapping[int, Mapping[str, Any]]) -> list[tuple[str, Any]]:
    """PostgreSQL: set trials' attributes (trial id -> {key: value}), replacing only the keys given: the
    old rows deleted and new ones inserted (new row ids, which ``_stamps`` counts on), each in one
    statement over arrays."""
    rows = _attr_rows(attrs)
    if not rows:
        return []
    table = model.__tablename__
    ids, keys = _array((r["trial_id"] for r in rows), int), _array((r["key"] for r in rows), str)
    values = _array((r["value_json"] for r in rows), str)
    return [
        (
            (
                f"DELETE FROM {table} USING unnest(%s::int[], %s::text[]) AS given(trial_id, key) "
                f"WHERE {table}.trial_id = given.trial_id AND {table}.key = given.key"
            ),
            (ids, keys),
        ),
        (
            f"INSERT INTO {table} (trial_id, key, value_json) SELECT * FROM unnest(%s::int[], %s::text[], %s::text[])",
            (ids, keys, values),
        ),
    ]


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
        _insert_steps(session, {r.trial_id: r.unstored() for r in ending})
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


#: PostgreSQL: per-epoch values from arrays (trial ids, steps, values with NULL where not finite, kinds),
#: of the trials among them still running, those already there (a step written twice) left as they are.
_STEPS = """
INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, intermediate_value_type)
SELECT given.* FROM unnest(%s::int[], %s::int[], %s::float8[], %s::trialintermediatevaluetype[])
    AS given(trial_id, step, value, kind)
{running}
ON CONFLICT (trial_id, step) DO NOTHING
"""
_RUNNING = "JOIN trials ON trials.trial_id = given.trial_id AND trials.state = 'RUNNING'"


def _insert_steps(session: Any, steps: Mapping[int, Mapping[int, float]], *, running_only: bool = False) -> None:
    """Per-epoch values (trial id -> {step: value}) in the session's transaction, a step already stored
    left as it is (a running trial's values are written as it trains: ``write_steps``); with
    ``running_only``, only those of trials still running. On PostgreSQL in one statement over arrays."""
    model = models.TrialIntermediateValueModel
    stored = [
        (trial_id, step, *model.intermediate_value_to_stored_repr(value))
        for trial_id, values in steps.items()
        for step, value in values.items()
    ]
    if not stored:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        arrays = (
            _array((row[0] for row in stored), int),
            _array((row[1] for row in stored), int),
            "{" + ",".join("NULL" if row[2] is None else repr(float(row[2])) for row in stored) + "}",
            _array((row[3].name for row in stored), str),
        )
        with _driver(connection) as driver, driver.cursor() as cursor:
            cursor.execute(_STEPS.format(running=_RUNNING if running_only else ""), arrays)
        return
    if running_only:
        trials = models.TrialModel
        running = set(
            session.scalars(
                sqlalchemy.select(trials.trial_id).where(
                    trials.trial_id.in_(list(steps)), trials.state == TrialState.RUNNING
                )
            )
        )
        stored = [row for row in stored if row[0] in running]
    if stored:
        columns = ("trial_id", "step", "intermediate_value", "intermediate_value_type")
        insert = sqlalchemy.dialects.sqlite.insert(model.__table__).on_conflict_do_nothing()
        connection.execute(insert, [dict(zip(columns, row, strict=True)) for row in stored])


def write_steps(backend: RDBStorage, steps: Mapping[int, Mapping[int, float]]) -> None:
    """Running trials' per-epoch values so far (trial id -> {step: value}), in one transaction: a worker
    writes them as its members train, not all at their end (the dashboard shows a running trial's curve,
    a trial whose worker dies keeps its curve, and the end of a population writes only its last steps;
    the end of every worker's first population at once was the busiest moment of a search). A trial
    ended meanwhile (failed as stale) is left as it is."""
    with _create_scoped_session(backend.scoped_session, True) as session:
        _insert_steps(session, steps, running_only=True)


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
            _driver(connection) as driver,
            driver.cursor() as cursor,
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


#: PostgreSQL: a heartbeat, stamped by the database's clock, for each trial of an array, in one statement.
_BEATS = (
    "INSERT INTO trial_heartbeats (trial_id, heartbeat) SELECT unnest(%s::int[]), now() "
    "ON CONFLICT (trial_id) DO UPDATE SET heartbeat = EXCLUDED.heartbeat"
)


def record_heartbeats(backend: RDBStorage, trial_ids: Sequence[int]) -> None:
    """Record a heartbeat for each trial, in one transaction (Optuna's takes one per trial; on PostgreSQL
    one statement)."""
    if backend.engine.dialect.name == "postgresql":
        _one_trip(backend, [(_BEATS, (_array(trial_ids, int),))], transaction=False)
        return
    with _create_scoped_session(backend.scoped_session, True) as session:
        beat(session, trial_ids)


def silent_trials(backend: RDBStorage, study_id: int, grace: datetime.timedelta) -> list[int]:
    """The study's running trials with no heartbeat for ``grace`` (by the database's clock, which wrote the
    heartbeats), or, for a trial whose first heartbeat never came (its worker died at once), started longer
    ago than ``grace`` (by this worker's clock in UTC, as Optuna stores start times). Chosen by the server:
    every worker asks at every round, and the running trials are hundreds."""
    with _reading(backend) as connection:
        if connection.dialect.name == "postgresql":
            # A heartbeat is the server's now() stored without its zone, as LOCALTIMESTAMP gives it.
            silent, grace_parameter = "LOCALTIMESTAMP - make_interval(secs => %s)", grace.total_seconds()
        else:
            silent, grace_parameter = "datetime('now', %s)", f"-{grace.total_seconds()} seconds"
        rows = _fetched(
            connection,
            "SELECT t.trial_id FROM trials t LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
            f"WHERE t.study_id = %s AND t.state = 'RUNNING' AND (h.heartbeat < {silent} OR "
            "(h.heartbeat IS NULL AND t.datetime_start < %s)) ORDER BY t.trial_id",
            [study_id, grace_parameter, (_utc_now() - grace).isoformat(sep=" ")],
        )
    return [int(trial_id) for (trial_id,) in rows]


#: PostgreSQL: up to a count of the study's enqueued trials, first by number, taken in one statement: their
#: state RUNNING (those other workers are taking meanwhile skipped), the given user attrs (an enqueued retry
#: carries its original's: replaced in place, which readers notice by the state) and a first heartbeat.
_TAKE = """
WITH taken AS (
    UPDATE trials SET state = 'RUNNING', datetime_start = %(now)s
    WHERE trial_id IN (
        SELECT trial_id FROM trials WHERE study_id = %(study)s AND state = 'WAITING'
        ORDER BY number LIMIT %(count)s FOR UPDATE SKIP LOCKED
    )
    RETURNING trial_id, number
), user_attrs AS (
    INSERT INTO trial_user_attributes (trial_id, key, value_json)
    SELECT taken.trial_id, a.key, a.value FROM taken, unnest(%(keys)s::text[], %(values)s::text[]) AS a(key, value)
    ON CONFLICT (trial_id, key) DO UPDATE SET value_json = EXCLUDED.value_json
), beats AS (
    INSERT INTO trial_heartbeats (trial_id, heartbeat) SELECT trial_id, now() FROM taken WHERE %(beating)s
    ON CONFLICT (trial_id) DO UPDATE SET heartbeat = EXCLUDED.heartbeat
)
SELECT trial_id FROM taken ORDER BY number
"""


def take_waiting(
    backend: RDBStorage, study_id: int, count: int, user_attrs: Mapping[str, Any], *, beating: bool
) -> tuple[list[int], datetime.datetime | None]:
    """Up to ``count`` of the study's enqueued trials, first by number, taken at once: RUNNING from now (a
    trial another worker takes meanwhile is left to it), with ``user_attrs`` and, if ``beating``, a first
    heartbeat. Optuna's ``ask`` takes one per transaction, several of them (a round of repeats: eight
    workers after the same few trials, each try a transaction). Returns their ids and the start (local)."""
    now = _utc_now()
    if backend.engine.dialect.name == "postgresql":
        parameters = {
            "now": now,
            "study": study_id,
            "count": count,
            "keys": _array(user_attrs, str),
            "values": _array(map(json.dumps, user_attrs.values()), str),
            "beating": beating,
        }
        (taken,) = _one_trip(backend, [(_TAKE, parameters)], transaction=False)
        return [trial_id for (trial_id,) in taken], _local(now)
    trials = models.TrialModel
    with _create_scoped_session(backend.scoped_session, True) as session:
        waiting = (
            sqlalchemy.select(trials.trial_id)
            .where(trials.study_id == study_id, trials.state == TrialState.WAITING)
            .order_by(trials.number)
            .limit(count)
        )
        ids = sorted(
            session.scalars(
                sqlalchemy.update(trials)
                .where(trials.trial_id.in_(waiting), trials.state == TrialState.WAITING)
                .values(state=TrialState.RUNNING, _datetime_start_utc=now)
                .returning(trials.trial_id)
            )
        )
        _set_attrs(session, models.TrialUserAttributeModel, dict.fromkeys(ids, user_attrs))
        if beating and ids:
            beat(session, ids)
    return ids, _local(now)


def put_back(backend: RDBStorage, trial_ids: Sequence[int]) -> None:
    """Enqueued trials ``take_waiting`` took but nobody ran (a round cut short): WAITING again, without a
    start or heartbeat, for any worker to take."""
    trials, beats = models.TrialModel, models.TrialHeartbeatModel
    with _create_scoped_session(backend.scoped_session, True) as session:
        session.execute(
            sqlalchemy.update(trials)
            .where(trials.trial_id.in_(trial_ids), trials.state == TrialState.RUNNING)
            .values(state=TrialState.WAITING, _datetime_start_utc=None)
        )
        session.execute(sqlalchemy.delete(beats).where(beats.trial_id.in_(trial_ids)))


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
    ``present`` have one of them), in one query, written out (a worker counts every round and while it
    waits: building the query with SQLAlchemy cost five times running it)."""
    sql = f"SELECT count(*) FROM trials t WHERE t.study_id = %s AND t.state IN ({', '.join(['%s'] * len(states))})"
    parameters: list[Any] = [study_id, *(state.name for state in states)]
    if user_attrs:
        marked = (
            "EXISTS (SELECT 1 FROM trial_user_attributes a WHERE a.trial_id = t.trial_id "
            f"AND a.key IN ({', '.join(['%s'] * len(user_attrs))}))"
        )
        sql += f" AND {marked if present else 'NOT ' + marked}"
        parameters += user_attrs
    with _reading(backend) as connection:
        return int(_fetched(connection, sql, parameters)[0][0])
