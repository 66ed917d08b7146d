"""The daemon's ending decisions as tables: facts about an attempt in, what is
recorded for it out (phase, message, requeue or nothing)."""

from __future__ import annotations

import signal

import pytest

from tapd.daemon.endings import (
    DAEMON_DIED,
    EXIT_DATABASE_LOST,
    EXIT_DONE,
    EXIT_GAVE_BACK,
    EXIT_INTERNAL_ERROR,
    EXIT_SPARE_NO_DATABASE,
    MAX_ATTEMPTS,
    ORPHAN_MESSAGE,
    ChildExit,
    Disposition,
    Ending,
    Interruption,
    child_ending,
    interruption_ending,
    orphan_ending,
    unattended_ending,
)
from tapd.store import JobPhase

KILL = signal.SIGKILL
SEGV = signal.SIGSEGV
ERROR, ABORTED, QUEUED = JobPhase.ERROR, JobPhase.ABORTED, JobPhase.QUEUED
NOTHING = (Disposition.NONE, None, "")


def row(ending: Ending) -> tuple[Disposition, JobPhase | None, str]:
    return ending.disposition, ending.phase, ending.message


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        # The child recorded its ending itself (or the job was not its own).
        (ChildExit(EXIT_DONE, None, 1), NOTHING),
        (ChildExit(EXIT_DONE, None, 1, giving_back=True), NOTHING),
        # Asked to give the job back (stopping with shutdown_policy = "requeue"):
        # whatever way it went, the attempt goes back to the queue once it is gone.
        (
            ChildExit(EXIT_GAVE_BACK, None, 1, giving_back=True),
            (Disposition.REQUEUE, QUEUED, "the runner daemon stopped; the job will run again"),
        ),
        (
            ChildExit(None, KILL, 2, giving_back=True, killed_unresponsive="stopping"),
            (Disposition.REQUEUE, QUEUED, "the runner daemon stopped; the job will run again"),
        ),
        (
            ChildExit(EXIT_DATABASE_LOST, None, MAX_ATTEMPTS, giving_back=True),
            (Disposition.REQUEUE, QUEUED, "the runner daemon stopped; the job will run again"),
        ),
        # The job was ended or taken elsewhere: nothing of this attempt's is recorded.
        (ChildExit(None, KILL, 1, still_ours=False), NOTHING),
        (ChildExit(EXIT_GAVE_BACK, None, 1, still_ours=False, giving_back=True), NOTHING),
        (ChildExit(EXIT_INTERNAL_ERROR, None, 1, still_ours=False), NOTHING),
        # Lost the database: run again, up to MAX_ATTEMPTS.
        (
            ChildExit(EXIT_DATABASE_LOST, None, 1),
            (Disposition.REQUEUE, QUEUED, "database connection lost"),
        ),
        (
            ChildExit(EXIT_SPARE_NO_DATABASE, None, MAX_ATTEMPTS - 1),
            (Disposition.REQUEUE, QUEUED, "database connection lost"),
        ),
        (
            ChildExit(EXIT_DATABASE_LOST, None, MAX_ATTEMPTS),
            (
                Disposition.FINISH,
                ERROR,
                f"The database connection was lost {MAX_ATTEMPTS} times while the job ran;"
                " submit it again later.",
            ),
        ),
        (
            ChildExit(EXIT_GAVE_BACK, None, 1),
            (Disposition.REQUEUE, QUEUED, "its runner process gave it back"),
        ),
        # Killed by the daemon.
        (
            ChildExit(None, KILL, 1, killed_at_deadline=30),
            (
                Disposition.FINISH,
                ABORTED,
                "The job exceeded its executionDuration of 30 s and was aborted;"
                " make the query more selective or ask for a longer executionDuration.",
            ),
        ),
        (
            ChildExit(None, KILL, 1, killed_unresponsive="the job became ABORTED"),
            (
                Disposition.FINISH,
                ERROR,
                "The runner process did not stop when asked (the job became ABORTED).",
            ),
        ),
        # Died on its own.
        (
            ChildExit(None, KILL, 1),
            (Disposition.FINISH, ERROR, "The runner process was killed by signal 9 (SIGKILL)."),
        ),
        (
            ChildExit(None, SEGV, 2),
            (Disposition.FINISH, ERROR, "The runner process was killed by signal 11 (SIGSEGV)."),
        ),
        (
            ChildExit(EXIT_INTERNAL_ERROR, None, 1),
            (Disposition.FINISH, ERROR, "The runner process failed (exit status 70)."),
        ),
    ],
)
def test_what_the_daemon_records_when_a_child_exits(
    facts: ChildExit, expected: tuple[Disposition, JobPhase | None, str]
) -> None:
    assert row(child_ending(facts)) == expected


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (Interruption.ABORT, (Disposition.FINISH, ABORTED, "The job was aborted on request.")),
        (
            Interruption.TIME_LIMIT,
            (
                Disposition.FINISH,
                ABORTED,
                "The job exceeded its executionDuration of 60 s and was aborted;"
                " make the query more selective or ask for a longer executionDuration.",
            ),
        ),
        (Interruption.DAEMON_DIED, (Disposition.FINISH, ERROR, DAEMON_DIED)),
        (
            Interruption.GIVE_BACK,
            (Disposition.REQUEUE, QUEUED, "the runner daemon stopped; the job will run again"),
        ),
    ],
)
def test_what_an_interrupted_child_records(
    reason: Interruption, expected: tuple[Disposition, JobPhase | None, str]
) -> None:
    assert row(interruption_ending(reason, 60)) == expected


@pytest.mark.parametrize(
    ("had_child", "attempt", "expected"),
    [
        (False, 1, (Disposition.REQUEUE, QUEUED, "claimed but never started")),
        (False, MAX_ATTEMPTS + 5, (Disposition.REQUEUE, QUEUED, "claimed but never started")),
        (
            True,
            1,
            (
                Disposition.REQUEUE,
                QUEUED,
                "its runner process ended without a recorded ending; the job runs again",
            ),
        ),
        (
            True,
            MAX_ATTEMPTS,
            (
                Disposition.FINISH,
                ERROR,
                "The runner process ended without recording how the job ended; submit it again.",
            ),
        ),
    ],
)
def test_an_attempt_without_child_or_ending_is_never_called_unstarted_if_it_ran(
    had_child: bool, attempt: int, expected: tuple[Disposition, JobPhase | None, str]
) -> None:
    """(issue 10 item 2)"""
    assert row(unattended_ending(had_child=had_child, attempt=attempt)) == expected


@pytest.mark.parametrize(
    ("had_child", "attempt", "expected"),
    [
        (
            False,
            1,
            (Disposition.REQUEUE, QUEUED, "its runner daemon is gone; the job had not started"),
        ),
        (False, MAX_ATTEMPTS, (Disposition.FINISH, ERROR, ORPHAN_MESSAGE)),
        (True, 1, (Disposition.FINISH, ERROR, ORPHAN_MESSAGE)),
    ],
)
def test_what_happens_to_the_attempt_of_a_daemon_that_is_gone(
    had_child: bool, attempt: int, expected: tuple[Disposition, JobPhase | None, str]
) -> None:
    assert row(orphan_ending(had_child=had_child, attempt=attempt)) == expected
