"""Opening connections to tapd's database, with one clear line when it fails."""

from __future__ import annotations

from typing import Any

import psycopg
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


def one_line(exc: BaseException) -> str:
    """A database error's message on one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = "; ".join(lines) or type(exc).__name__
    return text.removeprefix("connection failed: ")
