"""The forked child: one job on its own connections, then ``os._exit``.

The child never touches the daemon's connections (libpq shares their sockets
after fork). It records its pid and backend pid on the claimed job, runs the
job (``tapd.runner.run_job``), writes the final phase and exits. SIGTERM or
SIGINT (an abort, from anyone) and SIGALRM (executionDuration, counted from
the claim) raise ``JobInterrupted`` wherever the child is: it cancels its
query, and the job ends ABORTED with a message naming the cause. If the daemon
dies, the kernel sends SIGTERM (PR_SET_PDEATHSIG) and the job ends in ERROR.

Exit status: 0 the job ended (or was no longer this child's to run), 75 the
database connection was lost (the daemon requeues the job), anything else or a
signal: the daemon ends the job in ERROR and terminates its backends.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any

import psycopg

from tapd.config import Config
from tapd.errors import DatabaseUnavailable
from tapd.log import get_logger
from tapd.runner import (
    DatabaseLost,
    JobInterrupted,
    JobOutcome,
    QuerySession,
    interrupted_outcome,
    run_job,
)
from tapd.store import JobStore, job_application_name
from tapd.store.connection import connect
from tapd.store.jobs import ErrorSummary, Job
from tapd.store.phases import JobPhase

EXIT_DONE = 0
EXIT_INTERNAL_ERROR = 70
EXIT_DATABASE_LOST = 75

ABORT_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1

log = get_logger()


@dataclass(frozen=True)
class ChildSpec:
    """Everything the child needs, handed over in memory by fork."""

    job: Job
    instance: str  # the daemon's instance id (the claim is in its name)
    config: Config
    parent_pid: int
    deadline: float | None  # time.monotonic() by which the job must end
    catalog: Any | None = None  # the daemon's warm copy of TAP_SCHEMA


class _Interrupts:
    """Turns the first abort or alarm signal into ``JobInterrupted``; later ones are ignored."""

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.fired = False

    def install(self) -> None:
        for signum in ABORT_SIGNALS:
            signal.signal(signum, self._on_abort)
        signal.signal(signal.SIGALRM, self._on_alarm)
        if self.spec.deadline is not None:
            remaining = max(0.001, self.spec.deadline - time.monotonic())
            signal.setitimer(signal.ITIMER_REAL, remaining)

    def _raise(self, message: str) -> None:
        if self.fired:
            return
        self.fired = True
        raise JobInterrupted(message)

    def _on_abort(self, signum: int, frame: FrameType | None) -> None:
        if os.getppid() != self.spec.parent_pid:
            self._raise("The runner daemon stopped unexpectedly; the job was stopped.")
        self._raise("The job was aborted on request.")

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        seconds = self.spec.job.execution_duration
        self._raise(
            f"The job exceeded its executionDuration of {seconds} s and was aborted;"
            " make the query more selective or ask for a longer executionDuration."
        )


def _detach_from_parent(parent_pid: int) -> None:
    """Undo the daemon's process state that must not act in the child."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # Own process group: a Ctrl-C meant for the daemon does not abort every job.
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the daemon died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _cancel_and_close(conn: psycopg.Connection[Any] | None) -> None:
    """Stop the backend's running statement (if any) and drop the connection."""
    if conn is None or conn.closed:
        return
    with contextlib.suppress(Exception):
        conn.pgconn.get_cancel().cancel()
    with contextlib.suppress(Exception):
        conn.close()


def child_main(spec: ChildSpec) -> int:
    """Run the claimed job; returns the exit status."""
    _detach_from_parent(spec.parent_pid)
    interrupts = _Interrupts(spec)
    config = spec.config
    job = spec.job
    started = time.monotonic()
    conn: psycopg.Connection[Any] | None = None
    query_conn: psycopg.Connection[Any] | None = None
    application_name = job_application_name(job.job_id)
    outcome: JobOutcome
    try:
        interrupts.install()
        conn = connect(config.dsn, application_name=application_name)
        query_conn = conn
        role: str | None = config.query_role
        if config.query_dsn:
            query_conn = connect(config.query_dsn, application_name=application_name)
            role = None
        store = JobStore(conn, config.schema)
        current = store.start_job(
            job.job_id, spec.instance, os.getpid(), query_conn.info.backend_pid
        )
        if current is None:
            log.info("job.not_started", job_id=job.job_id, reason="no longer this runner's")
            return EXIT_DONE
        job = current
        outcome = run_job(
            job,
            QuerySession(query_conn, role),
            config=config,
            catalog=spec.catalog,
            deadline=spec.deadline,
        )
    except JobInterrupted as exc:
        _cancel_and_close(query_conn)
        _cancel_and_close(conn)
        conn = query_conn = None
        outcome = interrupted_outcome(job, exc.message, config)
        if "stopped unexpectedly" in exc.message:
            outcome = JobOutcome(JobPhase.ERROR, error=outcome.error)
    except (DatabaseLost, DatabaseUnavailable, psycopg.OperationalError) as exc:
        log.warning("job.database_lost", job_id=job.job_id, error=str(exc).strip())
        return EXIT_DATABASE_LOST

    # From here on the outcome is decided: nothing may interrupt writing it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {*ABORT_SIGNALS, signal.SIGALRM})
    signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        if query_conn is not None and query_conn is not conn:
            query_conn.close()
        if conn is None or conn.closed or conn.broken:
            conn = connect(config.dsn, application_name=application_name)
        ended = JobStore(conn, config.schema).finish_job(
            job.job_id,
            spec.instance,
            outcome.phase,
            results=outcome.results,
            error=outcome.error,
        )
        conn.close()
    except (DatabaseUnavailable, psycopg.OperationalError) as exc:
        log.warning("job.database_lost", job_id=job.job_id, error=str(exc).strip())
        return EXIT_DATABASE_LOST
    _log_outcome(job, outcome, ended, started)
    return EXIT_DONE


def _log_outcome(job: Job, outcome: JobOutcome, ended: bool, started: float) -> None:
    duration_ms = round((time.monotonic() - started) * 1000)
    if not ended:
        log.info(
            "job.end_ignored",
            job_id=job.job_id,
            phase=outcome.phase.value,
            runner_pid=os.getpid(),
            reason="the job was ended by someone else first",
        )
        return
    fields: dict[str, Any] = {
        "job_id": job.job_id,
        "phase": outcome.phase.value,
        "runner_pid": os.getpid(),
        "duration_ms": duration_ms,
    }
    if outcome.rows is not None:
        fields["rows"] = outcome.rows
    if outcome.sqlstate:
        fields["sqlstate"] = outcome.sqlstate
    if outcome.error is not None:
        fields["error"] = outcome.error.message
    if outcome.phase == JobPhase.COMPLETED:
        log.info("job.phase", **fields)
    else:
        log.warning("job.phase", **fields)


def run_child(spec: ChildSpec) -> None:
    """The child's whole life after fork: never returns."""
    status = EXIT_INTERNAL_ERROR
    try:
        status = child_main(spec)
    except BaseException as exc:  # a bug: say so, and let the daemon end the job
        with contextlib.suppress(BaseException):
            log.error("job.runner_crashed", job_id=spec.job.job_id, error=repr(exc), exc_info=True)
    finally:
        with contextlib.suppress(BaseException):
            import sys

            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


__all__ = ["ChildSpec", "ErrorSummary", "run_child"]
