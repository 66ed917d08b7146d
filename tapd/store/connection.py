"""Opening connections to tapd's database, with one clear line when it fails."""

from __future__ import annotations

import functools
from typing import Any

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from tapd.errors import DatabaseUnavailable


def describe_dsn(dsn: str) -> str:
    """Where a connection string points, without secrets (for messages)."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "the configured database"
    where = [f"{k}={parts[k]}" for k in ("host", "port", "dbname", "user") if parts.get(k)]
    return " ".join(where) or "the default database"


def connect(
    dsn: str, *, application_name: str = "tapd", autocommit: bool = True, **kwargs: Any
) -> psycopg.Connection[Any]:
    """A connection to ``dsn``; ``DatabaseUnavailable`` (one line) if impossible."""
    try:
        return psycopg.connect(
            dsn, autocommit=autocommit, application_name=application_name, **kwargs
        )
    except psycopg.ProgrammingError as exc:
        raise DatabaseUnavailable(
            f"malformed database connection string (database.dsn): {one_line(exc)}"
        ) from None
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL ({describe_dsn(dsn)}): {one_line(exc)}"
        ) from None


@functools.cache
def dsn_parameters(dsn: str) -> tuple[tuple[str, str], ...]:
    """The parameters of a connection string (parsed once per process: a parent
    that parses before forking spares its children the work)."""
    try:
        parsed = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise DatabaseUnavailable(
            f"malformed database connection string (database.dsn): {one_line(exc)}"
        ) from None
    return tuple((key, str(value)) for key, value in parsed.items() if value is not None)


def _conninfo_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def connect_direct(dsn: str, *, application_name: str) -> psycopg.Connection[Any]:
    """An autocommit connection to ``dsn`` opened by libpq directly, skipping
    psycopg's connection-string handling (parsed once, ``dsn_parameters``):
    in a freshly forked child that handling costs more CPU than libpq's own
    connect. ``DatabaseUnavailable`` (one line) if impossible."""
    parameters = dict(dsn_parameters(dsn))
    parameters["application_name"] = application_name
    conninfo = " ".join(f"{key}={_conninfo_value(value)}" for key, value in parameters.items())
    pgconn = pq.PGconn.connect(conninfo.encode())
    if pgconn.status != pq.ConnStatus.OK:
        message = pgconn.error_message.decode(errors="replace")
        pgconn.finish()
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL ({describe_dsn(dsn)}): {one_line(Exception(message))}"
        )
    pgconn.nonblocking = 1  # what psycopg's own connect leaves
    conn = psycopg.Connection(pgconn)
    conn.autocommit = True
    return conn


def one_line(exc: BaseException) -> str:
    """A database error's message on one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = "; ".join(lines) or type(exc).__name__
    return text.removeprefix("connection failed: ")
