"""run_sync: the query runs read-only, in a session logged in as the query role, under its
time limit, and the caller's connection comes back idle with none of those settings left
on it."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq

from tapd.catalog import load_catalog, publish_table
from tapd.config import Config, load_config
from tapd.runner import QueryFailed, QueryTimeLimit, run_sync, tap_request
from tests.sites import Site, make_site

#: What the session looks like from inside the user's query.
SESSION_FACTS = """
CREATE VIEW public.session_facts AS SELECT
    current_user::text AS who,
    current_setting('transaction_read_only') AS read_only,
    current_setting('statement_timeout') AS time_limit,
    current_setting('search_path') AS path,
    current_setting('DateStyle') AS date_style
"""


@pytest.fixture
def site(dsn: str, tmp_path: Path) -> Site:
    site = make_site(dsn, tmp_path)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SESSION_FACTS)
        publish_table(conn, "public.session_facts", None, "tapd_query")
    return site


@pytest.fixture
def config(site: Site) -> Config:
    return load_config(site.config_path, environ={})


@pytest.fixture
def owner(site: Site) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(site.dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def conn(config: Config) -> Iterator[psycopg.Connection[Any]]:
    """A session logged in as the query role, as /sync and ``tapd query`` use."""
    with psycopg.connect(config.query_conninfo, autocommit=True) as conn:
        yield conn


def query_csv(
    conn: psycopg.Connection[Any], config: Config, query: str, **options: Any
) -> list[list[str]]:
    request = tap_request({"LANG": ["ADQL"], "QUERY": [query], "FORMAT": ["csv"]}, config)
    out = io.BytesIO()
    if "catalog" not in options:
        options["catalog"] = load_catalog(conn)
    run_sync(conn, request, out, config=config, **options)
    return list(csv.reader(io.StringIO(out.getvalue().decode())))


def assert_idle_and_unchanged(conn: psycopg.Connection[Any]) -> None:
    """No transaction left open and no setting of the query's left on the session."""
    assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    row = conn.execute(
        "SELECT current_user::text, current_setting('transaction_read_only'),"
        " current_setting('statement_timeout')"
    ).fetchone()
    assert row == (conn.info.user, "off", "0")


@pytest.mark.parametrize("autocommit", [True, False])
def test_query_runs_read_only_as_the_query_role_under_its_time_limit(
    conn: psycopg.Connection[Any], config: Config, autocommit: bool
) -> None:
    catalog = load_catalog(conn)
    conn.autocommit = autocommit
    rows = query_csv(conn, config, "SELECT * FROM public.session_facts", timeout=7, catalog=catalog)
    assert rows[0] == ["who", "read_only", "time_limit", "path", "date_style"]
    who, read_only, time_limit, path, date_style = rows[1]
    assert (who, read_only, time_limit) == (config.query_role, "on", "7s")
    assert path in ("public", '""')  # the schema holding pgsphere only
    assert date_style == "ISO, YMD"  # the writers' output settings
    conn.autocommit = True
    assert_idle_and_unchanged(conn)


def test_connection_is_idle_and_reusable_after_a_query_fails_while_rows_flow(
    conn: psycopg.Connection[Any], config: Config
) -> None:
    with pytest.raises(QueryFailed, match="division by zero"):
        query_csv(conn, config, "SELECT 1 / (x - 50) FROM public.numbers")
    assert_idle_and_unchanged(conn)
    assert query_csv(conn, config, "SELECT TOP 1 x FROM public.numbers ORDER BY x") == [
        ["x"],
        ["1"],
    ]


def test_connection_is_idle_after_the_query_cannot_be_described(
    conn: psycopg.Connection[Any], config: Config, owner: psycopg.Connection[Any]
) -> None:
    catalog = load_catalog(conn)
    owner.execute("REVOKE SELECT ON public.numbers FROM tapd_query")
    with pytest.raises(QueryFailed, match="permission denied"):
        query_csv(conn, config, "SELECT x FROM public.numbers", catalog=catalog)
    assert_idle_and_unchanged(conn)


def test_settings_the_query_changed_do_not_outlive_it(
    conn: psycopg.Connection[Any], config: Config, owner: psycopg.Connection[Any]
) -> None:
    """A query's transaction ends with ROLLBACK, which undoes even session-level changes."""
    owner.execute(
        "CREATE FUNCTION public.meddle() RETURNS int LANGUAGE sql"
        " AS $$SELECT length(set_config('statement_timeout', '1', false))$$"
    )
    owner.execute("CREATE VIEW public.meddling AS SELECT public.meddle() AS n")
    publish_table(owner, "public.meddling", None, "tapd_query")
    assert len(query_csv(conn, config, "SELECT n FROM public.meddling")) == 2
    assert_idle_and_unchanged(conn)


def test_connection_is_idle_after_the_time_limit_stops_the_query(
    conn: psycopg.Connection[Any], config: Config
) -> None:
    """(TAP-22)"""
    with pytest.raises(QueryTimeLimit):
        query_csv(conn, config, "SELECT x FROM public.sleepy", timeout=0.5)
    assert_idle_and_unchanged(conn)


def test_the_query_cannot_write(
    conn: psycopg.Connection[Any], config: Config, owner: psycopg.Connection[Any]
) -> None:
    """Even a function with side effects reached through a published view is refused."""
    owner.execute("CREATE TABLE public.victims AS SELECT 1 AS x")
    owner.execute("GRANT ALL ON public.victims TO tapd_query")
    owner.execute(
        "CREATE FUNCTION public.wipe() RETURNS int LANGUAGE sql"
        " AS 'DELETE FROM public.victims RETURNING 1'"
    )
    owner.execute("CREATE VIEW public.wiper AS SELECT public.wipe() AS n")
    publish_table(owner, "public.wiper", None, "tapd_query")
    with pytest.raises(QueryFailed, match="read-only transaction"):
        query_csv(conn, config, "SELECT n FROM public.wiper")
    assert owner.execute("SELECT count(*) FROM public.victims").fetchone() == (1,)


def test_a_cancel_from_outside_is_not_reported_as_the_time_limit(
    conn: psycopg.Connection[Any], config: Config, site: Site
) -> None:
    """(issue 10 item 8, /sync) An administrator's pg_cancel_backend says so."""
    backend = conn.info.backend_pid

    def cancel_when_running() -> None:
        with psycopg.connect(site.dsn, autocommit=True) as admin:
            for _ in range(1000):
                row = admin.execute(
                    "SELECT state, query FROM pg_stat_activity WHERE pid = %s", (backend,)
                ).fetchone()
                if row and row[0] == "active" and row[1].startswith("COPY"):
                    admin.execute("SELECT pg_cancel_backend(%s)", (backend,))
                    return
                time.sleep(0.02)

    canceller = threading.Thread(target=cancel_when_running)
    canceller.start()
    try:
        with pytest.raises(QueryFailed) as info:
            query_csv(conn, config, "SELECT x FROM public.sleepy", timeout=600)
    finally:
        canceller.join()
    assert "cancelled in the database" in info.value.message
    assert "exceeded" not in info.value.message
    assert_idle_and_unchanged(conn)
