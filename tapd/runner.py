"""One TAP query, from parameters to result file: the taprunner of tapd.

parameters -> ``TapRequest`` -> uploads -> ADQL translation -> read-only query
under the query role -> result writer. ``run_job`` does it for an async job in
the daemon's forked child and says how the job ended; ``run_sync`` does the
same for TAP /sync and ``tapd query``, streaming to a file object. User text
never reaches the database untranslated: only the translator's SQL and its
bound parameters do.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import psycopg
from psycopg import pq

from tapd.cancellation import Cancellation
from tapd.config import Config
from tapd.errors import TapdError
from tapd.log import get_logger
from tapd.store.connection import in_hot_standby
from tapd.store.faults import Action, database_fault
from tapd.store.jobdir import (
    RESULT_ID,
    AttemptFiles,
    job_dir,
    make_job_dir,
    storage_failure_message,
)
from tapd.store.jobs import ErrorSummary, Job, ResultEntry
from tapd.store.phases import JobPhase
from tapd.tap_parameters import TapRequest, parse_tap_parameters
from tapd.watchdog import watchdog

log = get_logger()


class QueryTimeLimit(TapdError):
    """The query ran into its time limit (executionDuration or the sync limit)."""

    def __init__(self, seconds: float, what: str) -> None:
        super().__init__(
            f"The query exceeded the {what} of {seconds:g} s and was stopped;"
            " make it more selective or raise the limit."
        )
        self.seconds = seconds


class QueryFailed(TapdError):
    """PostgreSQL refused or failed the translated query (the message says why)."""

    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


#: Runs of a query cancelled by a conflict with recovery on a standby (SQLSTATE
#: 40001: the standby had to replay a change that conflicted with the query).
RECOVERY_CONFLICT_ATTEMPTS = 2


#: Bytes of a synchronous result held back while the query may still run again.
HELD_BYTES = 64 * 1024
#: Longest wait, seconds, for a standby's replay to get past the change that
#: conflicted with a query before that query runs again.
REPLAY_WAIT = 5.0


def let_replay_pass(conn: psycopg.Connection[Any], timeout: float = REPLAY_WAIT) -> None:
    """Wait until the standby behind ``conn`` has replayed past where it stood
    (the change a cancelled query was blocking): a query started again at once
    takes the table's lock again before replay does, and is cancelled again."""
    try:
        (start,) = conn.execute("SELECT pg_last_wal_replay_lsn()").fetchone() or (None,)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.05)
            (now,) = conn.execute("SELECT pg_last_wal_replay_lsn()").fetchone() or (None,)
            if now != start:
                return
    except psycopg.Error:
        if conn.broken:
            raise


class RecoveryConflict(QueryFailed):
    """Every run of the query was cancelled by a recovery conflict on a standby."""

    def __init__(self) -> None:
        super().__init__(
            f"The query was cancelled {RECOVERY_CONFLICT_ATTEMPTS} times by the standby server"
            " it ran on, which had to replay changes from the primary that conflicted with"
            " it (a recovery conflict, SQLSTATE 40001). Run it again later; if this recurs,"
            " the operators can let standbys wait longer for queries"
            " (max_standby_streaming_delay, hot_standby_feedback).",
            "40001",
        )


class DatabaseLost(Exception):
    """The connection to PostgreSQL broke while the job ran (not the user's fault)."""


class JobInterrupted(BaseException):
    """Raised from a signal handler in the runner's process: abort request or
    time limit. A BaseException, so no ``except Exception`` in a writer swallows it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class JobOutcome:
    """How an attempt of a job ended, for its ending (``JobStore.ending``) and the
    log. Its files are not in place yet: ``staged`` is the complete result under
    the attempt's temporary name, ``error_document`` the VOTable error document
    (``error.has_detail``); the ending puts them in place only if the attempt
    still holds its job (``tapd.store.jobdir.AttemptFiles``)."""

    phase: JobPhase
    results: tuple[ResultEntry, ...] = ()
    error: ErrorSummary | None = None
    rows: int | None = None
    sqlstate: str | None = None
    staged: Path | None = None
    error_document: bytes | None = None


@dataclass(frozen=True)
class SyncResult:
    rows: int
    overflow: bool
    mime_type: str


# -- the pieces both entry points share --------------------------------------


def tap_request(parameters: Any, config: Config) -> TapRequest:
    """Checked TAP parameters, with the configured MAXREC default and ceiling."""
    return parse_tap_parameters(
        parameters, maxrec_default=config.maxrec_default, maxrec_max=config.maxrec_max
    )


def resolve_format(name: str) -> Any:
    """The result format a RESPONSEFORMAT value names (``tapd.formats``)."""
    from tapd import formats

    return formats.resolve_format(name)


def query_infos(request: TapRequest) -> list[tuple[str, str]]:
    """INFOs echoed in VOTable results (VOT-04): the ADQL as submitted, TAP."""
    return [("QUERY", request.query), ("standardID", "ivo://ivoa.net/std/TAP")]


_search_path_cache: dict[str, str] = {}
_search_path_of: weakref.WeakKeyDictionary[psycopg.Connection[Any], str] = (
    weakref.WeakKeyDictionary()
)


def query_search_path(conn: psycopg.Connection[Any]) -> str:
    """The search_path user queries run with: only the schema holding pgsphere
    (pg_catalog is always searched); published tables are reached by qualified
    names from the translator. Looked up once per database."""
    path = _search_path_of.get(conn)
    if path is None:
        key = f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"
        if key not in _search_path_cache:
            with conn.transaction():  # leaves a non-autocommit connection idle, as it was
                row = conn.execute(
                    "SELECT n.nspname FROM pg_type t JOIN pg_namespace n"
                    " ON n.oid = t.typnamespace WHERE t.typname = 'spoint' LIMIT 1"
                ).fetchone()
            _search_path_cache[key] = row[0] if row else ""
        path = _search_path_of[conn] = _search_path_cache[key]
    return path


def _identifier(name: str) -> str:
    """A quoted SQL identifier (as psycopg's ``sql.Identifier`` and PostgreSQL quote them)."""
    return '"' + name.replace('"', '""') + '"'


#: Planner settings of every user query. pgsphere's operators have constant selectivities,
#: so PostgreSQL takes a crossmatch of 1,000 positions with 20 million stars for millions
#: of rows and spent about a second inlining and optimising LLVM code for a query that runs
#: in 0.2 s; JIT's cheap part (compiled expressions) stays for long aggregates (issue 15).
PLANNER_SETTINGS = (
    "SET LOCAL jit_inline_above_cost = -1",
    "SET LOCAL jit_optimize_above_cost = -1",
)


@functools.lru_cache(maxsize=256)
def query_settings_sql(query_role: str | None, milliseconds: int | None, search_path: str) -> str:
    """The SET statements of ``query_transaction`` (one string, built once per combination)."""
    statements = ["SET TRANSACTION READ ONLY", *PLANNER_SETTINGS]
    if query_role:
        statements.append(f"SET LOCAL ROLE {_identifier(query_role)}")
    if milliseconds:
        statements.append(f"SET LOCAL statement_timeout = {int(milliseconds)}")
    path = _identifier(search_path) if search_path else "''"
    statements.append(f"SET LOCAL search_path = {path}")
    return "; ".join(statements)


@dataclass(frozen=True)
class DeferredStatements:
    """What ``deferred_query_transaction`` left for its caller to send: ``begin``
    before the caller's first statement, ``end`` (optional) after its last one,
    each in the same round trip as the caller's own statement."""

    begin: str = ""
    end: str = ""


def _transaction_settings(query_role: str | None, timeout: float | None, search_path: str) -> str:
    milliseconds = max(1, int(timeout * 1000)) if timeout else None
    return query_settings_sql(query_role, milliseconds, search_path)


def _idle_autocommit(conn: psycopg.Connection[Any]) -> bool:
    return conn.autocommit and conn.info.transaction_status == pq.TransactionStatus.IDLE


@contextlib.contextmanager
def deferred_query_transaction(
    conn: psycopg.Connection[Any],
    *,
    query_role: str | None,
    timeout: float | None,
    search_path: str,
) -> Iterator[DeferredStatements]:
    """``query_transaction`` for a caller that can carry its statements: nothing
    is sent here; the caller must send ``begin`` ahead of its first statement
    (``tapd.formats.write_result(prelude=...)``) and may send ``end`` (COMMIT)
    with its last, which saves two of the four round trips of a small query.
    On exit a transaction still open is committed (rolled back on exception).

    Connections that are not idle in autocommit mode get their settings in a
    (nested) ``conn.transaction()`` and empty statements.
    """
    settings = _transaction_settings(query_role, timeout, search_path)
    if not _idle_autocommit(conn):
        with conn.transaction():
            conn.execute(settings)
            yield DeferredStatements()
        return
    try:
        yield DeferredStatements(begin=f"BEGIN; {settings}", end="COMMIT")
    except BaseException:
        if not conn.closed and not conn.broken:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()  # nothing when the transaction never began or ended
        raise
    conn.commit()  # nothing when ``end`` committed it


@contextlib.contextmanager
def query_transaction(
    conn: psycopg.Connection[Any],
    *,
    query_role: str | None,
    timeout: float | None,
    search_path: str,
) -> Iterator[None]:
    """A read-only transaction under ``query_role`` with ``statement_timeout``
    (seconds; None or 0: none) and a bare search_path.

    On an idle autocommit connection BEGIN and the settings go in one round
    trip (psycopg's ``transaction()`` sends BEGIN on its own), and the
    transaction ends with COMMIT, or ROLLBACK on any exception.
    """
    with deferred_query_transaction(
        conn, query_role=query_role, timeout=timeout, search_path=search_path
    ) as statements:
        if statements.begin:
            conn.execute(statements.begin)
        yield


def load_job_catalog(conn: psycopg.Connection[Any]) -> Any:
    """What the query may reach, from TAP_SCHEMA (``tapd.catalog.load_catalog``)."""
    from tapd.catalog import load_catalog

    return load_catalog(conn)


def translate_with_fresh_catalog(
    request: TapRequest,
    catalog: Any | None,
    config: Config,
    conn: psycopg.Connection[Any],
    uploads: tuple[Any, ...],
) -> Any:
    """Translate against ``catalog`` (the daemon's warm copy); if that fails, the
    copy may be stale (a table published since): translate again against
    TAP_SCHEMA as it is now."""
    if catalog is not None:
        try:
            return translate(request, catalog.with_uploads(uploads) if uploads else catalog, config)
        except TapdError:
            pass
    fresh = load_job_catalog(conn)
    return translate(request, fresh.with_uploads(uploads) if uploads else fresh, config)


def translate(request: TapRequest, catalog: Any, config: Config) -> Any:
    """The ADQL as PostgreSQL (``Translation``: sql, params, columns)."""
    from tapd.adql import translate_adql

    return translate_adql(request.query, catalog, limit=request.maxrec + 1, udfs=tuple(config.udfs))


def load_request_uploads(
    conn: psycopg.Connection[Any],
    request: TapRequest,
    config: Config,
    resolve_part: Callable[[str], Path],
    query_role: str | None,
    cancellation: Cancellation | None = None,
) -> tuple[Any, ...]:
    """The temporary tables of the request's UPLOADs (before the read-only transaction)."""
    if not request.uploads:
        return ()
    from tapd.uploads import UploadLimits, load_uploads

    limits = UploadLimits(
        max_bytes=config.upload_max_bytes,
        max_rows=config.upload_max_rows,
        url_allow=tuple(config.upload_url_allow),
        fetch_timeout=float(config.upload_fetch_timeout),
        max_cell_bytes=int(config.upload_max_cell_bytes),
        cancellation=cancellation,
    )
    with conn.transaction():
        return load_uploads(
            conn,
            request.uploads,
            resolve_part=resolve_part,
            limits=limits,
            query_role=query_role,
        )


#: SQLSTATEs of a query naming something the database does not have; on a
#: standby, most likely published on the primary but not yet replayed there.
MISSING_OBJECT_STATES = frozenset({"42P01", "42703", "42883", "3F000"})


def failure_message(exc: psycopg.Error, conn: psycopg.Connection[Any] | None = None) -> str:
    """A database error as a sentence for the user (primary message and hint);
    ``conn``: where the query ran (a standby's lag is worth saying)."""
    diag = exc.diag
    text = diag.message_primary or str(exc).strip().splitlines()[0]
    if diag.message_hint:
        text += f" ({diag.message_hint})"
    if exc.sqlstate in MISSING_OBJECT_STATES and conn is not None and in_hot_standby(conn):
        return (
            "The query ran on a standby server that does not have all of it yet: a table"
            " published on the primary is replayed on the standbys a moment later. Run the"
            f" query again shortly. (The standby said: {text})"
        )
    return f"The query failed in the database: {text}"


#: Seconds of leeway when telling whether a cancelled statement ran into its
#: time limit (statement_timeout is set in whole milliseconds, rounded down).
TIME_LIMIT_LEEWAY = 0.05


def time_is_up(deadline: float | None, now: float) -> bool:
    """Whether a statement cancelled at ``now`` (``time.monotonic()``) was
    stopped by its time limit ``deadline``; otherwise someone cancelled it."""
    return deadline is not None and now >= deadline - TIME_LIMIT_LEEWAY


def cancelled_message(exc: psycopg.Error) -> str:
    """SQLSTATE 57014 before the time limit: a cancel from outside tapd (an
    administrator's pg_cancel_backend, or the database's own statement_timeout),
    in the server's words."""
    said = exc.diag.message_primary or str(exc).strip().splitlines()[0]
    return (
        "The query was cancelled in the database before its time limit"
        f' (the server said: "{said}"), for example by an administrator; submit it again.'
    )


def error_document(message: str, infos: list[tuple[str, str]]) -> bytes:
    """The VOTable error document (QUERY_STATUS=ERROR) of a failed or aborted job."""
    import io

    from tapd import formats

    out = io.BytesIO()
    formats.write_error_document(out, message, infos=infos)
    return out.getvalue()


# -- async: one job in the daemon's child -------------------------------------


@dataclass
class QuerySession:
    """Where a job's query runs: the job's own connection (``SET ROLE``) or a
    second one from ``database.query_dsn``."""

    conn: psycopg.Connection[Any]
    role: str | None
    #: SQL to send before the job's first statement, in the same round trip
    #: (the daemon's child names its session after the job this way).
    prelude: str = ""
    #: Where TAP_SCHEMA is read when the daemon's copy lacks a table: the
    #: primary, which knows every published table first (None: ``conn``).
    catalog_conn: psycopg.Connection[Any] | None = None


class _ResultNotWritten(Exception):
    """The job directory refused the result (disk full, not writable, I/O error)."""

    def __init__(self, error: OSError, path: Path) -> None:
        super().__init__(str(error))
        self.error = error
        self.path = Path(error.filename) if error.filename else path


def run_job(
    job: Job,
    session: QuerySession,
    *,
    config: Config,
    catalog: Any | None = None,
    deadline: float | None = None,
    fetch_part: Callable[[str, Path], object] | None = None,
    progress: Callable[[int, int], None] | None = None,
    expect: Callable[[int], None] | None = None,
) -> JobOutcome:
    """Run the current attempt of ``job`` and say how it ended: the result is
    written under the attempt's temporary name (``JobOutcome.staged``), an
    error document is returned as bytes; neither is put in place here (see
    ``JobOutcome``). ``deadline`` (``time.monotonic()``) bounds the
    statement_timeout. ``fetch_part(part, path)`` brings an inline upload that
    is not in this host's job directory (stored by another host) to ``path``.
    ``progress(rows, bytes)`` follows the result as it is written; ``expect(rows)``
    is told PostgreSQL's estimate of the result's rows before the query runs.
    Raises ``JobInterrupted`` (from signal handlers) and ``DatabaseLost``;
    every other failure becomes an ERROR outcome."""
    files = attempt_files(config.jobs_path, job)
    infos: list[tuple[str, str]] = []
    started = time.monotonic()
    try:
        try:
            directory = make_job_dir(config.jobs_path, job.job_id)
        except OSError as exc:
            raise _ResultNotWritten(exc, files.directory) from None

        def resolve_part(part: str) -> Path:
            from tapd.uploads import part_path

            path = part_path(directory, part)
            if fetch_part is not None and not path.exists():
                path.parent.mkdir(mode=0o750, exist_ok=True)
                fetch_part(part, path)
            return path

        request = tap_request(job.parameters, config)
        infos = query_infos(request)
        fmt = resolve_format(request.format_name)
        prelude = session.prelude
        if request.uploads and prelude:
            session.conn.execute(prelude)  # before the uploads, which may take a while
            prelude = ""
        uploads = load_request_uploads(session.conn, request, config, resolve_part, session.role)
        translation = translate_with_fresh_catalog(
            request, catalog, config, session.catalog_conn or session.conn, uploads
        )
        from tapd import formats

        staged = files.temporary(formats.result_filename(fmt))
        for attempt in range(1, RECOVERY_CONFLICT_ATTEMPTS + 1):
            timeout = None if deadline is None else max(0.001, deadline - time.monotonic())
            try:
                written = _stage_job_result(
                    session,
                    translation,
                    fmt,
                    staged,
                    request,
                    infos,
                    timeout,
                    prelude,
                    progress,
                    expect,
                )
                break
            except psycopg.errors.SerializationFailure as exc:
                if session.conn.closed or session.conn.broken:
                    raise
                if attempt == RECOVERY_CONFLICT_ATTEMPTS:
                    raise RecoveryConflict() from exc
                log.info("job.query_retried", job_id=job.job_id, reason="recovery conflict")
                let_replay_pass(session.conn)
        entry = ResultEntry(
            result_id=RESULT_ID,
            filename=written.filename,
            mime_type=written.mime_type,
            size=written.size,
            rows=written.rows,
            overflow=written.overflow,
        )
        return JobOutcome(JobPhase.COMPLETED, results=(entry,), rows=written.rows, staged=staged)
    except psycopg.errors.QueryCanceled as exc:
        # Not an interrupt of ours (that raises JobInterrupted): statement_timeout,
        # or a cancel from outside (pg_cancel_backend).
        if time_is_up(deadline, time.monotonic()):
            limit = QueryTimeLimit(job.execution_duration, "executionDuration")
            return failed_outcome(limit.message, infos, exc.sqlstate, JobPhase.ABORTED)
        return failed_outcome(cancelled_message(exc), infos, exc.sqlstate)
    except psycopg.Error as exc:
        # The SQLSTATE class decides (tapd.store.faults): a lost connection or a
        # server going down is not the job's fault, and another attempt runs it.
        broken = session.conn.closed or session.conn.broken
        if database_fault(exc, connection_broken=broken).job_action is Action.REQUEUE:
            raise DatabaseLost(str(exc)) from exc
        return failed_outcome(failure_message(exc, session.conn), infos, exc.sqlstate)
    except _ResultNotWritten as exc:
        return storage_failed_outcome(job.job_id, exc.error, exc.path)
    except TapdError as exc:
        return failed_outcome(exc.message, infos, getattr(exc, "sqlstate", None))
    finally:
        log.debug("job.query_done", job_id=job.job_id, duration_ms=_ms_since(started))


def _stage_job_result(
    session: QuerySession,
    translation: Any,
    fmt: Any,
    staged: Path,
    request: TapRequest,
    infos: list[tuple[str, str]],
    timeout: float | None,
    prelude: str,
    progress: Callable[[int, int], None] | None,
    expect: Callable[[int], None] | None,
) -> Any:
    """The job's query, run once into the attempt's temporary result file."""
    from tapd import formats

    with deferred_query_transaction(
        session.conn,
        query_role=session.role,
        timeout=timeout,
        search_path=query_search_path(session.conn),
    ) as transaction:
        if prelude and not transaction.begin:
            session.conn.execute(prelude)
        begin = "; ".join(s for s in (prelude, transaction.begin) if s)
        if expect is not None:
            # the estimate carries the transaction's start: one round trip more
            rows = estimated_rows(session.conn, translation.sql, translation.params, begin)
            expect(rows if request.maxrec is None else min(rows, request.maxrec))
            begin = ""
        try:
            return formats.stage_result_file(
                session.conn,
                translation.sql,
                translation.params,
                translation.columns,
                fmt,
                staged,
                maxrec=request.maxrec,
                infos=infos,
                prelude=begin,
                epilogue=transaction.end,
                progress=progress,
            )
        except OSError as exc:
            raise _ResultNotWritten(exc, staged) from None


def estimated_rows(conn: psycopg.Connection[Any], sql: str, params: Any, prelude: str = "") -> int:
    """The rows PostgreSQL's plan expects ``sql`` to return (EXPLAIN: planned,
    not run), in one round trip with ``prelude``."""
    from tapd.formats.query import bind_parameters

    explain = f"EXPLAIN (FORMAT JSON) {bind_parameters(conn, sql, params).rstrip().rstrip(';')}"
    with conn.cursor() as cur:
        cur.execute(";\n".join(s for s in (prelude, explain) if s))  # one simple query
        while cur.nextset():  # EXPLAIN's is the last result
            pass
        row = cur.fetchone()
    assert row is not None
    return int(row[0][0]["Plan"]["Plan Rows"])


def attempt_files(jobs_dir: Path, job: Job) -> AttemptFiles:
    """The files of the job's current attempt (``job.attempts``, set by its claim)."""
    return AttemptFiles(job_dir(jobs_dir, job.job_id), job.attempts)


def failed_outcome(
    message: str,
    infos: list[tuple[str, str]],
    sqlstate: str | None = None,
    phase: JobPhase = JobPhase.ERROR,
) -> JobOutcome:
    """A job that did not complete, with its error document."""
    return JobOutcome(
        phase,
        error=ErrorSummary(message, has_detail=True),
        sqlstate=sqlstate,
        error_document=error_document(message, infos),
    )


def storage_failed_outcome(job_id: str, error: OSError, path: Path) -> JobOutcome:
    """ERROR saying the result could not be written (no error document: it would
    go to the same disk); the operator's one log event names the path."""
    log.error(
        "job.storage_failed",
        job_id=job_id,
        path=str(path),
        errno=errno.errorcode.get(error.errno or 0, str(error.errno)),
        error=error.strerror or str(error),
    )
    message = storage_failure_message(error)
    return JobOutcome(JobPhase.ERROR, error=ErrorSummary(message, has_detail=False))


def interrupted_outcome(phase: JobPhase, message: str, query: str | None) -> JobOutcome:
    """The ending of an interrupted job, with its error document."""
    return failed_outcome(message, [("QUERY", query)] if query else [], phase=phase)


def _ms_since(start: float) -> int:
    return round((time.monotonic() - start) * 1000)


#: A tiny query every spare child runs through the whole path before it gets a job.
REHEARSAL_QUERY = "SELECT TOP 1 schema_name FROM TAP_SCHEMA.schemas"


def rehearse(session: QuerySession, config: Config, catalog: Any) -> None:
    """Run ``REHEARSAL_QUERY`` and throw the result away. In a freshly forked
    child the first job pays for copying every shared page it writes to
    (reference counts, caches); a rehearsal pays that while the child waits."""
    import io

    from tapd import formats

    request = tap_request({"LANG": ["ADQL"], "QUERY": [REHEARSAL_QUERY]}, config)
    translation = translate(request, catalog, config)
    with deferred_query_transaction(  # the statements a job sends (run_job)
        session.conn,
        query_role=session.role,
        timeout=5.0,
        search_path=query_search_path(session.conn),
    ) as transaction:
        formats.write_result(
            session.conn,
            translation.sql,
            translation.params,
            translation.columns,
            resolve_format(request.format_name),
            io.BytesIO(),
            maxrec=1,
            infos=query_infos(request),
            prelude=transaction.begin,
            epilogue=transaction.end,
        )


# -- sync: TAP /sync and ``tapd query`` ------------------------------------------


def run_sync(
    conn: psycopg.Connection[Any],
    request: TapRequest,
    out: BinaryIO,
    *,
    config: Config,
    catalog: Any | None = None,
    resolve_part: Callable[[str], Path] | None = None,
    query_role: str | None = None,
    timeout: float | None = None,
    cancellation: Cancellation | None = None,
) -> SyncResult:
    """Run a checked TAP request on ``conn`` and write the result to ``out``.

    ``conn`` is the caller's connection (idle, not in a transaction); the query
    runs read-only as ``query_role`` (default: the configured one; pass "" when
    ``conn`` already logs in as the query role). ``timeout`` (default
    ``limits.sync_execution_duration``) covers the query and the writing: when
    it passes the query is cancelled and ``QueryTimeLimit`` raised. Raises
    ``TapdError`` subclasses for everything the user can fix. Uploaded tables
    are dropped afterwards. ``cancellation`` (the HTTP request's: client gone)
    stops URL fetches and the query at once (``RequestCancelled``).
    """
    from tapd import formats

    role = config.query_role if query_role is None else (query_role or None)
    limit = float(config.sync_execution_duration) if timeout is None else timeout
    fmt = formats.resolve_format(request.format_name)
    stop = cancellation or Cancellation()
    with stop.on_cancel(lambda: _cancel_quietly(conn, threading.Event())):
        return _run_sync(conn, request, out, config, catalog, resolve_part, role, limit, fmt, stop)


def _run_sync(
    conn: psycopg.Connection[Any],
    request: TapRequest,
    out: BinaryIO,
    config: Config,
    catalog: Any | None,
    resolve_part: Callable[[str], Path] | None,
    role: str | None,
    limit: float,
    fmt: Any,
    stop: Cancellation,
) -> SyncResult:
    from tapd import formats

    stop.check()
    uploads = load_request_uploads(
        conn, request, config, resolve_part or _no_inline_parts, role, stop
    )
    timed_out = threading.Event()
    deadline = time.monotonic() + limit if limit else None
    alarm = watchdog().arm(limit, lambda: _cancel_quietly(conn, timed_out)) if limit else None
    try:
        stop.check()
        query_catalog = catalog if catalog is not None else load_job_catalog(conn)
        if uploads:
            query_catalog = query_catalog.with_uploads(uploads)
        translation = translate(request, query_catalog, config)
        held = _HeldOutput(out)
        try:
            for attempt in range(1, RECOVERY_CONFLICT_ATTEMPTS + 1):
                try:
                    with deferred_query_transaction(
                        conn,
                        query_role=role,
                        timeout=limit or None,
                        search_path=query_search_path(conn),
                    ) as transaction:
                        summary = formats.write_result(
                            conn,
                            translation.sql,
                            translation.params,
                            translation.columns,
                            fmt,
                            cast(BinaryIO, held),
                            maxrec=request.maxrec,
                            infos=query_infos(request),
                            prelude=transaction.begin,
                            epilogue=transaction.end,
                        )
                    break
                except psycopg.errors.SerializationFailure:
                    # Again only while nothing of the first run has gone out.
                    if attempt == RECOVERY_CONFLICT_ATTEMPTS or held.released or conn.broken:
                        raise
                    held.discard()
                    log.info("sync.query_retried", reason="recovery conflict")
                    let_replay_pass(conn)
        finally:
            held.release()
        return SyncResult(rows=summary.rows, overflow=summary.overflow, mime_type=fmt.mime_type)
    except psycopg.errors.QueryCanceled as exc:
        stop.check()
        if timed_out.is_set() or time_is_up(deadline, time.monotonic()):
            raise QueryTimeLimit(limit, "time limit of synchronous queries") from None
        raise QueryFailed(cancelled_message(exc), exc.sqlstate) from None
    except psycopg.Error as exc:
        stop.check()
        if timed_out.is_set():
            raise QueryTimeLimit(limit, "time limit of synchronous queries") from None
        if isinstance(exc, psycopg.OperationalError) and (conn.closed or conn.broken):
            raise
        if isinstance(exc, psycopg.errors.SerializationFailure):
            raise RecoveryConflict() from None
        raise QueryFailed(failure_message(exc, conn), exc.sqlstate) from None
    finally:
        if alarm is not None:
            alarm.disarm()  # returns once no cancel can reach the connection any more
        if uploads and not conn.closed and not conn.broken:
            from tapd.uploads import drop_uploads

            with contextlib.suppress(psycopg.Error), conn.transaction():
                drop_uploads(conn, uploads)


class _HeldOutput:
    """A result's first bytes, held back (up to ``HELD_BYTES``, until the writer
    flushes) so that a query that must run again (a recovery conflict) starts
    over unseen; after that everything goes through to ``out``."""

    def __init__(self, out: BinaryIO, limit: int = HELD_BYTES) -> None:
        self.out = out
        self.limit = limit
        self.held = bytearray()
        self.released = False
        self.count = 0

    def write(self, data: Any) -> int:
        self.count += len(data)
        if self.released:
            return self.out.write(data)
        self.held += data
        if len(self.held) > self.limit:
            self.release()
        return len(data)

    def release(self) -> None:
        if not self.released:
            self.released = True
            if self.held:
                self.out.write(bytes(self.held))
                self.held.clear()

    def discard(self) -> None:
        """Forget what is held (nothing has gone out yet)."""
        self.held.clear()
        self.count = 0

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        """The writer wants its bytes on their way (a batch of a slow query): they go."""
        self.release()
        self.out.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.out, name)


def _no_inline_parts(part: str) -> Path:
    from tapd.uploads import UploadError

    raise UploadError(f"UPLOAD refers to param:{part}, but no such part was sent")


def _cancel_quietly(conn: psycopg.Connection[Any], flag: threading.Event) -> None:
    flag.set()
    with contextlib.suppress(Exception):
        conn.cancel()
