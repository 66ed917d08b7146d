"""Opening connections to tapd's database, with one clear line when it fails.

Every connection is bounded in time (``LinkTimeouts``): opening it gives up
after ``connect`` seconds, and once open, TCP keepalives probe an idle server
and ``tcp_user_timeout`` gives up on data the server does not acknowledge, so
a half-open connection (the server's host gone, a firewall dropping the
state) fails within ``keepalive`` seconds instead of blocking its user for
the kernel's ~15 minutes of retransmissions. Values in the DSN win. libpq
ignores the TCP options on unix sockets.

A connection string may list several hosts (``host=h1,h2,h3``) with
``target_session_attrs`` (libpq finds the primary, or a standby); libpq tries
them in the order given. ``load_balance_hosts=random`` (libpq 16's way of
spreading connections over the hosts) works with Debian 12's libpq 15 too:
tapd removes it from the string and shuffles the hosts itself, for every
connection it opens.
"""

from __future__ import annotations

import functools
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

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


_LOAD_BALANCE = re.compile(
    r"(?P<lead>^|\s+|[?&])load_balance_hosts\s*=\s*'?(?P<value>[A-Za-z]+)'?(?=\s|&|$)"
)
#: libpq keywords holding one value per host, reordered together.
HOST_LISTS = ("host", "hostaddr", "port")


def without_load_balancing(dsn: str) -> tuple[str, bool]:
    """``dsn`` without ``load_balance_hosts`` (which libpq 15 refuses), and
    whether it asked for ``random``."""
    match = _LOAD_BALANCE.search(dsn)
    if match is None:
        return dsn, False
    lead = match.group("lead")
    rest = dsn[: match.start()] + (lead if lead == "?" else "") + dsn[match.end() :]
    rest = rest.replace("?&", "?").rstrip("?").strip()
    return rest, match.group("value").lower() == "random"


def reorder_hosts(parameters: Mapping[str, str], order: Sequence[int]) -> dict[str, str]:
    """``parameters`` with the per-host lists (host, hostaddr, port) taken in
    ``order`` (indexes into the host list); single values apply to every host."""
    reordered = dict(parameters)
    for key in HOST_LISTS:
        values = str(parameters.get(key, "")).split(",")
        if len(values) == len(order) and len(values) > 1:
            reordered[key] = ",".join(values[i] for i in order)
    return reordered


def host_count(parameters: Mapping[str, str]) -> int:
    return max(len(str(parameters.get(k, "")).split(",")) for k in ("host", "hostaddr"))


def spread(
    parameters: Mapping[str, str], shuffle: Callable[[list[int]], None] = random.shuffle
) -> dict[str, str]:
    """The per-host lists of ``parameters`` in a random order."""
    order = list(range(host_count(parameters)))
    shuffle(order)
    return reorder_hosts(parameters, order)


def balanced_dsn(dsn: str) -> str:
    """``dsn`` ready for libpq: with ``load_balance_hosts=random`` removed and its
    hosts shuffled; any other string unchanged."""
    rest, shuffle = without_load_balancing(dsn)
    if not shuffle:
        return rest
    try:
        parameters = conninfo_to_dict(rest)
    except psycopg.ProgrammingError:
        return rest  # the caller's connect reports it
    return make_conninfo(**spread({k: str(v) for k, v in parameters.items() if v is not None}))


class BalancedConnection(psycopg.Connection[Any]):
    """A connection class for pools: ``load_balance_hosts=random`` honoured on any libpq."""

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
        return super().connect(balanced_dsn(conninfo), **kwargs)


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
            balanced_dsn(dsn),
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
    that parses before forking spares its children the work), without
    ``load_balance_hosts``."""
    rest, _ = without_load_balancing(dsn)
    try:
        parsed = conninfo_to_dict(rest)
    except psycopg.ProgrammingError as exc:
        raise DatabaseUnavailable(
            f"malformed database connection string (database.dsn): {one_line(exc)}"
        ) from None
    return tuple((key, str(value)) for key, value in parsed.items() if value is not None)


@functools.cache
def _balances(dsn: str) -> bool:
    return without_load_balancing(dsn)[1]


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
    if _balances(dsn):
        parameters = spread(parameters)
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


def in_hot_standby(conn: psycopg.Connection[Any]) -> bool:
    """Whether ``conn`` is to a standby (read-only, replaying the primary's
    changes): what the server reported at connect time or since."""
    return conn.info.parameter_status("in_hot_standby") == "on"
