"""How tapd's services log in as the query role (``tapd initdb``).

User queries run in sessions logged in as the query role (``Config.query_conninfo``),
never in the session of the role that owns the job tables: a session can always go
back to its login role (``RESET ROLE``), so the query role is only impossible to
leave when it is the login role. ``tapd initdb`` therefore lets the query role log
in (and use the database and temporary tables, for uploads), and on a server whose
local connections authenticate by ``peer`` (Debian's default) it maps the service's
system user to the query role in ``pg_ident.conf``, with a ``pg_hba.conf`` line in
front of the rule that would otherwise refuse it.

``plan_peer_map`` decides from the server's rules (``pg_hba_file_rules``) what is
needed; ``install_peer_map`` edits the files and reloads the server.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

#: The pg_ident.conf map tapd adds (``peer map=tapd``).
MAP_NAME = "tapd"
_COMMENT = "# tapd: its services (system user {user}) log in as the query role {role}"


@dataclass(frozen=True)
class HbaRule:
    """One line of pg_hba.conf as ``pg_hba_file_rules`` shows it."""

    line: int
    type: str
    databases: tuple[str, ...]
    users: tuple[str, ...]
    method: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class PeerMapPlan:
    """What letting ``system_user`` log in as the query role over the local socket needs.

    ``hba_line``: a pg_hba.conf line to insert before line ``before`` (None: none);
    ``ident_line``: a pg_ident.conf line to add (None: none needed or present);
    ``note``: what the operator must do when tapd cannot decide or act (None: nothing).
    """

    hba_line: str | None = None
    before: int | None = None
    ident_line: str | None = None
    note: str | None = None


def _matches(rule: HbaRule, database: str, role: str) -> bool | None:
    """Whether ``rule`` applies to a local connection to ``database`` as ``role``
    (None: it depends on something this module does not resolve, e.g. groups)."""
    if rule.type != "local":
        return False
    databases = set(rule.databases)
    users = set(rule.users)
    if any(d.startswith("@") or d in ("samerole", "samegroup") for d in databases) or any(
        u.startswith(("@", "+")) for u in users
    ):
        return None
    database_ok = (
        "all" in databases
        or database in databases
        or ("sameuser" in databases and database == role)
    )
    return database_ok and ("all" in users or role in users)


def plan_peer_map(
    rules: Sequence[HbaRule],
    ident_lines: Sequence[tuple[str, str, str]],
    *,
    database: str,
    role: str,
    system_user: str,
) -> PeerMapPlan:
    """What the server needs so that ``system_user`` logs in as ``role`` over the
    local socket, from its pg_hba rules and its pg_ident (map, system user, role) lines."""
    ident = f"{MAP_NAME} {system_user} {role}"
    have_ident = (MAP_NAME, system_user, role) in ident_lines
    hba = f"local {database} {role} peer map={MAP_NAME}"
    for rule in rules:
        applies = _matches(rule, database, role)
        if applies is False:
            continue
        if applies is None:
            return PeerMapPlan(
                note=f"pg_hba.conf line {rule.line} uses groups or files tapd does not"
                f" resolve; make sure {system_user} can log in as {role} (e.g. {hba!r}"
                f" and {ident!r} in pg_ident.conf)"
            )
        if rule.method == "trust":
            return PeerMapPlan()
        if rule.method == "peer" and f"map={MAP_NAME}" in rule.options:
            return PeerMapPlan(ident_line=None if have_ident else ident)
        if rule.method == "peer" and not any(o.startswith("map=") for o in rule.options):
            return PeerMapPlan(hba_line=hba, before=rule.line, ident_line=ident)
        if rule.method in ("md5", "scram-sha-256", "password"):
            return PeerMapPlan(
                note=f"pg_hba.conf line {rule.line} asks {role} for a password: give the role"
                f" one and put it in the .pgpass file of {system_user}"
            )
        return PeerMapPlan(
            note=f"pg_hba.conf line {rule.line} authenticates {role} by {rule.method}:"
            f" make sure {system_user} can log in as {role} (database.query_dsn)"
        )
    return PeerMapPlan(
        note=f"no pg_hba.conf rule lets local connections log in as {role}: add {hba!r}"
        f" and {ident!r} to pg_ident.conf, or set database.query_dsn"
    )


def insert_hba_line(text: str, line: str, before: int, comment: str) -> str:
    """``text`` (a pg_hba.conf) with ``comment`` and ``line`` in front of line ``before``."""
    lines = text.splitlines(keepends=True)
    index = max(0, min(before - 1, len(lines)))
    return "".join([*lines[:index], comment + "\n", line + "\n", *lines[index:]])


def append_line(text: str, line: str, comment: str) -> str:
    """``text`` with ``comment`` and ``line`` at its end."""
    if text and not text.endswith("\n"):
        text += "\n"
    return f"{text}{comment}\n{line}\n"


def grant_query_login(conn: psycopg.Connection[Any], role: str) -> None:
    """Let ``role`` log in (never as a superuser) and use this database and temporary
    tables (the uploads of its queries). Needs a superuser or CREATEROLE."""
    role_id = sql.Identifier(role)
    conn.execute(sql.SQL("ALTER ROLE {} LOGIN NOSUPERUSER").format(role_id))
    database = conn.execute("SELECT current_database()").fetchone()
    assert database is not None
    conn.execute(
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
            sql.Identifier(database[0]), role_id
        )
    )


def _rules(conn: psycopg.Connection[Any]) -> list[HbaRule]:
    rows = conn.execute(
        "SELECT line_number, type, database, user_name, auth_method, options"
        " FROM pg_hba_file_rules WHERE error IS NULL ORDER BY line_number"
    ).fetchall()
    return [
        HbaRule(int(r[0]), r[1], tuple(r[2] or ()), tuple(r[3] or ()), r[4], tuple(r[5] or ()))
        for r in rows
    ]


def _ident_lines(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        "SELECT map_name, sys_name, pg_username FROM pg_ident_file_mappings WHERE error IS NULL"
    ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def install_peer_map(conn: psycopg.Connection[Any], role: str, system_user: str) -> list[str]:
    """Make the local server let ``system_user`` log in as ``role`` by peer (see
    ``plan_peer_map``), when its configuration files are on this host and
    writable; reload it. Returns what was done or what the operator must do,
    one sentence each. Needs a superuser."""
    database = conn.execute("SELECT current_database()").fetchone()
    assert database is not None
    plan = plan_peer_map(
        _rules(conn),
        _ident_lines(conn),
        database=str(database[0]),
        role=role,
        system_user=system_user,
    )
    if plan.note:
        return [plan.note]
    if (plan.hba_line or plan.ident_line) and not str(conn.info.host).startswith("/"):
        return [  # the files are on the server's host, which may not be this one
            f"the server is reached over the network: on its host, add {plan.ident_line!r}"
            " to pg_ident.conf"
            + (
                f" and {plan.hba_line!r} to pg_hba.conf before its line {plan.before}"
                if plan.hba_line
                else ""
            )
            + ", then reload PostgreSQL"
        ]
    comment = _COMMENT.format(user=system_user, role=role)
    edits: list[tuple[Path, str, str]] = []
    if plan.hba_line is not None and plan.before is not None:
        edits.append((_setting_path(conn, "hba_file"), plan.hba_line, "hba"))
    if plan.ident_line is not None:
        edits.append((_setting_path(conn, "ident_file"), plan.ident_line, "ident"))
    done: list[str] = []
    for path, line, kind in edits:
        if not os.access(path, os.W_OK):
            return [
                f"cannot edit {path} from here: add {line!r} to it"
                + (f" before its line {plan.before}" if kind == "hba" else "")
                + ", then reload PostgreSQL"
            ]
    for path, line, kind in edits:
        text = path.read_text()
        if kind == "hba":
            assert plan.before is not None
            path.write_text(insert_hba_line(text, line, plan.before, comment))
            done.append(f"added {line!r} to {path} (before its line {plan.before})")
        else:
            path.write_text(append_line(text, line, comment))
            done.append(f"added {line!r} to {path}")
    if edits:
        conn.execute("SELECT pg_reload_conf()")
        done.append("reloaded PostgreSQL's configuration")
    return done


def _setting_path(conn: psycopg.Connection[Any], name: str) -> Path:
    row = conn.execute("SELECT current_setting(%s)", [name]).fetchone()
    assert row is not None
    return Path(str(row[0]))
