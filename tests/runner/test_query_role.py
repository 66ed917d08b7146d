"""The query role cannot be left, even by SQL that no translator checked.

Hand-made SQL goes straight to the lowest layer: ``tapd.formats.write_result``
(the describe statement and the COPY) inside ``tapd.runner.query_transaction``
on a session logged in as the query role, and ``CopyOut`` itself. Stacked
statements (``RESET ROLE; ...``, ``...; COMMIT; ...``), with or without closing
the sub-select they are pasted into, are refused before anything runs, and a
single statement cannot switch roles either. Evidence that something ran as the
tables' owner would outlive the transaction: a row in a table only the owner may
write (after a stacked COMMIT) or a session-level advisory lock keyed by
``current_user``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tapd.catalog import load_catalog
from tapd.columns import ColumnMeta
from tapd.config import Config, load_config
from tapd.formats import resolve_format, write_result
from tapd.formats.copyout import CopyOut
from tapd.runner import (
    QueryLoginError,
    estimated_rows,
    query_search_path,
    query_transaction,
    run_sync,
    tap_request,
)
from tests.sites import Site, make_site, publish_whoami

#: Takes a session-level advisory lock keyed by the role the statement runs as.
LOCK = "SELECT pg_advisory_lock(hashtext(current_user::text)::bigint)"
#: Writes the role into a table only the owner may write.
INSERT = "INSERT INTO public.canary VALUES (current_user)"
#: Text that closes the sub-selects the writer pastes the query into, and reopens them.
CLOSE, REOPEN = "SELECT 1) AS q) AS d", "SELECT * FROM (SELECT * FROM (SELECT 1"

#: Hand-made text -> why PostgreSQL refuses it. Pasted as it is, a stacked statement
#: lands inside the writer's sub-select; the text that breaks out of it makes several
#: statements, which only the simple query protocol would run.
SEVERAL = "cannot insert multiple commands into a prepared statement"
HAND_MADE = {
    "reset_role": (f"RESET ROLE; {LOCK}", "syntax error at or near"),
    "reset_role_breaking_out": (f"{CLOSE}; RESET ROLE; {LOCK}; {REOPEN}", SEVERAL),
    "set_role_breaking_out": (f"{CLOSE}; SET ROLE NONE; {LOCK}; {REOPEN}", SEVERAL),
    "stacked_commit": (f"COMMIT; {INSERT}", "syntax error at or near"),
    "stacked_commit_breaking_out": (
        f"{CLOSE}; COMMIT; RESET ROLE; {INSERT}; {REOPEN}",
        SEVERAL,
    ),
    "stacked_commit_read_write": (
        f"{CLOSE}; COMMIT; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; {INSERT};"
        f" {REOPEN}",
        SEVERAL,
    ),
}
COLUMN = (ColumnMeta(name="x", datatype="int"),)


@pytest.fixture
def site(dsn: str, tmp_path: Path) -> Site:
    site = make_site(dsn, tmp_path)
    publish_whoami(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.canary (who text)")  # only the owner may write it
    return site


@pytest.fixture
def config(site: Site) -> Config:
    return load_config(site.config_path, environ={})


@pytest.fixture
def owner(site: Site) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(site.dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def query_conn(config: Config) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(config.query_conninfo, autocommit=True) as conn:
        yield conn


def owner_left_evidence(owner: psycopg.Connection[Any], name: str) -> list[str]:
    """What shows a statement ran as ``name``: its canary rows and advisory locks."""
    rows = owner.execute("SELECT who FROM public.canary").fetchall()
    locks = owner.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        " AND objid = (hashtext(%s)::bigint & x'ffffffff'::bigint)::oid",
        [name],
    ).fetchone()
    assert locks is not None
    return [who for (who,) in rows] + ["advisory lock"] * int(locks[0])


def run_hand_made(conn: psycopg.Connection[Any], config: Config, text: str) -> None:
    with query_transaction(
        conn, query_role=config.query_role, timeout=5, search_path=query_search_path(conn)
    ):
        write_result(conn, text, None, COLUMN, resolve_format("csv"), io.BytesIO(), maxrec=10)


@pytest.mark.parametrize(("text", "refusal"), HAND_MADE.values(), ids=HAND_MADE.keys())
def test_stacked_statements_given_to_the_writer_are_refused_and_nothing_runs(
    owner: psycopg.Connection[Any],
    query_conn: psycopg.Connection[Any],
    config: Config,
    site: Site,
    text: str,
    refusal: str,
) -> None:
    with pytest.raises(psycopg.errors.SyntaxError, match=refusal):
        run_hand_made(query_conn, config, text)
    owner_name = psycopg.conninfo.conninfo_to_dict(site.dsn).get("user") or owner.info.user
    assert owner_left_evidence(owner, str(owner_name)) == []
    assert owner_left_evidence(owner, config.query_role) == []
    # the session is still the query role's, idle, with nothing of the attempt left
    assert query_conn.execute("SELECT session_user::text, current_user::text").fetchone() == (
        config.query_role,
        config.query_role,
    )


#: Hand-made text for the EXPLAIN of the row estimate, which wraps nothing around it.
FOR_EXPLAIN = {
    "reset_role_after_select": f"SELECT 1 AS x; RESET ROLE; {LOCK}",
    "stacked_commit_after_select": f"SELECT 1 AS x; COMMIT; RESET ROLE; {INSERT}",
    **{name: text for name, (text, _) in HAND_MADE.items()},
}


@pytest.mark.parametrize("text", FOR_EXPLAIN.values(), ids=FOR_EXPLAIN.keys())
def test_stacked_statements_given_to_the_row_estimate_are_refused_and_nothing_runs(
    owner: psycopg.Connection[Any],
    query_conn: psycopg.Connection[Any],
    config: Config,
    site: Site,
    text: str,
) -> None:
    """The async job's EXPLAIN (its progress' expected rows) takes the query's text
    before the writer does."""
    with (
        pytest.raises(psycopg.errors.SyntaxError),
        query_transaction(query_conn, query_role=config.query_role, timeout=5, search_path=""),
    ):
        estimated_rows(query_conn, text, None)
    owner_name = psycopg.conninfo.conninfo_to_dict(site.dsn).get("user") or owner.info.user
    assert owner_left_evidence(owner, str(owner_name)) == []
    assert owner_left_evidence(owner, config.query_role) == []


def test_without_libpq_pipelines_the_statement_still_goes_alone(
    owner: psycopg.Connection[Any],
    query_conn: psycopg.Connection[Any],
    config: Config,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """libpq before 14 has no pipeline mode: a round trip more, the same protection."""
    monkeypatch.setattr(psycopg.Pipeline, "is_supported", classmethod(lambda cls: False))
    text, refusal = HAND_MADE["stacked_commit_breaking_out"]
    with pytest.raises(psycopg.errors.SyntaxError, match=refusal):
        run_hand_made(query_conn, config, text)
    assert owner.execute("SELECT count(*) FROM public.canary").fetchone() == (0,)
    out = io.BytesIO()
    with query_transaction(query_conn, query_role=config.query_role, timeout=5, search_path=""):
        write_result(
            query_conn,
            "SELECT login, who FROM public.whoami",
            None,
            (ColumnMeta("login", "char", "*"), ColumnMeta("who", "char", "*")),
            resolve_format("csv"),
            out,
            maxrec=10,
        )
    assert out.getvalue().decode().splitlines() == ["login,who", "tapd_query,tapd_query"]


@pytest.mark.parametrize(
    "statement",
    [
        "COPY (SELECT 1) TO STDOUT; RESET ROLE",
        f"COPY (SELECT 1) TO STDOUT; COMMIT; {INSERT}",
    ],
)
def test_a_copy_with_statements_stacked_after_it_is_refused(
    owner: psycopg.Connection[Any],
    query_conn: psycopg.Connection[Any],
    config: Config,
    statement: str,
) -> None:
    with (
        query_transaction(query_conn, query_role=config.query_role, timeout=5, search_path=""),
        pytest.raises(psycopg.errors.SyntaxError, match=SEVERAL),
    ):
        CopyOut(query_conn, statement).start()
    assert owner.execute("SELECT count(*) FROM public.canary").fetchone() == (0,)


@pytest.mark.parametrize(
    "text",
    [
        "SELECT set_config('role', {owner}, false) AS x",
        "SELECT set_config('session_authorization', {owner}, false) AS x",
        "SELECT length(set_config('role', {owner}, true))"
        " + length(query_to_xml('SELECT pg_advisory_lock(hashtext(current_user::text)::bigint)',"
        " false, false, '')::text) AS x",
    ],
    ids=["set_config_role", "set_config_session_authorization", "set_config_then_query_to_xml"],
)
def test_one_statement_cannot_switch_to_the_owner(
    owner: psycopg.Connection[Any],
    query_conn: psycopg.Connection[Any],
    config: Config,
    text: str,
) -> None:
    owner_name = owner.execute("SELECT current_user::text").fetchone()
    assert owner_name is not None
    statement = sql.SQL(text.format(owner="{}")).format(sql.Literal(owner_name[0]))
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied to set"):
        run_hand_made(query_conn, config, statement.as_string(owner))
    assert owner_left_evidence(owner, owner_name[0]) == []
    assert query_conn.execute("SELECT current_user::text").fetchone() == (config.query_role,)


def test_a_session_of_the_owner_is_refused_before_anything_is_sent(
    owner: psycopg.Connection[Any], config: Config
) -> None:
    request = tap_request({"LANG": ["ADQL"], "QUERY": ["SELECT who FROM public.whoami"]}, config)
    with pytest.raises(QueryLoginError, match="logged in as the query role 'tapd_query'"):
        run_sync(owner, request, io.BytesIO(), config=config, catalog=load_catalog(owner))
    with (
        pytest.raises(QueryLoginError),
        query_transaction(owner, query_role=config.query_role, timeout=5, search_path=""),
    ):
        pass
    assert owner.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_sync_queries_log_in_as_the_query_role(
    query_conn: psycopg.Connection[Any], config: Config
) -> None:
    request = tap_request(
        {"LANG": ["ADQL"], "QUERY": ["SELECT login, who FROM public.whoami"], "FORMAT": ["csv"]},
        config,
    )
    out = io.BytesIO()
    run_sync(query_conn, request, out, config=config, catalog=load_catalog(query_conn))
    assert out.getvalue().decode().splitlines() == ["login,who", "tapd_query,tapd_query"]
