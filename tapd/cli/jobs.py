"""``tapd initdb | run | submit | jobs | show | abort | result | query``: the job
store, the runner daemon and the runner, from the command line."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from tapd.cli.context import cli_logger, load_cli_config, store_connection
from tapd.errors import TapdError
from tapd.store.jobdir import is_valid_job_id, job_dir
from tapd.store.phases import FINAL_PHASES, JobPhase
from tapd.store.policy import destruction_for, execution_duration_for

if TYPE_CHECKING:  # _SubParsersAction is not subscriptable at run time
    from tapd.config import Config
    from tapd.store import Job, JobStore

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def register(subparsers: Subparsers) -> None:
    """Add this module's sub-commands."""
    p = subparsers.add_parser(
        "initdb", help="create or upgrade tapd's tables (idempotent), TAP_SCHEMA and pgsphere"
    )
    p.add_argument(
        "--owner",
        metavar="ROLE",
        help="as a PostgreSQL superuser: install pgsphere, then create everything else owned"
        " by ROLE (the role the services log in as) and let ROLE use the query role",
    )
    p.set_defaults(handler=_initdb)

    p = subparsers.add_parser("run", help="run the runner daemon (the systemd service)")
    p.set_defaults(handler=_run)

    p = subparsers.add_parser("submit", help="create an async job; prints its id")
    p.add_argument("query", help="the ADQL query")
    _format_options(p)
    p.add_argument("--run", action="store_true", help="queue the job at once (PHASE=RUN)")
    p.add_argument("--run-id", help="RUNID: a label of your own")
    p.add_argument(
        "--execution-duration", type=int, metavar="SECONDS", help="time limit of the job"
    )
    p.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other TAP parameter (repeatable)",
    )
    p.set_defaults(handler=_submit)

    p = subparsers.add_parser("jobs", help="list jobs, newest first")
    p.add_argument("--phase", action="append", type=str.upper, choices=[x.value for x in JobPhase])
    p.add_argument("--last", type=int, metavar="N", help="only the N newest")
    _account_options(p, "only the jobs of")
    p.set_defaults(handler=_jobs)

    p = subparsers.add_parser("show", help="show one job")
    p.add_argument("job_id")
    p.set_defaults(handler=_show)

    p = subparsers.add_parser(
        "abort",
        help="abort a job, or every unfinished job of an owner (stops those running)",
        description="tapd abort JOBID, or tapd abort --owner NAME (or --address ADDRESS)"
        " --yes: without --yes it only says how many jobs it would abort.",
    )
    p.add_argument("job_id", nargs="?")
    _account_options(p, "every unfinished job of")
    p.add_argument("--yes", action="store_true", help="really abort an owner's jobs")
    p.set_defaults(handler=_abort)

    p = subparsers.add_parser("result", help="write a completed job's result")
    p.add_argument("job_id")
    p.add_argument("-o", "--output", metavar="FILE", help="file to write (default: stdout)")
    p.set_defaults(handler=_result)

    p = subparsers.add_parser(
        "query", help="run a query synchronously through the runner and write its result"
    )
    p.add_argument("query", help="the ADQL query")
    _format_options(p)
    p.add_argument("-o", "--output", metavar="FILE", help="file to write (default: stdout)")
    p.set_defaults(handler=_query)


def _account_options(parser: argparse.ArgumentParser, what: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--owner", metavar="NAME", help=f"{what} this owner")
    group.add_argument("--address", metavar="ADDRESS", help=f"{what} this anonymous client address")


def _account_filter(args: argparse.Namespace) -> dict[str, Any]:
    """``list_jobs`` keyword arguments for ``--owner`` / ``--address`` (none: every job)."""
    if args.owner is not None:
        return {"owner": args.owner}
    if args.address is not None:
        return {"owner": None, "client_address": args.address}
    return {}


def _account_name(args: argparse.Namespace) -> str:
    return args.owner if args.owner is not None else f"anonymous client {args.address}"


def _format_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f", "--format", help="RESPONSEFORMAT, e.g. votable, csv, fits (default votable)"
    )
    parser.add_argument("--maxrec", type=int, metavar="N", help="at most N rows (MAXREC)")


def _tap_parameters(args: argparse.Namespace) -> list[tuple[str, str]]:
    params = [("LANG", "ADQL"), ("QUERY", args.query)]
    if args.format:
        params.append(("RESPONSEFORMAT", args.format))
    if args.maxrec is not None:
        params.append(("MAXREC", str(args.maxrec)))
    for item in getattr(args, "param", []):
        name, equals, value = item.partition("=")
        if not equals or not name.strip():
            raise TapdError(f"--param must be NAME=VALUE, got {item!r}")
        params.append((name.strip(), value))
    if getattr(args, "run_id", None):
        params.append(("RUNID", args.run_id))
    return params


@contextlib.contextmanager
def _store(config: Config) -> Iterator[JobStore]:
    from tapd.store import JobStore, require_current_schema

    with store_connection(config) as conn:
        require_current_schema(conn, config.schema)
        yield JobStore(conn, config.schema)


def _checked_id(job_id: str) -> str:
    if not is_valid_job_id(job_id):
        raise TapdError(f"no job with id {job_id!r}")
    return job_id


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[BinaryIO]:
    if path is None or path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        out = open(path, "wb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise TapdError(f"cannot write {path}: {exc.strerror}") from None
    with out:
        yield out


# -- initdb and run ------------------------------------------------------------


def _initdb(args: argparse.Namespace) -> int:
    import psycopg

    from tapd.pgsphere import PgSphereMissing, install_pgsphere
    from tapd.store import initialise_schema

    config = load_cli_config(args)
    with store_connection(config) as conn:
        try:
            how = install_pgsphere(conn)
            if how != "present":
                print(f"pgsphere installed in the database ({how})")
        except PgSphereMissing as exc:
            print(f"tapd: warning: {exc}; geometry functions will not work", file=sys.stderr)
        except psycopg.errors.InsufficientPrivilege:
            raise TapdError(
                "installing pgsphere needs a PostgreSQL superuser: run initdb once as one,"
                " e.g. `runuser -u postgres -- tapd initdb --owner tapd` (see tapd(8))"
            ) from None
        if args.owner:
            _hand_over(conn, args.owner, config.query_role)
        result = initialise_schema(conn, config.schema)
        _ensure_tap_schema(conn, config.query_role)
        _check_query_login(conn, config.query_role)
    if result.before is None:
        print(f"created tapd schema {config.schema!r} (version {result.after})")
    elif result.before == result.after:
        print(f"tapd schema {config.schema!r} is up to date (version {result.after})")
    else:
        print(
            f"upgraded tapd schema {config.schema!r} to version {result.after}"
            f" (was {result.before})"
        )
    jobs_dir = config.jobs_path
    try:
        missing = not jobs_dir.exists()
    except OSError:  # not ours to look into, e.g. initdb run as postgres: someone made it
        missing = False
    if missing:
        try:
            jobs_dir.mkdir(parents=True, mode=0o750)
            print(f"created job directory {jobs_dir}")
        except OSError as exc:
            print(f"tapd: warning: cannot create {jobs_dir}: {exc.strerror}", file=sys.stderr)
    return 0


def _hand_over(conn: Any, owner: str, query_role: str) -> None:
    """Let ``owner`` run tapd: its services (system user ``owner``) may log in as
    the query role, it may end the query role's sessions, and it owns what initdb
    creates from here on (this session continues as ``owner``)."""
    import psycopg
    import psycopg.sql

    from tapd.catalog import ensure_role
    from tapd.query_login import grant_query_login, install_peer_map

    try:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [owner]).fetchone():
            raise psycopg.errors.UndefinedObject(owner)
        ensure_role(conn, query_role)
        grant_query_login(conn, query_role)
        # The owner has the query role's privileges (not the other way round): its
        # daemon and HTTP service cancel and end the sessions of jobs' queries.
        conn.execute(
            psycopg.sql.SQL("GRANT {} TO {}").format(
                psycopg.sql.Identifier(query_role), psycopg.sql.Identifier(owner)
            )
        )
        for done in install_peer_map(conn, query_role, system_user=owner):
            print(f"query login: {done}")
        conn.execute(psycopg.sql.SQL("SET ROLE {}").format(psycopg.sql.Identifier(owner)))
    except psycopg.errors.UndefinedObject:
        raise TapdError(
            f"role {owner!r} does not exist: create it first (createuser {owner}, as postgres)"
        ) from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise TapdError(f"initdb --owner needs a PostgreSQL superuser: {exc}") from None


def _check_query_login(conn: Any, query_role: str) -> None:
    """Warn when the query role cannot log in (set up by ``initdb --owner`` as a superuser)."""
    row = conn.execute(
        "SELECT rolcanlogin AND NOT rolsuper FROM pg_roles WHERE rolname = %s", [query_role]
    ).fetchone()
    if not row or not row[0]:
        print(
            f"tapd: warning: the query role {query_role!r} cannot log in, so no query can run:"
            " run `tapd initdb --owner OWNER` once as a PostgreSQL superuser (see tapd(8))",
            file=sys.stderr,
        )


def _ensure_tap_schema(conn: Any, query_role: str) -> None:
    """TAP_SCHEMA and the query role (``tapd.catalog``)."""
    try:
        from tapd.catalog import ensure_tap_schema
    except ImportError:
        return
    ensure_tap_schema(conn, query_role)


def _run(args: argparse.Namespace) -> int:
    from tapd.daemon import run_daemon

    config = load_cli_config(args)

    def reload() -> Config:
        return load_cli_config(args, configure_logging=False)

    return run_daemon(config, reload_config=reload)


# -- jobs ----------------------------------------------------------------------


def _submit(args: argparse.Namespace) -> int:
    config = load_cli_config(args, configure_logging=False)
    now = dt.datetime.now(dt.UTC)
    with _store(config) as store:
        job = store.create_job(
            _tap_parameters(args),
            execution_duration=execution_duration_for(args.execution_duration, config),
            destruction=destruction_for(now, None, config, now=now),
            queue=args.run,
        )
    cli_logger(config).info("job.phase", job_id=job.job_id, phase=job.phase.value)
    print(job.job_id)
    return 0


def _jobs(args: argparse.Namespace) -> int:
    config = load_cli_config(args, configure_logging=False)
    with _store(config) as store:
        jobs = store.list_jobs(phases=args.phase or (), last=args.last, **_account_filter(args))
    for job in jobs:
        created = job.creation_time.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(f"{job.job_id}  {job.phase.value:<9}  {created}  {job.run_id or ''}".rstrip())
    return 0


def _time(moment: dt.datetime | None) -> str:
    return (
        moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if moment
        else "-"
    )


def describe_job(job: Job, now: dt.datetime | None = None) -> list[str]:
    """``tapd show``: the job as lines of ``name: value``."""
    lines = [
        f"jobId: {job.job_id}",
        f"phase: {job.phase.value}",
        f"runId: {job.run_id or '-'}",
        f"owner: {job.owner or '-'}",
        f"creationTime: {_time(job.creation_time)}",
        f"startTime: {_time(job.start_time)}",
        f"endTime: {_time(job.end_time)}",
        f"executionDuration: {job.execution_duration}",
        f"destruction: {_time(job.destruction)}",
        f"quote: {_time(job.quote)}",
        "parameters:",
    ]
    for name, values in sorted(job.parameters.items()):
        lines += [f"  {name}: {value}" for value in values]
    if job.results:
        lines.append("results:")
        for r in job.results:
            overflow = ", overflow" if r.overflow else ""
            lines.append(
                f"  {r.result_id}: {r.filename} ({r.mime_type}, {r.size} bytes,"
                f" {r.rows} rows{overflow})"
            )
    if job.error is not None:
        lines.append(f"error: {job.error.message}")
    if job.runner_host or job.runner_pid:
        lines.append(f"runner: host {job.runner_host or '-'}, pid {job.runner_pid or '-'}")
    from tapd.store.jobs import progress_summary

    progress = progress_summary(job, now or dt.datetime.now(dt.UTC))
    if progress is not None:
        lines.append(f"progress: {progress}")
    return lines


def _show(args: argparse.Namespace) -> int:
    config = load_cli_config(args, configure_logging=False)
    with _store(config) as store:
        job = store.get_job(_checked_id(args.job_id))
    print("\n".join(describe_job(job)))
    return 0


def _abort(args: argparse.Namespace) -> int:
    by_account = args.owner is not None or args.address is not None
    if by_account == (args.job_id is not None):
        raise TapdError("give a JOBID, or --owner NAME or --address ADDRESS (not both)")
    if by_account:
        return _abort_account(args)
    config = load_cli_config(args, configure_logging=False)
    with _store(config) as store:
        job = store.abort_job(_checked_id(args.job_id))
    log = cli_logger(config)
    log.info("job.phase", job_id=job.job_id, phase=job.phase.value, reason="tapd abort")
    print(f"{job.job_id} {job.phase.value}")
    return 0


def _abort_account(args: argparse.Namespace) -> int:
    """Every unfinished job of an owner: counted first, aborted only with ``--yes``."""
    from tapd.store import ABORTABLE_PHASES

    config = load_cli_config(args, configure_logging=False)
    who = _account_name(args)
    with _store(config) as store:
        if not args.yes:
            jobs = store.list_jobs(phases=ABORTABLE_PHASES, **_account_filter(args))
            if not jobs:
                print(f"{who} has no unfinished jobs")
                return 0
            phases = Counter(job.phase.value for job in jobs)
            detail = ", ".join(f"{n} {phase}" for phase, n in sorted(phases.items()))
            raise TapdError(
                f"{who} has {len(jobs)} unfinished jobs ({detail}); add --yes to abort them"
            )
        aborted = store.abort_account_jobs(owner=args.owner, client_address=args.address)
    log = cli_logger(config)
    for job_id in aborted:
        log.info("job.phase", job_id=job_id, phase=JobPhase.ABORTED.value, reason="tapd abort")
    print(f"aborted {len(aborted)} jobs of {who}")
    return 0


def _result(args: argparse.Namespace) -> int:
    config = load_cli_config(args, configure_logging=False)
    with _store(config) as store:
        job = store.get_job(_checked_id(args.job_id))
    result = job.result("result")
    if result is None:
        if job.phase in FINAL_PHASES and job.error is not None:
            raise TapdError(f"job {job.job_id} is {job.phase.value}: {job.error.message}")
        raise TapdError(f"job {job.job_id} is {job.phase.value} and has no result (yet)")
    path = job_dir(config.jobs_path, job.job_id) / result.filename
    try:
        source = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise TapdError(f"the result file {path} cannot be read: {exc.strerror}") from None
    with source, _output(args.output) as out:
        shutil.copyfileobj(source, out)
    return 0


def _query(args: argparse.Namespace) -> int:
    from tapd.log import get_logger
    from tapd.runner import connect_query_session, run_sync, tap_request

    config = load_cli_config(args)
    grouped: dict[str, list[str]] = {}
    for name, value in _tap_parameters(args):
        grouped.setdefault(name.upper(), []).append(value)
    request = tap_request(grouped, config)
    with (
        connect_query_session(config, application_name="tapd query") as conn,
        _output(args.output) as out,
    ):
        result = run_sync(conn, request, out, config=config)
    get_logger().debug("query.done", rows=result.rows, overflow=result.overflow)
    if result.overflow:
        print(
            f"tapd: note: the result was truncated at {request.maxrec} rows (MAXREC)",
            file=sys.stderr,
        )
    return 0
