"""Heartbeat settings, and the retry of a trial whose worker is gone."""

from __future__ import annotations

import dataclasses
import warnings

import optuna

from lrsearch.checks import integer
from lrsearch.errors import ConfigError
from lrsearch.schema import FAILURE_ATTRS, SETTLED
from lrsearch.storage.records import replaced

__all__ = ["Heartbeat"]


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    """Every running trial's heartbeat is recorded each ``interval`` seconds; one silent for ``grace``
    seconds is failed (its worker is gone) and re-enqueued with its parameters up to ``max_retry`` times."""

    interval: int = 30
    grace: int = 120
    max_retry: int = 3

    def __post_init__(self) -> None:
        integer("heartbeat interval", self.interval, 1, 3600)
        integer("grace period", self.grace, 2, 7 * 24 * 3600)
        integer("max_retry", self.max_retry, 0, 100)
        if self.grace <= self.interval:
            raise ConfigError(
                f"the grace period ({self.grace} s) must be longer than the heartbeat interval ({self.interval} s)"
            )

    def retry_callback(self) -> optuna.storages.RetryHeartbeatStaleTrialCallback:
        """Optuna's retry of a failed trial, as ``Heartbeat.max_retry`` allows."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _Retry(max_retry=self.max_retry)


class _Retry(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a failed trial (its parameters, ``failed_trial``, ``retry_history``), without the
    failed run's account of itself (a retry that completed would still say ``interrupted``) or its mark
    of being settled (the retry's round writes to it: ``schema.SETTLED``)."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        kept = {k: v for k, v in trial.user_attrs.items() if k not in FAILURE_ATTRS}
        system = {k: v for k, v in trial.system_attrs.items() if k != SETTLED}
        super().__call__(study, replaced(trial, user_attrs=kept, system_attrs=system))
