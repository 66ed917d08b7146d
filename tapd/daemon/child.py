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
after fork). It names its sessions ``tapd job <id>``, runs its attempt of the
job (``tapd.runner.run_job``), records the ending and exits. SIGTERM or
SIGINT (an abort, from anyone) and SIGALRM (executionDuration, counted from
the claim) raise ``JobInterrupted`` wherever the child is, up to the moment
its outcome is decided: it cancels its query, and the job ends ABORTED with a
message naming the cause. If the daemon dies, the kernel sends SIGTERM
(PR_SET_PDEATHSIG) and the job ends in ERROR. SIGUSR1 (the daemon stopping
with ``shutdown_policy = "requeue"``) makes the child give the job back: it
records nothing and exits 77; the daemon requeues the attempt once the child
is gone. From the decided outcome on, those signals are blocked: the ending
(``JobStore.ending``) and the files it puts in place are recorded whole, or
not at all when the attempt no longer holds its job.

Every file the child writes into the job directory belongs to its attempt
(``tapd.store.jobdir.AttemptFiles``): it removes only its own temporaries, on
every way out.

Exit statuses and what the daemon does about them: ``tapd.daemon.endings``.
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
from tapd.daemon.endings import (
    EXIT_DATABASE_LOST,
    EXIT_DONE,
    EXIT_GAVE_BACK,
    EXIT_INTERNAL_ERROR,
    EXIT_SPARE_NO_DATABASE,
    Disposition,
    Interruption,
    interruption_ending,
)
from tapd.daemon.progress import ProgressSlot
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
    storage_failed_outcome,
)
from tapd.store import JobStore, job_application_name
from tapd.store.connection import (
    LinkTimeouts,
    connect,
    connect_direct,
    in_hot_standby,
    one_line,
)
from tapd.store.jobdir import UPLOADS_DIR, AttemptFiles, job_dir
from tapd.store.jobs import Attempt, ErrorSummary, Job
from tapd.store.phases import JobPhase

ABORT_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: The stopping daemon asks for the job back with this signal (it requeues it).
GIVE_BACK_SIGNAL = signal.SIGUSR1
#: Blocked from the moment the outcome is decided: nothing may interrupt the ending.
INTERRUPTING_SIGNALS = frozenset({*ABORT_SIGNALS, signal.SIGALRM, GIVE_BACK_SIGNAL})
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
    progress: ProgressSlot | None = None  # where the child tells how far its job got


#: Length prefix of an assignment on the job pipe.
_LENGTH = struct.Struct("!I")
#: An assignment larger than this goes without the job row (the child reads it):
#: the daemon's write must fit in the pipe's buffer, so it never blocks.
MAX_ASSIGNMENT_BYTES = 32 * 1024


@dataclass(frozen=True)
class Assignment:
    """A claimed job handed to a spare: a length-prefixed pickle on its pipe."""

    job_id: str
    attempt: int  # the attempt the claim started (the job's attempts counter)
    execution_duration: int
    deadline: float | None  # time.monotonic() by which the job must end
    job: Job | None = None  # the claimed row (None: too large for the pipe; read it)

    def encode(self) -> bytes:
        payload = pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)
        if len(payload) > MAX_ASSIGNMENT_BYTES and self.job is not None:
            smaller = Assignment(self.job_id, self.attempt, self.execution_duration, self.deadline)
            return smaller.encode()
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


class Interrupted(JobInterrupted):
    """``JobInterrupted`` saying why (``tapd.daemon.endings.Interruption``)."""

    def __init__(self, reason: Interruption) -> None:
        super().__init__(reason.value)
        self.reason = reason


class _Interrupts:
    """Turns the first abort, alarm or give-back signal into ``Interrupted``;
    later ones are ignored."""

    def __init__(self, assignment: Assignment, parent_pid: int) -> None:
        self.assignment = assignment
        self.parent_pid = parent_pid
        self.fired = False

    def install(self) -> None:
        for signum in ABORT_SIGNALS:
            signal.signal(signum, self._on_abort)
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.signal(GIVE_BACK_SIGNAL, self._on_give_back)
        if self.assignment.deadline is not None:
            remaining = max(0.001, self.assignment.deadline - time.monotonic())
            signal.setitimer(signal.ITIMER_REAL, remaining)

    def _raise(self, reason: Interruption) -> None:
        if self.fired:
            return
        self.fired = True
        raise Interrupted(reason)

    def _on_abort(self, signum: int, frame: FrameType | None) -> None:
        if os.getppid() != self.parent_pid:
            self._raise(Interruption.DAEMON_DIED)
        self._raise(Interruption.ABORT)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        self._raise(Interruption.TIME_LIMIT)

    def _on_give_back(self, signum: int, frame: FrameType | None) -> None:
        self._raise(Interruption.GIVE_BACK)


def _load_prctl() -> Any:
    """libc's prctl, looked up once in the daemon (each child would pay for it)."""
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL(None, use_errno=True).prctl
    return None


_prctl = _load_prctl()


def _detach_from_parent(parent_pid: int) -> None:
    """Undo the daemon's process state that must not act in the child."""
    signal.set_wakeup_fd(-1)
    for signum in (*ABORT_SIGNALS, GIVE_BACK_SIGNAL, signal.SIGCHLD):
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
    """The child's connections: one for the job row (the tables' owner), one
    logged in as the query role for the query (``Config.query_conninfo``)."""

    conn: psycopg.Connection[Any] | None
    query_conn: psycopg.Connection[Any] | None

    @classmethod
    def open(cls, config: Config, application_name: str) -> _Sessions:
        timeouts = LinkTimeouts.of(config)
        conn = connect_direct(config.dsn, application_name=application_name, timeouts=timeouts)
        try:
            query_conn = connect_direct(
                config.query_conninfo, application_name=application_name, timeouts=timeouts
            )
        except BaseException:
            conn.close()
            raise
        return cls(conn, query_conn)

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


def server_backend_pid(conn: psycopg.Connection[Any]) -> int:
    """The pid of the PostgreSQL backend serving ``conn``, asked of the server:
    through a pooler such as pgbouncer, libpq only knows the pooler's made-up one."""
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def _report_ready(spec: SpareSpec, backend_pid: int) -> bool:
    """Tell the daemon this spare can take a job, and the backend pid its query
    will run on (the claim records it); False if the daemon is gone."""
    try:
        os.write(spec.ready_pipe, f"{backend_pid}\n".encode())
    except OSError:
        return False
    finally:
        os.close(spec.ready_pipe)
    return True


def _rehearse(spec: SpareSpec, sessions: _Sessions) -> None:
    """Take a query and a job's ending through the whole path once, unseen, so
    the first real job does not pay for warming this process and its backends."""
    if spec.catalog is not None and sessions.query_conn is not None:
        rehearse(QuerySession(sessions.query_conn), spec.config, spec.catalog)
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
    try:
        assert sessions.query_conn is not None
        backend_pid = server_backend_pid(sessions.query_conn)
    except psycopg.Error as exc:
        sessions.close()
        _report_failure(spec, one_line(exc))
        return EXIT_SPARE_NO_DATABASE
    if not _report_ready(spec, backend_pid):
        sessions.close()
        return EXIT_DONE
    assignment = _wait_for_assignment(spec.job_pipe, sessions)
    if isinstance(assignment, int):
        sessions.close()
        return assignment
    return run_assignment(spec, assignment, sessions)


def run_assignment(spec: SpareSpec, assignment: Assignment, sessions: _Sessions) -> int:
    """Run the attempt the daemon handed over; returns the exit status."""
    config = spec.config
    job_id = assignment.job_id
    attempt = Attempt(job_id, assignment.attempt, spec.instance)
    files = AttemptFiles(job_dir(config.jobs_path, job_id), attempt.number)
    job: Job | None = None
    interrupts = _Interrupts(assignment, spec.parent_pid)
    started = time.monotonic()
    application_name = job_application_name(job_id)
    outcome: JobOutcome
    try:
        interrupts.install()
        assert sessions.conn is not None and sessions.query_conn is not None
        # The query session is named after the job (how its backend is found), with
        # its first statement. The job-row session is named too when the query runs
        # elsewhere (database.query_dsn, e.g. a standby): the job's session on the
        # primary is then that one.
        naming = _naming_statement(sessions.query_conn, application_name)
        if config.query_dsn:
            sessions.conn.execute(naming)
        job = assignment.job or _read_claimed_job(sessions.conn, spec, attempt)
        if job is None:
            log.info("job.not_started", job_id=job_id, reason="no longer this runner's")
            sessions.close()
            return EXIT_DONE
        outcome = run_job(
            job,
            _query_session(job, sessions, config, naming, application_name),
            config=config,
            catalog=spec.catalog,
            deadline=assignment.deadline,
            fetch_part=_upload_fetcher(job, sessions.conn, config),
            progress=spec.progress.report if spec.progress is not None else None,
            expect=spec.progress.expect if spec.progress is not None else None,
        )
        # The outcome is decided: from here nothing may interrupt recording it
        # (a signal that came just before is still caught below).
        signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTING_SIGNALS)
    except Interrupted as exc:
        signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTING_SIGNALS)
        _cancel_and_close(sessions.query_conn)
        _cancel_and_close(sessions.conn)
        sessions.conn = sessions.query_conn = None
        files.discard()
        ending = interruption_ending(exc.reason, assignment.execution_duration)
        if ending.disposition is Disposition.REQUEUE:
            log.info("job.given_back", job_id=job_id, attempt=attempt.number)
            return EXIT_GAVE_BACK
        assert ending.phase is not None
        query = job.parameter("QUERY") if job is not None else None
        outcome = interrupted_outcome(ending.phase, ending.message, query)
    except (DatabaseLost, DatabaseUnavailable, psycopg.OperationalError) as exc:
        signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTING_SIGNALS)
        files.discard()
        log.warning("job.database_lost", job_id=job_id, error=str(exc).strip())
        return EXIT_DATABASE_LOST

    signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        if sessions.query_conn is not None and sessions.query_conn is not sessions.conn:
            sessions.query_conn.close()
        conn = sessions.conn
        if conn is None or conn.closed or conn.broken:
            conn = connect(
                config.dsn, application_name=application_name, timeouts=LinkTimeouts.of(config)
            )
        store = JobStore(conn, config.schema)
        outcome, ended = end_attempt(store, attempt, outcome, files)
        conn.close()
    except (DatabaseUnavailable, psycopg.OperationalError) as exc:
        log.warning("job.database_lost", job_id=job_id, error=str(exc).strip())
        return EXIT_DATABASE_LOST
    finally:
        files.discard()
    _log_outcome(job_id, outcome, ended, started)
    return EXIT_DONE


def _query_session(
    job: Job, sessions: _Sessions, config: Config, naming: str, application_name: str
) -> QuerySession:
    """Where the job's query runs: the query connection (``database.query_dsn``,
    e.g. a standby), except for uploads when that is a standby, which refuses
    their temporary tables: those run on the primary, in a session of the query
    role opened for them. TAP_SCHEMA is read on the primary, which knows every
    published table first."""
    assert sessions.conn is not None and sessions.query_conn is not None
    if job.parameters.get("UPLOAD") and in_hot_standby(sessions.query_conn):
        primary = connect_direct(
            config.primary_query_conninfo,
            application_name=application_name,
            timeouts=LinkTimeouts.of(config),
        )
        sessions.query_conn.close()
        sessions.query_conn = primary
    return QuerySession(
        sessions.query_conn, prelude=(naming,), closes_after=True, catalog_conn=sessions.conn
    )


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


def end_attempt(
    store: JobStore, attempt: Attempt, outcome: JobOutcome, files: AttemptFiles
) -> tuple[JobOutcome, bool]:
    """Record the outcome of ``attempt`` and put its files in place, both only
    if the attempt still holds its job (the row stays locked meanwhile);
    returns the outcome recorded and whether it was. A result that cannot be
    put in place turns into the storage failure it is; an error document that
    cannot, into the same ending without it."""
    try:
        with store.ending(
            attempt, outcome.phase, results=outcome.results, error=outcome.error
        ) as ours:
            if ours:
                _publish(outcome, files)
        return outcome, ours
    except OSError as exc:  # rolled back: end again, without the file
        if outcome.staged is not None:
            outcome = storage_failed_outcome(attempt.job_id, exc, files.directory)
        else:
            error = outcome.error or ErrorSummary("The job failed.")
            log.warning(
                "job.error_document_failed",
                job_id=attempt.job_id,
                path=str(files.directory),
                error=exc.strerror or str(exc),
            )
            outcome = JobOutcome(
                outcome.phase,
                error=ErrorSummary(error.message, error.type, has_detail=False),
                sqlstate=outcome.sqlstate,
            )
        ended = store.finish_job(attempt, outcome.phase, error=outcome.error)
        return outcome, ended


def _publish(outcome: JobOutcome, files: AttemptFiles) -> None:
    """Put the attempt's result or error document in place (inside its ending)."""
    if outcome.staged is not None and outcome.results:
        files.publish_result(outcome.staged, outcome.results[0].filename)
    elif outcome.error_document is not None:
        files.publish_error_document(outcome.error_document)


def _naming_statement(conn: psycopg.Connection[Any], application_name: str) -> str:
    """SQL naming a session after its job: how its backends are found (to
    cancel or terminate them) from anywhere."""
    return (
        sql.SQL("SET application_name = {}").format(sql.Literal(application_name)).as_string(conn)
    )


def _read_claimed_job(
    conn: psycopg.Connection[Any], spec: SpareSpec, attempt: Attempt
) -> Job | None:
    """The claimed job's row, if it is still in this child's attempt (an
    assignment too large for the pipe comes without it)."""
    try:
        job = JobStore(conn, spec.config.schema).get_job(attempt.job_id)
    except TapdError:  # deleted meanwhile
        return None
    mine = (
        job.phase == JobPhase.EXECUTING and job.attempt == attempt and job.runner_pid == os.getpid()
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
