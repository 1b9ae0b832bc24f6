"""How a trial ends, as a worker hands it to the storage; a trial with some of its fields replaced."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from optuna.trial import FrozenTrial, TrialState

__all__ = ["TrialRecord", "replaced"]


def replaced(trial: FrozenTrial, **changes: Any) -> FrozenTrial:
    """A new FrozenTrial: ``trial`` with the fields named in ``changes`` (its constructor's) replaced."""
    fields: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state,
        "value": None,
        "values": trial.values,
        "datetime_start": trial.datetime_start,
        "datetime_complete": trial.datetime_complete,
        "params": trial.params,
        "distributions": trial.distributions,
        "user_attrs": trial.user_attrs,
        "system_attrs": trial.system_attrs,
        "intermediate_values": trial.intermediate_values,
        "trial_id": trial._trial_id,
    }
    return FrozenTrial(**{**fields, **changes})


class TrialRecord:
    """How a trial ends: its state, its value (COMPLETE), its per-epoch values (of which the first
    ``stored`` are written already, as it trained), its user attributes and new system attributes (its
    artifacts')."""

    __slots__ = ("intermediate", "state", "stored", "system_attrs", "trial_id", "user_attrs", "value")

    def __init__(
        self,
        trial_id: int,
        intermediate: Mapping[int, float],
        user_attrs: Mapping[str, Any],
        state: TrialState,
        value: float | None = None,
        system_attrs: Mapping[str, Any] | None = None,
        *,
        stored: int = 0,
    ) -> None:
        self.trial_id, self.intermediate, self.user_attrs = trial_id, intermediate, user_attrs
        self.state, self.value, self.system_attrs, self.stored = state, value, system_attrs or {}, stored

    def unstored(self) -> Mapping[int, float]:
        """The per-epoch values not yet written."""
        if not self.stored:
            return self.intermediate
        return dict(itertools.islice(self.intermediate.items(), self.stored, None))

    def final_value(self) -> float | None:
        """COMPLETE: its value; PRUNED: its last reported value (as Optuna's tell does); FAIL: none."""
        if self.state == TrialState.COMPLETE:
            return self.value
        if self.state == TrialState.PRUNED and self.intermediate:
            return self.intermediate[max(self.intermediate)]
        return None
