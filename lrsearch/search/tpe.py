"""TPE for populations: Optuna's multivariate, grouped TPE with the constant liar, owned here and computed
once per set of finished trials instead of at every ask.

Suggestions are Optuna's (``TPESampler(multivariate=True, group=True)``, 5.0; the equivalence tests hold
them to it): the search space in groups of parameters that always appear together; below
``n_startup_trials`` finished trials, uniform draws; after, for each group, the finished trials split into
the good (the best 10%, at most 25; pruned ones ranked by their last value at their last step) and the rest,
running trials among the rest (the constant liar: a value is assumed bad until known), a Parzen estimator
``l`` of the good and ``g`` of the rest, and of ``n_ei_candidates`` draws from ``l`` the one with the highest
``l / g``. A trial's relatively sampled values are written as Optuna's TPE writes them (system attrs
``tpe:relative_params:N``), so that other workers count them while it runs.

What a population changes: a worker asks a whole population between two reads of the study, and most of
an ask's work is decided by the finished trials alone (the groups, the split, ``l``, and ``g``'s finished
observations), so it is done once per set of finished trials; each ask adds the running trials' rows.
"""

from __future__ import annotations

import dataclasses
import json
import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from lrsearch.search.parzen import ParzenEstimator

__all__ = ["RELATIVE_PARAMS_KEY", "PopulationTPESampler", "default_gamma"]

RELATIVE_PARAMS_KEY = "tpe:relative_params"
_ATTR_LENGTH = 2045  # a system attr's value in Optuna's RDB schema holds at most 2048 characters
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def default_gamma(finished: int) -> int:
    """How many of the finished trials count as good."""
    return min(math.ceil(0.1 * finished), 25)


@dataclasses.dataclass
class _Split:
    """What one group's asks share while the finished trials stay the same: ``l``, and the rest of the
    finished trials holding every parameter of the group (numbers, and internal values by parameter)."""

    below: ParzenEstimator
    above_numbers: np.ndarray
    above: np.ndarray  # [trials, parameters]


class _Values:
    """The running trials' values, their relatively sampled ones included, parsed once per change of the trial
    (its number of params and system attrs) and shared by every group's rows: a running trial's relative
    values are one JSON text, which each group parsed again (seven times a trial in ``blobs_lr``)."""

    def __init__(self) -> None:
        self._held: dict[int, tuple[tuple[int, int], dict[str, Any]]] = {}

    def of(self, trial: FrozenTrial) -> dict[str, Any]:
        stamp = (len(trial.params), len(trial.system_attrs))
        held = self._held.get(trial._trial_id)
        if held is None or held[0] != stamp:
            held = self._held[trial._trial_id] = (stamp, _params(trial))
        return held[1]

    def keep(self, ids: set[int]) -> None:
        """Forget the trials not among ``ids`` (those that finished)."""
        self._held = {i: held for i, held in self._held.items() if i in ids}


@dataclasses.dataclass
class _Running:
    """One group's rows of the running trials, kept while trials finish (a split is made again for every
    new finished trial; a running trial's row is not, since a running trial's values are only ever added to).
    """

    values: _Values
    # A trial's row, once all its values are there (they stay); one that lacks some is looked at again.
    rows_by_id: dict[int, tuple[float, ...]] = dataclasses.field(default_factory=dict)
    # The running trials last seen, and the numbers and rows of those holding every parameter: between two
    # reads of the study each ask adds one running trial (the one asked before it), and the others are the
    # same FrozenTrials (the storage hands out a new one for any change), so their rows stand.
    running: list[FrozenTrial] = dataclasses.field(default_factory=list)
    numbers: list[int] = dataclasses.field(default_factory=list)
    rows: list[tuple[float, ...]] = dataclasses.field(default_factory=list)
    table: np.ndarray = dataclasses.field(default_factory=lambda: np.empty((0, 0)))  # the rows, as one array

    def see(
        self, running: list[FrozenTrial], search_space: dict[str, BaseDistribution]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The numbers and rows (an array, a row each) of the running trials holding every parameter; only
        those added since the last ask are looked at, unless the study was read again (the same trials by
        identity: comparing trials' contents costs more than looking at them again)."""
        seen = len(self.running)
        if len(running) < seen or not all(map(operator.is_, running, self.running)):
            self.numbers, self.rows, self.table, seen = [], [], np.empty((0, len(search_space))), 0
            ids = {t._trial_id for t in running}  # those that finished are forgotten
            self.rows_by_id = {i: row for i, row in self.rows_by_id.items() if i in ids}
        for trial in running[seen:]:
            row = self.row(trial, search_space)
            if row is not None:
                self.numbers.append(trial.number)
                self.rows.append(row)
        self.running = running
        if len(self.table) < len(self.rows) or self.table.shape[1] != len(search_space):
            # As an array: the rows added since the last ask appended.
            kept = self.table.reshape(-1, len(search_space))
            added = np.array(self.rows[len(kept) :], dtype=float).reshape(-1, len(search_space))
            self.table = np.concatenate([kept, added])
        return np.asarray(self.numbers, dtype=np.int64), self.table

    def row(self, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> tuple[float, ...] | None:
        row = self.rows_by_id.get(trial._trial_id)
        if row is None:
            row = _internal(self.values.of(trial), search_space)
            if row is not None:
                self.rows_by_id[trial._trial_id] = row
        return row


@dataclasses.dataclass(frozen=True)
class _Seen:
    """The trials of one ask: the finished ones, their numbers, and the others running."""

    trial_id: int
    finished: list[FrozenTrial]
    fingerprint: tuple[int, ...]
    running: list[FrozenTrial]


class PopulationTPESampler(optuna.samplers.BaseSampler):
    """Optuna's multivariate, grouped TPE with the constant liar, for single-objective studies (see the
    module); its parameters are Optuna's, with Optuna's defaults."""

    def __init__(
        self,
        *,
        seed: int | None = None,
        n_startup_trials: int = 10,
        n_ei_candidates: int = 24,
        prior_weight: float = 1.0,
        consider_magic_clip: bool = True,
        consider_endpoints: bool = False,
    ) -> None:
        if isinstance(n_startup_trials, bool) or not isinstance(n_startup_trials, int) or n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be a non-negative integer, but got {n_startup_trials!r}")
        if isinstance(n_ei_candidates, bool) or not isinstance(n_ei_candidates, int) or n_ei_candidates < 1:
            raise ValueError(f"n_ei_candidates must be a positive integer, but got {n_ei_candidates!r}")
        if not (isinstance(prior_weight, (int, float)) and math.isfinite(prior_weight) and prior_weight >= 0):
            raise ValueError(f"prior_weight must be a non-negative finite number, but got {prior_weight!r}")
        self.n_startup_trials = n_startup_trials
        self.n_ei_candidates = n_ei_candidates
        self.prior_weight = float(prior_weight)
        self.consider_magic_clip = consider_magic_clip
        self.consider_endpoints = consider_endpoints
        self._rng = np.random.RandomState(seed)
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self._groups: list[dict[str, BaseDistribution]] = []
        self._grouped: set[int] = set()  # the finished trials folded into the groups, by id
        self._split_by: set[frozenset[str]] = set()  # the sets of names the groups were split by
        self._grouped_for: tuple[int, ...] | None = None  # the finished trials last looked through
        self._splits_for: tuple[int, ...] | None = None  # the finished trials the splits were made for
        self._splits: dict[tuple[tuple[str, BaseDistribution], ...], _Split] = {}
        self._division: tuple[list[FrozenTrial], list[FrozenTrial]] = ([], [])  # the good and the rest
        self._finished_rows: dict[tuple[tuple[str, BaseDistribution], ...], dict[int, tuple[float, ...] | None]] = {}
        self._running: dict[tuple[tuple[str, BaseDistribution], ...], _Running] = {}
        # Each group's g at its last ask, whose computed masses the next one takes where its kernels are the same.
        self._last_above: dict[tuple[tuple[str, BaseDistribution], ...], ParzenEstimator] = {}
        self._values = _Values()
        self._seen: _Seen | None = None

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._random.reseed_rng()

    # --- the search space ---------------------------------------------------------------------------------

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if len(study.directions) > 1:
            raise ValueError(f"PopulationTPESampler is for one objective, but the study has {len(study.directions)}")
        seen = self._read(study, trial)
        if seen.fingerprint is not self._grouped_for:  # the same finished trials as the last ask: nothing new
            for finished in seen.finished:
                if finished._trial_id not in self._grouped:
                    self._grouped.add(finished._trial_id)
                    # Splitting by a set of names splits nothing a second time (groups are only ever split).
                    names = frozenset(finished.distributions)
                    if names not in self._split_by:
                        self._split_by.add(names)
                        self._groups = _refined(self._groups, finished.distributions)
            self._grouped_for = seen.fingerprint
        return {name: d for group in self._groups for name, d in _sampled(group).items()}

    # --- sampling -----------------------------------------------------------------------------------------

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if len(self._read(study, trial).finished) < self.n_startup_trials:
            return {}
        params: dict[str, Any] = {}
        for group in self._groups:
            # A caller may sample less than the inferred space (lrsearch's GroupSampler fixes some of it).
            space = {name: d for name, d in _sampled(group).items() if name in search_space}
            if space:
                params.update(self._sample(study, trial, space))
        if params:
            text = json.dumps(params)
            for i in range(0, len(text), _ATTR_LENGTH):
                key = f"{RELATIVE_PARAMS_KEY}:{i // _ATTR_LENGTH}"
                study._storage.set_trial_system_attr(trial._trial_id, key, text[i : i + _ATTR_LENGTH])
        return params

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        if len(self._read(study, trial).finished) < self.n_startup_trials:
            return self._random.sample_independent(study, trial, param_name, param_distribution)
        return self._sample(study, trial, {param_name: param_distribution})[param_name]

    def _sample(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        seen = self._read(study, trial)
        split = self._split(study, seen, search_space)
        key = tuple(search_space.items())
        running = self._running.get(key)
        if running is None:
            running = self._running[key] = _Running(self._values)
        numbers, rows = running.see(seen.running, search_space)
        # The rest by number, as Optuna orders them: older observations weigh less.
        order = np.argsort(np.concatenate([split.above_numbers, numbers]), kind="stable")
        g = self._estimator(np.concatenate([split.above, rows])[order], search_space, self._last_above.get(key))
        self._last_above[key] = g
        candidates = split.below.sample(self._rng, self.n_ei_candidates)
        best = candidates[int(np.argmax(split.below.log_pdf(candidates) - g.log_pdf(candidates)))]
        return {name: d.to_external_repr(best[i].item()) for i, (name, d) in enumerate(search_space.items())}

    def _read(self, study: optuna.Study, trial: FrozenTrial) -> _Seen:
        """The trials one ask samples against, read once for all its groups."""
        if self._seen is None or self._seen.trial_id != trial._trial_id:
            finished = study.get_trials(deepcopy=False, states=_FINISHED)
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            # The trial asked for is most often the newest, the last.
            if running and running[-1]._trial_id == trial._trial_id:
                running = running[:-1]
            else:
                running = [t for t in running if t._trial_id != trial._trial_id]
            # A trial only ever joins the finished ones, but for a worker's own view of a trial it finished
            # that another worker failed as stale meanwhile: the numbers say which set this is (the same
            # FrozenTrials as the last ask's, most often: the same numbers).
            last = self._seen
            if (
                last is not None
                and len(last.finished) == len(finished)
                and all(map(operator.is_, finished, last.finished))
            ):
                fingerprint = last.fingerprint
            else:
                fingerprint = tuple(t.number for t in finished)
                self._values.keep({t._trial_id for t in running})
            self._seen = _Seen(trial._trial_id, finished, fingerprint, running)
        return self._seen

    def _split(self, study: optuna.Study, seen: _Seen, search_space: dict[str, BaseDistribution]) -> _Split:
        if seen.fingerprint != self._splits_for:
            self._splits_for, self._splits = seen.fingerprint, {}
            self._division = _split_trials(seen.finished, default_gamma(len(seen.finished)), study.direction)
        key = tuple(search_space.items())
        split = self._splits.get(key)
        if split is None:
            below, above = self._division
            rows = self._finished_rows.setdefault(key, {})
            below_rows = [row for t in below if (row := self._finished_row(rows, t, search_space)) is not None]
            kept = [(t.number, row) for t in above if (row := self._finished_row(rows, t, search_space)) is not None]
            split = _Split(
                below=self._estimator(_table(below_rows, search_space), search_space),
                above_numbers=np.asarray([number for number, _ in kept], dtype=np.int64),
                above=_table([row for _, row in kept], search_space),
            )
            self._splits[key] = split
        return split

    @staticmethod
    def _finished_row(
        rows: dict[int, tuple[float, ...] | None], trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> tuple[float, ...] | None:
        """A finished trial's row, read once: its values never change."""
        if trial._trial_id not in rows:
            rows[trial._trial_id] = _row(trial, search_space)
        return rows[trial._trial_id]

    def _estimator(
        self, observations: np.ndarray, space: dict[str, BaseDistribution], reusing: ParzenEstimator | None = None
    ) -> ParzenEstimator:
        return ParzenEstimator(
            observations,
            space,
            prior_weight=self.prior_weight,
            consider_magic_clip=self.consider_magic_clip,
            consider_endpoints=self.consider_endpoints,
            reusing=reusing,
        )


def _refined(
    groups: list[dict[str, BaseDistribution]], distributions: dict[str, BaseDistribution]
) -> list[dict[str, BaseDistribution]]:
    """The groups split by one more trial's parameters: each group into what the trial has of it and what it
    lacks, and the trial's new parameters as a group after them (Optuna's order, which the random stream
    follows)."""
    new = set(distributions)
    refined: list[dict[str, BaseDistribution]] = []
    for group in groups:
        refined.append({name: d for name, d in group.items() if name in new})
        refined.append({name: d for name, d in group.items() if name not in new})
        new -= group.keys()
    refined.append({name: distributions[name] for name in distributions if name in new})
    return [group for group in refined if group]


def _sampled(group: dict[str, BaseDistribution]) -> dict[str, BaseDistribution]:
    """A group's parameters TPE samples, by name (an order that does not depend on the hash seed)."""
    return {name: group[name] for name in sorted(group) if not group[name].single()}


def _params(trial: FrozenTrial) -> dict[str, Any]:
    """A trial's values: a running one's relatively sampled values too, which it may not have suggested yet."""
    if trial.state.is_finished():
        return trial.params
    chunks, i = [], 0
    while chunk := trial.system_attrs.get(f"{RELATIVE_PARAMS_KEY}:{i}"):
        chunks.append(chunk)
        i += 1
    if not chunks:
        return trial.params
    try:
        params = json.loads("".join(chunks))
    except json.JSONDecodeError:  # another worker's chunks read half written
        return trial.params
    return {**params, **trial.params}


def _row(trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> tuple[float, ...] | None:
    """A trial's internal values for every parameter of the space, or None where it lacks one."""
    return _internal(_params(trial), search_space)


def _internal(params: dict[str, Any], search_space: dict[str, BaseDistribution]) -> tuple[float, ...] | None:
    if not search_space.keys() <= params.keys():
        return None
    return tuple(d.to_internal_repr(params[name]) for name, d in search_space.items())


def _table(rows: list[tuple[float, ...]], search_space: dict[str, BaseDistribution]) -> np.ndarray:
    """[rows, parameters]."""
    return np.array(rows, dtype=float).reshape(-1, len(search_space))


def _split_trials(
    finished: Sequence[FrozenTrial], n_below: int, direction: StudyDirection
) -> tuple[list[FrozenTrial], list[FrozenTrial]]:
    """The good and the rest of the finished trials, each by number: the best completed ones, then (if fewer
    than ``n_below``) the pruned ones that got furthest, best last value first."""
    sign = -1.0 if direction == StudyDirection.MAXIMIZE else 1.0
    complete = sorted((t for t in finished if t.state == TrialState.COMPLETE), key=lambda t: sign * t.value)
    pruned = sorted((t for t in finished if t.state == TrialState.PRUNED), key=lambda t: _pruned_score(t, sign))
    n_complete = min(n_below, len(complete))
    n_pruned = min(n_below - n_complete, len(pruned))
    below = complete[:n_complete] + pruned[:n_pruned]
    above = complete[n_complete:] + pruned[n_pruned:]
    return sorted(below, key=lambda t: t.number), sorted(above, key=lambda t: t.number)


def _pruned_score(trial: FrozenTrial, sign: float) -> tuple[float, float]:
    if not trial.intermediate_values:
        return 1, 0.0
    step, value = max(trial.intermediate_values.items())
    return -step, float("inf") if math.isnan(value) else sign * value
