"""The daemon's health: which of its database operations fail, and what to do about it.

Decisions and bookkeeping only, no I/O (tests read them as tables). The
loop gathers the facts (an operation failed with a ``DatabaseFault``, an
operation succeeded, a spare could not connect), asks ``Health`` and carries
out the answer: try again at once, reconnect, or wait ``delay`` seconds
(doubling up to the configured cap) after logging one warning for the step.
Each operation backs off on its own, so a failing destruction sweep does not
stop jobs from running; claims also wait while the heartbeat cannot be
written, because other daemons would soon take this one for dead and end the
jobs it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from tapd.store.faults import Action, DatabaseFault

#: Conflicts (serialization failure, deadlock) retried at once before they
#: count as a persistent fault.
RETRIES_AT_ONCE = 3


class Operation:
    """Names of the daemon's database operations (log field ``operation``)."""

    CLAIM = "claim"
    HEARTBEAT = "heartbeat"
    OWN_JOBS = "own jobs check"  # our jobs against the database's account of them
    DEAD_DAEMONS = "dead daemons check"  # daemons gone, and their jobs
    SWEEP = "destruction sweep"
    CATALOG = "catalog refresh"
    ENDINGS = "job endings"  # endings of children that died, written on their behalf
    SHUTDOWN = "shutdown"  # aborting or requeueing what still runs when stopping
    NOTIFICATIONS = "notifications"  # reading NOTIFY from the LISTEN connection
    SPARES = "spares"  # spare children connecting for the slots
    PROGRESS = "progress"  # how far the running jobs got, recorded for their users


@dataclass(frozen=True)
class Backoff:
    """Waits between attempts: ``first`` seconds, doubling up to ``cap``
    (a retry policy as a value, like procrastinate's ``RetryStrategy``)."""

    first: float = 0.5
    cap: float = 30.0

    def delay(self, step: int) -> float:
        """The wait after the ``step``-th consecutive failure (1, 2, ...)."""
        return float(min(self.cap, self.first * 2 ** max(0, step - 1)))


@dataclass(frozen=True)
class Step:
    """The answer to a failure: what to do, and when to try the operation again."""

    action: Action  # RETRY, RECONNECT or BACK_OFF
    delay: float = 0.0  # seconds until the next attempt
    warn: bool = False  # a new back-off step: one warning, STATUS= and the runners row say why


def decide(fault: DatabaseFault, failures: int, backoff: Backoff) -> Step:
    """What the daemon does after its operation failed ``failures`` times in a row."""
    action = fault.daemon_action
    if action is Action.RECONNECT:
        return Step(Action.RECONNECT)  # the reconnect cycle has its own back-off and log
    if action is Action.RETRY and failures <= RETRIES_AT_ONCE:
        return Step(Action.RETRY)
    steps = failures - RETRIES_AT_ONCE if action is Action.RETRY else failures
    return Step(Action.BACK_OFF, backoff.delay(steps), warn=True)


@dataclass
class Failing:
    """An operation that has been failing."""

    fault: DatabaseFault
    failures: int
    retry_at: float  # time.monotonic() of its next attempt
    warned: bool  # a back-off step was announced (it counts as degraded)


class Health:
    """Failing operations of one daemon, their back-off, and how to describe it."""

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self.failing: dict[str, Failing] = {}

    def due(self, operation: str, now: float) -> bool:
        """Whether ``operation`` may be attempted (it is not waiting out a back-off)."""
        failing = self.failing.get(operation)
        return failing is None or now >= failing.retry_at

    def ok(self, operation: str) -> bool:
        """Whether ``operation`` worked the last time it was tried."""
        return operation not in self.failing

    def failed(self, operation: str, fault: DatabaseFault, now: float) -> Step:
        """Record a failure of ``operation``; the step to take."""
        previous = self.failing.get(operation)
        failures = previous.failures + 1 if previous else 1
        step = decide(fault, failures, self.backoff)
        warned = step.warn or (previous.warned if previous else False)
        self.failing[operation] = Failing(fault, failures, now + step.delay, warned)
        return step

    def succeeded(self, operation: str) -> Failing | None:
        """Record a success of ``operation``; what had been failing, if anything."""
        return self.failing.pop(operation, None)

    def next_attempt(self, after: float) -> float | None:
        """The earliest time after ``after`` a failing operation is tried again
        (one already due waits for its occasion: a claim for a free spare)."""
        return min((f.retry_at for f in self.failing.values() if f.retry_at > after), default=None)

    def healthy(self, operation: str) -> bool:
        """Whether ``operation`` is not in a back-off step (a retry at once is not one)."""
        failing = self.failing.get(operation)
        return failing is None or not failing.warned

    def may_claim(self, now: float) -> bool:
        """Claims wait for their own back-off, and while the heartbeat cannot be written."""
        return self.due(Operation.CLAIM, now) and self.ok(Operation.HEARTBEAT)

    def degraded(self) -> str | None:
        """Why the daemon is not working normally, for an operator; None when it is."""
        reasons = [f"{op}: {f.fault.message}" for op, f in self.failing.items() if f.warned]
        return "; ".join(reasons) or None

    def usable_slots(self, *, max_jobs: int, running: int, ready_spares: int) -> int:
        """Job slots running a job or able to take one now: all of them while
        spares connect and claims work; else only those with a working child."""
        if not self.healthy(Operation.CLAIM) or not self.healthy(Operation.HEARTBEAT):
            return running
        if not self.healthy(Operation.SPARES):
            return min(max_jobs, running + ready_spares)
        return max_jobs
