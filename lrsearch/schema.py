"""What a study stores for lrsearch: its contract with every reader (the report, the dashboard, ``reap``,
other workers, other releases). The names of user attrs and system attrs lrsearch writes live here only."""

from __future__ import annotations

__all__ = [
    "FAILURE_ATTRS",
    "METADATA",
    "OUTSIDE_BUDGET",
    "PBT_GROUP",
    "PBT_MEMBER",
    "PBT_SCHEDULE",
    "PER_EPOCH_SUFFIX",
    "REPEAT_OF",
    "REPLAY",
    "RUN_PREFIX",
    "SETTLED",
    "TIMING_PREFIX",
    "pbt_keys",
    "repeat_keys",
]

#: The study's user attr holding what it asks (question, trainer, compare, metric, its definition).
METADATA = "lrsearch"
#: A repeat's user attr: the number of the trial whose configuration it re-runs with a new seed.
REPEAT_OF = "repeat_of"
#: A trial of the PBT population a study compares with its static schedules (``[pbt] members``): True.
PBT_MEMBER = "pbt_member"
#: The compared group of the PBT members and their replays.
PBT_GROUP = "pbt"
#: A PBT trial's user attr: the schedule its weights followed, through every member whose weights it took, as
#: a study file's ``[fixed]`` keys (``schedule``, ``lr``, ``piecewise``...) with its last momentum and decay.
PBT_SCHEDULE = "pbt_schedule"
#: A repeat's user attr where it replays a PBT member: the ``PBT_SCHEDULE`` it trains with from scratch.
REPLAY = "replay"
#: User attrs of trials outside the search's budget (``n_trials``): the repeats and the PBT members.
OUTSIDE_BUDGET = (REPEAT_OF, PBT_MEMBER)
#: User attrs whose key ends so hold per-epoch lists (``lr_history``...); a worker's reads skip them.
PER_EPOCH_SUFFIX = "_history"
#: User attrs in which a run says how it failed: a retry is a new run, and does not inherit them.
FAILURE_ATTRS = ("error", "interrupted", "worker")
#: A trial's system attr, written with its parameters in one transaction: until its state changes, nothing of
#: it changes (its pruner writes nothing while it trains), so other workers need not look at it again.
SETTLED = "lrsearch:settled"
#: Study system attrs: each worker's times (``Tally.timing``), one per worker id.
TIMING_PREFIX = "lrsearch:timing:"
#: Study system attrs: when each ``lrsearch.run`` call (a process) began, began and ended its trials and
#: ended its report (unix seconds; ``started``, ``searching``, ``searched``, ``reported``), one per worker id.
RUN_PREFIX = "lrsearch:run:"


def repeat_keys(searched: int, look: int = 0) -> tuple[str, str]:
    """The study system attrs of the repeats scheduled after ``searched`` search trials (and, for ``look``
    1, 2, ..., those a sequential study adds): the claim of the one worker that enqueues them, and the mark
    that they are enqueued (its value: how many)."""
    suffix = f"{searched}" if look == 0 else f"{searched}:{look}"
    return f"lrsearch:repeats:{suffix}", f"lrsearch:repeats_ready:{suffix}"


def pbt_keys(searched: int) -> tuple[str, str]:
    """The study system attrs of the PBT population enqueued after ``searched`` search trials: the claim of
    the one worker that enqueues it, and the mark that it is enqueued (its value: how many members)."""
    return f"lrsearch:pbt:{searched}", f"lrsearch:pbt_ready:{searched}"
