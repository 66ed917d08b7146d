"""Opening connections to tapd's database, with one clear line when it fails.

Every connection is bounded in time (``LinkTimeouts``): opening it gives up
after ``connect`` seconds, and once open, TCP keepalives probe an idle server
and ``tcp_user_timeout`` gives up on data the server does not acknowledge, so
a half-open connection (the server's host gone, a firewall dropping the
state) fails within ``keepalive`` seconds instead of blocking its user for
the kernel's ~15 minutes of retransmissions. Values in the DSN win. libpq
ignores the TCP options on unix sockets.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
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


@dataclass(frozen=True)
class LinkTimeouts:
    """How long a connection waits for a server that does not answer, seconds:
    ``connect`` to open it (per host of the DSN), ``keepalive`` once open."""

    connect: float = 10.0
    keepalive: float = 15.0

    @classmethod
    def of(cls, config: Any) -> LinkTimeouts:
        """The configured ones (``database.connect_timeout``, ``database.keepalive_timeout``)."""
        return cls(float(config.connect_timeout), float(config.keepalive_timeout))

    def libpq_parameters(self) -> dict[str, str]:
        """libpq connection parameters enforcing these bounds: an idle server is
        probed after a third of ``keepalive`` and given up after at most
        ``keepalive`` (idle + count * interval), unacknowledged data too."""
        idle = max(1, int(self.keepalive // 3))
        interval = max(1, int((self.keepalive - idle) // 4))
        count = max(1, min(4, int((self.keepalive - idle) // interval)))
        return {
            "connect_timeout": str(max(1, math.ceil(self.connect))),
            "keepalives": "1",
            "keepalives_idle": str(idle),
            "keepalives_interval": str(interval),
            "keepalives_count": str(count),
            "tcp_user_timeout": str(int(self.keepalive * 1000)),
        }


DEFAULT_TIMEOUTS = LinkTimeouts()


def link_parameters(dsn: str, timeouts: LinkTimeouts = DEFAULT_TIMEOUTS) -> dict[str, str]:
    """The time bounds to add to ``dsn``: those it does not set itself."""
    given = dict(dsn_parameters(dsn))
    return {k: v for k, v in timeouts.libpq_parameters().items() if k not in given}


def connect(
    dsn: str,
    *,
    application_name: str = "tapd",
    autocommit: bool = True,
    timeouts: LinkTimeouts = DEFAULT_TIMEOUTS,
    **kwargs: Any,
) -> psycopg.Connection[Any]:
    """A connection to ``dsn``; ``DatabaseUnavailable`` (one line) if impossible."""
    try:
        return psycopg.connect(
            dsn,
            autocommit=autocommit,
            application_name=application_name,
            **{**link_parameters(dsn, timeouts), **kwargs},
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


def connect_direct(
    dsn: str, *, application_name: str, timeouts: LinkTimeouts = DEFAULT_TIMEOUTS
) -> psycopg.Connection[Any]:
    """An autocommit connection to ``dsn`` opened by libpq directly, skipping
    psycopg's connection-string handling (parsed once, ``dsn_parameters``):
    in a freshly forked child that handling costs more CPU than libpq's own
    connect. ``DatabaseUnavailable`` (one line) if impossible."""
    parameters = {**timeouts.libpq_parameters(), **dict(dsn_parameters(dsn))}
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
