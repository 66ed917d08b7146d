"""Install pgsphere into a database, working around Debian 12's broken install script.

Debian 12's postgresql-15-pgsphere (extension 1.2.0) fails ``CREATE EXTENSION
pg_sphere`` on PostgreSQL 15.18+ because two legacy DaCHS compatibility
operators (``@ (bigint, smoc)`` and ``@ (spoint, smoc)``) name a commutator
that is already taken (upstream pgsphere issue #85, fixed by PR #92). When the
extension cannot be created we run the packaged script as plain SQL without
those two operators, which is what upstream did.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

EXTENSION_DIRS = (
    Path("/usr/share/postgresql/15/extension"),
    Path("/usr/share/postgresql/16/extension"),
    Path("/usr/share/postgresql/17/extension"),
)

_LEGACY_OPERATOR = re.compile(
    r"CREATE OPERATOR @ \(\s*LEFTARG\s*=\s*(?:bigint|spoint),\s*RIGHTARG\s*=\s*smoc,.*?\);",
    re.DOTALL,
)


class PgSphereMissing(RuntimeError):
    """pgsphere is not installed on this host (package postgresql-15-pgsphere)."""


def find_install_script(extension_dirs: tuple[Path, ...] = EXTENSION_DIRS) -> Path:
    """Return the packaged ``pg_sphere--<version>.sql`` base install script."""
    for directory in extension_dirs:
        scripts = sorted(directory.glob("pg_sphere--[0-9]*.[0-9]*.[0-9]*.sql"))
        scripts = [s for s in scripts if "--" not in s.stem.split("pg_sphere--", 1)[1]]
        if scripts:
            return scripts[-1]
    raise PgSphereMissing(
        "pgsphere is not installed: install the Debian package postgresql-15-pgsphere"
    )


def patched_install_sql(script: Path) -> str:
    """The install script without the two legacy operators, runnable as plain SQL."""
    sql = script.read_text()
    sql = _LEGACY_OPERATOR.sub("", sql)
    sql = sql.replace("MODULE_PATHNAME", "$libdir/pg_sphere")
    # The script refuses to run outside CREATE EXTENSION via \echo + \quit.
    return "\n".join(line for line in sql.splitlines() if not line.startswith("\\"))


def has_pgsphere(conn: psycopg.Connection) -> bool:
    """True when the spoint type exists in the database."""
    row = conn.execute("SELECT to_regtype('spoint') IS NOT NULL").fetchone()
    return bool(row and row[0])


def install_pgsphere(conn: psycopg.Connection, schema: str = "public") -> str:
    """Make pgsphere available in ``schema``; return how ("present", "extension", "script")."""
    if has_pgsphere(conn):
        return "present"
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_sphere")
        return "extension"
    except psycopg.Error:
        pass
    script = find_install_script()
    with conn.transaction():
        conn.execute(
            psycopg.sql.SQL("SET LOCAL search_path TO {}").format(psycopg.sql.Identifier(schema))
        )
        conn.execute(patched_install_sql(script).encode())
    return "script"
