"""How an attempt of a job ends, decided from facts: pure functions and tables.

The daemon's loop and its children gather the facts (a child's exit status or
signal, what the daemon asked of it, the attempt number, whether the attempt
still holds its job) and carry out the answer: finish the attempt in a phase
with a message, give the job back to the queue, or record nothing. Every
answer is applied to one attempt (``tapd.store.Attempt``), so an ending that
arrives late cannot land on a later run of the job.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass

from tapd.store.phases import JobPhase

#: What a child's exit status says (declared, as a systemd unit declares its
#: own): the child recorded its job's ending, or the job was not its to end.
EXIT_DONE = 0
#: A bug in the child (logged by it); the daemon ends the job in ERROR.
EXIT_INTERNAL_ERROR = 70
#: The child lost the database while it ran the job, without an ending.
EXIT_DATABASE_LOST = 75
#: A spare could not reach the database (no job touched).
EXIT_SPARE_NO_DATABASE = 76
#: The child gave its job back when asked to (SIGUSR1), recording nothing.
EXIT_GAVE_BACK = 77

#: An attempt lost to the database this many times ends in ERROR instead of
#: being requeued again (as do orphans that had started).
MAX_ATTEMPTS = 3

DAEMON_DIED = "The runner daemon stopped unexpectedly; the job was stopped."
ORPHAN_MESSAGE = (
    "The runner daemon running this job stopped unexpectedly; the job was stopped. Submit it again."
)
ABORTED_ON_REQUEST = "The job was aborted on request."
SHUTDOWN_ABORT = "The runner daemon was stopped before the job ended; submit it again."
SHUTDOWN_REQUEUE = "the runner daemon stopped; the job will run again"


class Disposition(enum.Enum):
    NONE = "none"  # nothing to record: the attempt ended its job itself, or lost it
    FINISH = "finish"  # end the attempt in ``phase`` with ``message``
    REQUEUE = "requeue"  # back to the queue: a new attempt will run the job


@dataclass(frozen=True)
class Ending:
    """The decision about one attempt (``message``: the user's error, or the
    journal's reason for a requeue)."""

    disposition: Disposition
    phase: JobPhase | None = None
    message: str = ""


NOTHING = Ending(Disposition.NONE)


def finish(phase: JobPhase, message: str) -> Ending:
    return Ending(Disposition.FINISH, phase, message)


def requeue(reason: str) -> Ending:
    return Ending(Disposition.REQUEUE, JobPhase.QUEUED, reason)


class Interruption(enum.Enum):
    """Why a child's job was interrupted (by a signal to the child)."""

    ABORT = "abort"  # SIGTERM or SIGINT from anyone: the job is aborted
    TIME_LIMIT = "time_limit"  # SIGALRM at the job's deadline
    DAEMON_DIED = "daemon_died"  # SIGTERM from the kernel: the daemon is gone
    GIVE_BACK = "give_back"  # SIGUSR1 from the stopping daemon: it requeues the job


def time_limit_message(execution_duration: int) -> str:
    return (
        f"The job exceeded its executionDuration of {execution_duration} s and was aborted;"
        " make the query more selective or ask for a longer executionDuration."
    )


def interruption_ending(reason: Interruption, execution_duration: int) -> Ending:
    """What a child records when its job is interrupted. GIVE_BACK: nothing
    (the child exits ``EXIT_GAVE_BACK`` and the daemon requeues the attempt
    once the child is gone)."""
    if reason is Interruption.GIVE_BACK:
        return requeue(SHUTDOWN_REQUEUE)
    if reason is Interruption.TIME_LIMIT:
        return finish(JobPhase.ABORTED, time_limit_message(execution_duration))
    if reason is Interruption.DAEMON_DIED:
        return finish(JobPhase.ERROR, DAEMON_DIED)
    return finish(JobPhase.ABORTED, ABORTED_ON_REQUEST)


@dataclass(frozen=True)
class ChildExit:
    """What the daemon knows when a child that was given a job is reaped."""

    code: int | None  # exit status, or None when a signal ended it
    signal: int | None
    attempt: int  # the attempt's number (how often the job was claimed)
    still_ours: bool = True  # False: the daemon stopped it because the job was ended elsewhere
    giving_back: bool = False  # the daemon asked it to give the job back (stopping, requeue)
    killed_at_deadline: int | None = None  # the daemon killed it past this executionDuration
    killed_unresponsive: str | None = None  # killed for not stopping when asked (why asked)


def child_ending(facts: ChildExit) -> Ending:
    """What the daemon records for the attempt of a child that exited."""
    if facts.code == EXIT_DONE:
        return NOTHING  # the child recorded the ending (or the job was not its own)
    if not facts.still_ours:
        return NOTHING
    if facts.giving_back:
        return requeue(SHUTDOWN_REQUEUE)
    if facts.code in (EXIT_DATABASE_LOST, EXIT_SPARE_NO_DATABASE):
        if facts.attempt < MAX_ATTEMPTS:
            return requeue("database connection lost")
        return finish(
            JobPhase.ERROR,
            f"The database connection was lost {facts.attempt} times"
            " while the job ran; submit it again later.",
        )
    if facts.code == EXIT_GAVE_BACK:
        return requeue("its runner process gave it back")
    if facts.killed_at_deadline is not None:
        return finish(JobPhase.ABORTED, time_limit_message(facts.killed_at_deadline))
    if facts.killed_unresponsive is not None:
        return finish(
            JobPhase.ERROR,
            f"The runner process did not stop when asked ({facts.killed_unresponsive}).",
        )
    if facts.signal is not None:
        return finish(
            JobPhase.ERROR,
            f"The runner process was killed by signal {facts.signal}"
            f" ({signal.Signals(facts.signal).name}).",
        )
    return finish(JobPhase.ERROR, f"The runner process failed (exit status {facts.code}).")


def unattended_ending(*, had_child: bool, attempt: int) -> Ending:
    """An attempt this daemon claimed but has no child and no pending ending for.
    ``had_child``: the claim named a child (the job was handed over, so it ran
    and its ending went missing); otherwise it never started."""
    if not had_child:
        return requeue("claimed but never started")
    if attempt < MAX_ATTEMPTS:
        return requeue("its runner process ended without a recorded ending; the job runs again")
    return finish(
        JobPhase.ERROR,
        "The runner process ended without recording how the job ended; submit it again.",
    )


def orphan_ending(*, had_child: bool, attempt: int) -> Ending:
    """An attempt whose daemon is gone (dead, or silent past the heartbeat timeout)."""
    if not had_child and attempt < MAX_ATTEMPTS:
        return requeue("its runner daemon is gone; the job had not started")
    return finish(JobPhase.ERROR, ORPHAN_MESSAGE)


__all__ = [
    "ABORTED_ON_REQUEST",
    "DAEMON_DIED",
    "EXIT_DATABASE_LOST",
    "EXIT_DONE",
    "EXIT_GAVE_BACK",
    "EXIT_INTERNAL_ERROR",
    "EXIT_SPARE_NO_DATABASE",
    "MAX_ATTEMPTS",
    "NOTHING",
    "ORPHAN_MESSAGE",
    "SHUTDOWN_ABORT",
    "SHUTDOWN_REQUEUE",
    "ChildExit",
    "Disposition",
    "Ending",
    "Interruption",
    "child_ending",
    "interruption_ending",
    "orphan_ending",
    "time_limit_message",
    "unattended_ending",
]
