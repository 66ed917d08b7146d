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
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
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


def _literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1)."""
    return "'" + text.replace("'", "''") + "'"


class QueryLoginError(TapdError):
    """User queries cannot run: their session does not log in as the query role."""

    exit_code = 2  # a configuration problem, like ConfigError


#: How PostgreSQL says it refused a login (rather than being unreachable).
_REFUSED_LOGIN = re.compile(
    r"authentication failed|pg_hba\.conf|not permitted to log in|role .* does not exist"
    r"|password|permission denied for database",
    re.IGNORECASE,
)
#: Where the operator reads how the query login is set up.
QUERY_LOGIN_HELP = "see QUERY LOGIN in tapd(8)"


def connect_query_session(
    config: Config, *, application_name: str, primary: bool = False
) -> psycopg.Connection[Any]:
    """An autocommit connection for user queries, logged in as the query role
    (``Config.query_conninfo``; ``primary``: on ``dsn``'s server,
    ``Config.primary_query_conninfo``); ``QueryLoginError`` (one line) if the
    server refuses the login."""
    from tapd.errors import DatabaseUnavailable
    from tapd.store.connection import LinkTimeouts, connect

    conninfo = config.primary_query_conninfo if primary else config.query_conninfo
    try:
        conn = connect(
            conninfo, application_name=application_name, timeouts=LinkTimeouts.of(config)
        )
    except DatabaseUnavailable as exc:
        if not _REFUSED_LOGIN.search(exc.message):
            raise  # the server is down or unreachable: not a matter of the query role
        raise QueryLoginError(
            f"{exc.message} (user queries log in as the query role {config.query_role!r};"
            f" {QUERY_LOGIN_HELP})"
        ) from None
    try:
        require_query_login(conn, config.query_role)
    except BaseException:
        conn.close()
        raise
    return conn


def require_query_login(conn: psycopg.Connection[Any], query_role: str) -> None:
    """Refuse ``conn`` for user queries unless it is logged in as ``query_role``.

    A session logged in as another role (the job tables' owner, say) could
    leave the query role: ``RESET ROLE``, ``SET ROLE`` or ``set_config('role',
    ...)`` return to the session user. Logged in as the query role, there is
    nothing to return to. The server reports the session user at connection
    time, so the check costs no round trip.
    """
    who = conn.info.parameter_status("session_authorization")
    superuser = conn.info.parameter_status("is_superuser") == "on"
    if who == query_role and not superuser:
        return
    raise QueryLoginError(
        f"user queries must run in a session logged in as the query role {query_role!r},"
        f" not as {who!r}{' (a superuser)' if superuser else ''} (database.query_dsn;"
        f" {QUERY_LOGIN_HELP})"
    )


#: Planner settings of every user query. pgsphere's operators have constant selectivities,
#: so PostgreSQL takes a crossmatch of 1,000 positions with 20 million stars for millions
#: of rows and spent about a second inlining and optimising LLVM code for a query that runs
#: in 0.2 s; JIT's cheap part (compiled expressions) stays for long aggregates (issue 15).
PLANNER_SETTINGS = {"jit_inline_above_cost": "-1", "jit_optimize_above_cost": "-1"}


@functools.lru_cache(maxsize=256)
def query_settings_sql(milliseconds: int | None, search_path: str) -> str:
    """The transaction's settings (``SET LOCAL``: statement_timeout, search_path and
    ``PLANNER_SETTINGS``), as one statement."""
    regular = re.fullmatch(r"[a-z_][a-z0-9_$]*", search_path)
    path = search_path if regular or not search_path else _identifier(search_path)
    settings = {**PLANNER_SETTINGS, "search_path": path}
    if milliseconds:
        settings["statement_timeout"] = str(int(milliseconds))
    assignments = ", ".join(
        f"set_config({_literal(name)}, {_literal(value)}, true)" for name, value in settings.items()
    )
    return f"SELECT {assignments}"


#: How every query transaction begins: a user's query can never write.
BEGIN_READ_ONLY = "BEGIN READ ONLY"


@dataclass(frozen=True)
class DeferredStatements:
    """What ``deferred_query_transaction`` left for its caller to send before its
    first statement, in the same round trip (one statement per item)."""

    begin: tuple[str, ...] = ()


def _transaction_settings(timeout: float | None, search_path: str) -> str:
    milliseconds = max(1, int(timeout * 1000)) if timeout else None
    return query_settings_sql(milliseconds, search_path)


def _idle_autocommit(conn: psycopg.Connection[Any]) -> bool:
    return conn.autocommit and conn.info.transaction_status == pq.TransactionStatus.IDLE


@contextlib.contextmanager
def deferred_query_transaction(
    conn: psycopg.Connection[Any],
    *,
    query_role: str,
    timeout: float | None,
    search_path: str,
    keep_open: bool = False,
) -> Iterator[DeferredStatements]:
    """``query_transaction`` for a caller that can carry its statements: nothing
    is sent here; the caller must send ``begin`` ahead of its first statement
    (``tapd.formats.write_result(prelude=...)``), which saves a round trip.

    The transaction ends with ROLLBACK (a read-only transaction has nothing to
    commit, and ROLLBACK also undoes any setting the query changed, even for
    the session), or stays open with ``keep_open`` for a caller that closes
    the connection next (one round trip fewer).

    ``conn`` must be logged in as ``query_role`` (``require_query_login``).
    Connections that are not idle in autocommit mode get their settings in a
    (nested) ``conn.transaction()`` and empty statements.
    """
    require_query_login(conn, query_role)
    settings = _transaction_settings(timeout, search_path)
    if not _idle_autocommit(conn):
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute(settings)
            yield DeferredStatements()
            raise psycopg.Rollback()
        return
    try:
        yield DeferredStatements(begin=(BEGIN_READ_ONLY, settings))
    except BaseException:
        if not conn.closed and not conn.broken:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()  # nothing when the transaction never began
        raise
    if not keep_open:
        conn.rollback()


@contextlib.contextmanager
def query_transaction(
    conn: psycopg.Connection[Any],
    *,
    query_role: str,
    timeout: float | None,
    search_path: str,
) -> Iterator[None]:
    """A read-only transaction with ``statement_timeout`` (seconds; None or 0:
    none) and a bare search_path, on ``conn``, which must be logged in as
    ``query_role`` (``require_query_login``): the query role is never entered
    by ``SET ROLE``, so it cannot be left.

    On an idle autocommit connection BEGIN and the settings go in one round
    trip, and the transaction ends with ROLLBACK (see
    ``deferred_query_transaction``).
    """
    with deferred_query_transaction(
        conn, query_role=query_role, timeout=timeout, search_path=search_path
    ) as statements:
        if statements.begin:
            with conn.pipeline() if psycopg.Pipeline.is_supported() else contextlib.nullcontext():
                for statement in statements.begin:
                    conn.execute(statement)
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
    cancellation: Cancellation | None = None,
) -> tuple[Any, ...]:
    """The temporary tables of the request's UPLOADs (before the read-only transaction),
    in ``conn``'s own temporary schema: ``conn`` is the query role's session."""
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
            query_role=None,  # the session's own tables: no grant needed
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
    """Where a job's query runs: a connection logged in as the query role
    (``Config.query_conninfo``), never the one that writes the job's row."""

    conn: psycopg.Connection[Any]
    #: SQL statements to send before the job's first statement, in the same round
    #: trip (the daemon's child names its session after the job this way).
    prelude: tuple[str, ...] = ()
    #: The caller closes ``conn`` after the job: its read-only transaction need
    #: not be ended first (one round trip fewer).
    closes_after: bool = False
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
            for statement in prelude:  # before the uploads, which may take a while
                session.conn.execute(statement)
            prelude = ()
        uploads = load_request_uploads(session.conn, request, config, resolve_part)
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
                    config,
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
    config: Config,
    translation: Any,
    fmt: Any,
    staged: Path,
    request: TapRequest,
    infos: list[tuple[str, str]],
    timeout: float | None,
    prelude: tuple[str, ...],
    progress: Callable[[int, int], None] | None,
    expect: Callable[[int], None] | None,
) -> Any:
    """The job's query, run once into the attempt's temporary result file."""
    from tapd import formats

    with deferred_query_transaction(
        session.conn,
        query_role=config.query_role,
        timeout=timeout,
        search_path=query_search_path(session.conn),
        keep_open=session.closes_after,
    ) as transaction:
        if prelude and not transaction.begin:
            for statement in prelude:
                session.conn.execute(statement)
            prelude = ()
        begin: tuple[str, ...] = (*prelude, *transaction.begin)
        if expect is not None:
            # the estimate carries the transaction's start: one round trip more
            rows = estimated_rows(session.conn, translation.sql, translation.params, begin)
            expect(rows if request.maxrec is None else min(rows, request.maxrec))
            begin = ()
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
                progress=progress,
            )
        except OSError as exc:
            raise _ResultNotWritten(exc, staged) from None


def estimated_rows(
    conn: psycopg.Connection[Any], sql: str, params: Any, prelude: Sequence[str] = ()
) -> int:
    """The rows PostgreSQL's plan expects ``sql`` to return (EXPLAIN: planned,
    not run), in one round trip with ``prelude`` (the caller's statements, one
    per item). The EXPLAIN goes alone (``run_alone``): nothing can be stacked
    before or after ``sql``."""
    from tapd.formats.query import bind_parameters, run_alone

    explain = f"EXPLAIN (FORMAT JSON) {bind_parameters(conn, sql, params).rstrip().rstrip(';')}"
    cur = run_alone(conn, prelude, explain)
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
        query_role=config.query_role,
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

    ``conn`` is the caller's connection (idle, not in a transaction), logged in
    as ``query_role`` (default: the configured one; ``QueryLoginError``
    otherwise): ``connect_query_session``. The query runs read-only and leaves
    nothing behind on the session. ``timeout`` (default
    ``limits.sync_execution_duration``) covers the query and the writing: when
    it passes the query is cancelled and ``QueryTimeLimit`` raised. Raises
    ``TapdError`` subclasses for everything the user can fix. Uploaded tables
    are dropped afterwards. ``cancellation`` (the HTTP request's: client gone)
    stops URL fetches and the query at once (``RequestCancelled``).
    """
    from tapd import formats

    role = config.query_role if query_role is None else query_role
    require_query_login(conn, role)
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
    role: str,
    limit: float,
    fmt: Any,
    stop: Cancellation,
) -> SyncResult:
    from tapd import formats

    stop.check()
    uploads = load_request_uploads(conn, request, config, resolve_part or _no_inline_parts, stop)
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
                            interrupted=lambda: stop.cancelled or timed_out.is_set(),
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
    except formats.CopyInterrupted:
        stop.check()
        raise QueryTimeLimit(limit, "time limit of synchronous queries") from None
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
