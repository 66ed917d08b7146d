"""UWS 1.1 execution phases and the state machine between them (UWS 1.1 §2.1.3).

The database enforces the same table (see ``schema.sql``, ``phase_transitions``),
so a phase change made by any host or tool is checked; this module is the Python
view of it, used for decisions and messages.
"""

from __future__ import annotations

import enum


class JobPhase(enum.StrEnum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    EXECUTING = "EXECUTING"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    ABORTED = "ABORTED"
    UNKNOWN = "UNKNOWN"
    HELD = "HELD"
    SUSPENDED = "SUSPENDED"
    ARCHIVED = "ARCHIVED"


#: Phases in which the job is finished: nothing runs and nothing will.
FINAL_PHASES = frozenset({JobPhase.COMPLETED, JobPhase.ERROR, JobPhase.ABORTED, JobPhase.ARCHIVED})

#: The phases of a job's usual life, in order (what job lists filter by and metrics report).
USUAL_PHASES = (
    JobPhase.PENDING,
    JobPhase.QUEUED,
    JobPhase.EXECUTING,
    JobPhase.COMPLETED,
    JobPhase.ERROR,
    JobPhase.ABORTED,
)

#: Phases in which a WAIT request blocks (UWS 1.1 §2.2.1.2).
ACTIVE_PHASES = frozenset({JobPhase.PENDING, JobPhase.QUEUED, JobPhase.EXECUTING})

#: Allowed phase changes, from the normative UWS state diagram.
TRANSITIONS: dict[JobPhase, frozenset[JobPhase]] = {
    JobPhase.PENDING: frozenset({JobPhase.QUEUED, JobPhase.ABORTED, JobPhase.ERROR}),
    JobPhase.QUEUED: frozenset({JobPhase.EXECUTING, JobPhase.ABORTED, JobPhase.ERROR}),
    JobPhase.EXECUTING: frozenset(
        {
            JobPhase.COMPLETED,
            JobPhase.ERROR,
            JobPhase.ABORTED,
            JobPhase.SUSPENDED,
            JobPhase.HELD,
            # Not in the UWS diagram: the server puts a job back in the queue
            # when its runner stops before the job could start its query.
            JobPhase.QUEUED,
        }
    ),
    JobPhase.SUSPENDED: frozenset({JobPhase.EXECUTING, JobPhase.ABORTED, JobPhase.ERROR}),
    JobPhase.HELD: frozenset({JobPhase.EXECUTING, JobPhase.QUEUED, JobPhase.ABORTED}),
    JobPhase.COMPLETED: frozenset({JobPhase.ARCHIVED}),
    JobPhase.ERROR: frozenset({JobPhase.ARCHIVED}),
    JobPhase.ABORTED: frozenset({JobPhase.ARCHIVED}),
    JobPhase.UNKNOWN: frozenset(set(JobPhase) - {JobPhase.UNKNOWN}),
    JobPhase.ARCHIVED: frozenset(),
}


def is_allowed(old: JobPhase, new: JobPhase) -> bool:
    """True when UWS allows moving a job from ``old`` to ``new``."""
    return new == JobPhase.UNKNOWN or new in TRANSITIONS[old]
