"""The forked child: one job on its own connections, then ``os._exit``.

A child is forked as a *spare* for a free slot before there is a job for it:
it connects to PostgreSQL, rehearses a tiny query when the daemon has no
backlog, tells the daemon its backend pid on its ready pipe and waits on its
job pipe. The daemon's claim statement records the spare's pid and backend pid
on the job it claims for it and writes the job down the pipe, so the child
starts the query at once (forking a warm interpreter and starting a PostgreSQL
backend cost more than a small job; so did a statement of its own to record
itself). Each child runs at most one job; the daemon forks a new spare
afterwards. A spare that cannot connect writes ``!`` and the reason (the
server's message) on its ready pipe instead, and exits 76.

The child never touches the daemon's connections (libpq shares their sockets
after fork). It names its sessions ``tapd job <id>``, runs the job
(``tapd.runner.run_job``), writes the final phase and exits. SIGTERM or
SIGINT (an abort, from anyone) and SIGALRM (executionDuration, counted from
the claim) raise ``JobInterrupted`` wherever the child is: it cancels its
query, and the job ends ABORTED with a message naming the cause. If the
daemon dies, the kernel sends SIGTERM (PR_SET_PDEATHSIG) and the job ends in
ERROR.

Exit status: 0 the job ended (or was no longer this child's to run, or the
spare was retired), 75 the database connection was lost during the job (the
daemon requeues it), 76 a spare could not reach the database (no job was
touched), anything else or a signal: the daemon ends the job in ERROR and
terminates its backends.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import selectors
import signal
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
from psycopg import sql

from tapd.config import Config
from tapd.errors import DatabaseUnavailable, TapdError
from tapd.log import get_logger
from tapd.peers import copy_remote_file, host_name, locate
from tapd.runner import (
    DatabaseLost,
    JobInterrupted,
    JobOutcome,
    QuerySession,
    interrupted_outcome,
    rehearse,
    run_job,
)
from tapd.store import JobStore, job_application_name
from tapd.store.connection import LinkTimeouts, connect, connect_direct, one_line
from tapd.store.jobdir import UPLOADS_DIR
from tapd.store.jobs import Job
from tapd.store.phases import JobPhase

EXIT_DONE = 0
EXIT_INTERNAL_ERROR = 70
EXIT_DATABASE_LOST = 75
EXIT_SPARE_NO_DATABASE = 76

ABORT_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1

log = get_logger()


@dataclass(frozen=True)
class SpareSpec:
    """Everything a spare child needs, handed over in memory by fork."""

    instance: str  # the daemon's instance id (claims are in its name)
    config: Config
    parent_pid: int
    job_pipe: int  # read end: one assignment, or end of file (retired)
    ready_pipe: int  # write end: the backend pid once connected (then closed)
    catalog: Any | None = None  # the daemon's warm copy of TAP_SCHEMA
    rehearse: bool = True  # False while the daemon has a backlog: the job comes at once


#: Length prefix of an assignment on the job pipe.
_LENGTH = struct.Struct("!I")
#: An assignment larger than this goes without the job row (the child reads it):
#: the daemon's write must fit in the pipe's buffer, so it never blocks.
MAX_ASSIGNMENT_BYTES = 32 * 1024


@dataclass(frozen=True)
class Assignment:
    """A claimed job handed to a spare: a length-prefixed pickle on its pipe."""

    job_id: str
    execution_duration: int
    deadline: float | None  # time.monotonic() by which the job must end
    job: Job | None = None  # the claimed row (None: too large for the pipe; read it)

    def encode(self) -> bytes:
        payload = pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)
        if len(payload) > MAX_ASSIGNMENT_BYTES and self.job is not None:
            return Assignment(self.job_id, self.execution_duration, self.deadline).encode()
        return _LENGTH.pack(len(payload)) + payload

    @classmethod
    def decode(cls, data: bytes) -> Assignment:
        assignment = pickle.loads(data[_LENGTH.size :])
        if not isinstance(assignment, Assignment):
            raise TypeError(f"not an assignment: {type(assignment).__name__}")
        return assignment

    @staticmethod
    def complete(data: bytes) -> bool:
        """Whether ``data`` holds a whole encoded assignment."""
        if len(data) < _LENGTH.size:
            return False
        (length,) = _LENGTH.unpack_from(data)
        return len(data) >= _LENGTH.size + int(length)


class _Interrupts:
    """Turns the first abort or alarm signal into ``JobInterrupted``; later ones are ignored."""

    def __init__(self, assignment: Assignment, parent_pid: int) -> None:
        self.assignment = assignment
        self.parent_pid = parent_pid
        self.fired = False

    def install(self) -> None:
        for signum in ABORT_SIGNALS:
            signal.signal(signum, self._on_abort)
        signal.signal(signal.SIGALRM, self._on_alarm)
        if self.assignment.deadline is not None:
            remaining = max(0.001, self.assignment.deadline - time.monotonic())
            signal.setitimer(signal.ITIMER_REAL, remaining)

    def _raise(self, message: str) -> None:
        if self.fired:
            return
        self.fired = True
        raise JobInterrupted(message)

    def _on_abort(self, signum: int, frame: FrameType | None) -> None:
        if os.getppid() != self.parent_pid:
            self._raise(DAEMON_DIED)
        self._raise("The job was aborted on request.")

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        seconds = self.assignment.execution_duration
        self._raise(
            f"The job exceeded its executionDuration of {seconds} s and was aborted;"
            " make the query more selective or ask for a longer executionDuration."
        )


DAEMON_DIED = "The runner daemon stopped unexpectedly; the job was stopped."


def _load_prctl() -> Any:
    """libc's prctl, looked up once in the daemon (each child would pay for it)."""
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(None, use_errno=True).prctl
    return None


_prctl = _load_prctl()


def _detach_from_parent(parent_pid: int) -> None:
    """Undo the daemon's process state that must not act in the child."""
    signal.set_wakeup_fd(-1)
    for signum in (*ABORT_SIGNALS, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)  # an idle spare just ends
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # psycopg warns when an interrupted transaction cannot be rolled back; the
    # child closes that connection anyway.
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    # Own process group: a Ctrl-C meant for the daemon does not abort every job.
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the daemon died before prctl took effect
        os._exit(EXIT_DONE)


def _cancel_and_close(conn: psycopg.Connection[Any] | None) -> None:
    """Stop the backend's running statement (if any) and drop the connection."""
    if conn is None or conn.closed:
        return
    with contextlib.suppress(Exception):
        conn.pgconn.get_cancel().cancel()
    with contextlib.suppress(Exception):
        conn.close()


@dataclass
class _Sessions:
    """The child's connections: one for the job row, maybe a second for the query."""

    conn: psycopg.Connection[Any] | None
    query_conn: psycopg.Connection[Any] | None
    role: str | None

    @classmethod
    def open(cls, config: Config, application_name: str) -> _Sessions:
        timeouts = LinkTimeouts.of(config)
        conn = connect_direct(config.dsn, application_name=application_name, timeouts=timeouts)
        if not config.query_dsn:
            return cls(conn, conn, config.query_role)
        try:
            query_conn = connect_direct(
                config.query_dsn, application_name=application_name, timeouts=timeouts
            )
        except BaseException:
            conn.close()
            raise
        return cls(conn, query_conn, None)

    def sockets(self) -> list[int]:
        return [c.fileno() for c in {id(c): c for c in (self.conn, self.query_conn) if c}.values()]

    def close(self) -> None:
        for conn in (self.query_conn, self.conn):
            if conn is not None and not conn.closed:
                with contextlib.suppress(Exception):
                    conn.close()


def _wait_for_assignment(job_pipe: int, sessions: _Sessions) -> Assignment | int:
    """Block until the daemon hands over a job; else the exit status (retired:
    end of file; the database closed an idle connection: EXIT_SPARE_NO_DATABASE)."""
    selector = selectors.DefaultSelector()
    selector.register(job_pipe, selectors.EVENT_READ, "job")
    for fd in sessions.sockets():
        selector.register(fd, selectors.EVENT_READ, "database")
    data = b""
    while True:
        ready = {key.data for key, _ in selector.select()}
        # A job that arrived counts even if the connection broke at the same
        # time: the job then fails as a lost database (and is requeued).
        if "job" in ready:
            chunk = os.read(job_pipe, 65536)
            if not chunk:
                return EXIT_DONE
            data += chunk
            if Assignment.complete(data):
                return Assignment.decode(data)
        elif "database" in ready:
            return EXIT_SPARE_NO_DATABASE  # idle: anything arriving is a goodbye


#: Longest failure message sent on the ready pipe: one write of at most
#: PIPE_BUF bytes arrives whole.
MAX_FAILURE_BYTES = 2048


def _report_failure(spec: SpareSpec, message: str) -> None:
    """Tell the daemon why this spare cannot take a job (the server's words):
    ``!`` and the message on the ready pipe instead of a backend pid."""
    data = b"!" + message.encode(errors="replace")[:MAX_FAILURE_BYTES] + b"\n"
    with contextlib.suppress(OSError):
        os.write(spec.ready_pipe, data)
    with contextlib.suppress(OSError):
        os.close(spec.ready_pipe)


def _report_ready(spec: SpareSpec, sessions: _Sessions) -> bool:
    """Tell the daemon this spare can take a job, and the backend pid its query
    will run on (the claim records it); False if the daemon is gone."""
    assert sessions.query_conn is not None
    try:
        os.write(spec.ready_pipe, f"{sessions.query_conn.info.backend_pid}\n".encode())
    except OSError:
        return False
    finally:
        os.close(spec.ready_pipe)
    return True


def _rehearse(spec: SpareSpec, sessions: _Sessions) -> None:
    """Take a query and a job's ending through the whole path once, unseen, so
    the first real job does not pay for warming this process and its backends."""
    if spec.catalog is not None and sessions.query_conn is not None:
        rehearse(QuerySession(sessions.query_conn, sessions.role), spec.config, spec.catalog)
    if sessions.conn is not None:
        JobStore(sessions.conn, spec.config.schema).rehearse_job(spec.instance)


def spare_main(spec: SpareSpec) -> int:
    """Connect, rehearse, report ready, wait for a job, run it; returns the exit status."""
    _detach_from_parent(spec.parent_pid)
    try:
        sessions = _Sessions.open(spec.config, f"tapd spare {os.getpid()}")
    except DatabaseUnavailable as exc:
        _report_failure(spec, exc.message)
        return EXIT_SPARE_NO_DATABASE
    if spec.rehearse:
        try:
            _rehearse(spec, sessions)
        except psycopg.OperationalError as exc:
            sessions.close()
            _report_failure(spec, one_line(exc))
            return EXIT_SPARE_NO_DATABASE
        except Exception as exc:  # only a warm-up: a job would meet the same problem
            log.debug("daemon.rehearsal_failed", error=repr(exc))
    if not _report_ready(spec, sessions):
        sessions.close()
        return EXIT_DONE
    assignment = _wait_for_assignment(spec.job_pipe, sessions)
    if isinstance(assignment, int):
        sessions.close()
        return assignment
    return run_assignment(spec, assignment, sessions)


def run_assignment(spec: SpareSpec, assignment: Assignment, sessions: _Sessions) -> int:
    """Run the job the daemon handed over; returns the exit status."""
    config = spec.config
    job_id = assignment.job_id
    job: Job | None = None
    interrupts = _Interrupts(assignment, spec.parent_pid)
    started = time.monotonic()
    application_name = job_application_name(job_id)
    outcome: JobOutcome
    try:
        interrupts.install()
        assert sessions.conn is not None and sessions.query_conn is not None
        naming = _naming_statement(sessions.query_conn, application_name)
        if sessions.conn is not sessions.query_conn:
            sessions.conn.execute(naming)  # the query session's rides with its first statement
        job = assignment.job or _read_claimed_job(sessions.conn, spec, job_id)
        if job is None:
            log.info("job.not_started", job_id=job_id, reason="no longer this runner's")
            sessions.close()
            return EXIT_DONE
        outcome = run_job(
            job,
            QuerySession(sessions.query_conn, sessions.role, prelude=naming),
            config=config,
            catalog=spec.catalog,
            deadline=assignment.deadline,
            fetch_part=_upload_fetcher(job, sessions.conn, config),
        )
    except JobInterrupted as exc:
        _cancel_and_close(sessions.query_conn)
        _cancel_and_close(sessions.conn)
        sessions.conn = sessions.query_conn = None
        query = job.parameter("QUERY") if job is not None else None
        outcome = interrupted_outcome(job_id, query, exc.message, config)
        if exc.message == DAEMON_DIED:
            outcome = JobOutcome(JobPhase.ERROR, error=outcome.error)
    except (DatabaseLost, DatabaseUnavailable, psycopg.OperationalError) as exc:
        log.warning("job.database_lost", job_id=job_id, error=str(exc).strip())
        return EXIT_DATABASE_LOST

    # From here on the outcome is decided: nothing may interrupt writing it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {*ABORT_SIGNALS, signal.SIGALRM})
    signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        if sessions.query_conn is not None and sessions.query_conn is not sessions.conn:
            sessions.query_conn.close()
        conn = sessions.conn
        if conn is None or conn.closed or conn.broken:
            conn = connect(
                config.dsn, application_name=application_name, timeouts=LinkTimeouts.of(config)
            )
        ended = JobStore(conn, config.schema).finish_job(
            job_id,
            spec.instance,
            outcome.phase,
            results=outcome.results,
            error=outcome.error,
        )
        conn.close()
    except (DatabaseUnavailable, psycopg.OperationalError) as exc:
        log.warning("job.database_lost", job_id=job_id, error=str(exc).strip())
        return EXIT_DATABASE_LOST
    _log_outcome(job_id, outcome, ended, started)
    return EXIT_DONE


def _upload_fetcher(
    job: Job, conn: psycopg.Connection[Any], config: Config
) -> Callable[[str, Path], bool] | None:
    """How to bring the job's inline uploads here when another host received them."""
    host = job.upload_host
    if host is None or host == host_name():
        return None
    what = f"an uploaded table of job {job.job_id}"

    def fetch(part: str, path: Path) -> bool:
        address = locate(JobStore(conn, config.schema), host, what)
        return copy_remote_file(
            address,
            job.job_id,
            f"{UPLOADS_DIR}/{part}",
            path,
            timeout=float(config.internal_timeout),
            what=what,
        )

    return fetch


def _naming_statement(conn: psycopg.Connection[Any], application_name: str) -> str:
    """SQL naming a session after its job: how its backends are found (to
    cancel or terminate them) from anywhere."""
    return (
        sql.SQL("SET application_name = {}").format(sql.Literal(application_name)).as_string(conn)
    )


def _read_claimed_job(conn: psycopg.Connection[Any], spec: SpareSpec, job_id: str) -> Job | None:
    """The claimed job's row, if it is still this child's to run (an assignment
    too large for the pipe comes without it)."""
    try:
        job = JobStore(conn, spec.config.schema).get_job(job_id)
    except TapdError:  # deleted meanwhile
        return None
    mine = (
        job.phase == JobPhase.EXECUTING
        and job.runner_instance == spec.instance
        and job.runner_pid == os.getpid()
    )
    return job if mine else None


def _log_outcome(job_id: str, outcome: JobOutcome, ended: bool, started: float) -> None:
    duration_ms = round((time.monotonic() - started) * 1000)
    if not ended:
        log.info(
            "job.end_ignored",
            job_id=job_id,
            phase=outcome.phase.value,
            runner_pid=os.getpid(),
            reason="the job was ended by someone else first",
        )
        return
    fields: dict[str, Any] = {
        "job_id": job_id,
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


def run_spare(spec: SpareSpec) -> None:
    """The child's whole life after fork: never returns."""
    status = EXIT_INTERNAL_ERROR
    try:
        status = spare_main(spec)
    except BaseException as exc:  # a bug: say so, and let the daemon end the job
        with contextlib.suppress(BaseException):
            log.error("job.runner_crashed", error=repr(exc), exc_info=True)
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)
