"""Publishing records how many rows a table has, from PostgreSQL's statistics, never by counting.

``tapd publish`` of a catalog of tens of millions of rows must take seconds:
the row count (``TAP_SCHEMA.tables.nrows``, a tapd extension clients can
query) is the planner's estimate, refreshed by a sampling ANALYZE only when
the table was never analysed.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from tapd.catalog import load_catalog, publish_table

ROLE = "tapd_query"


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


def nrows(conn: psycopg.Connection, table: str) -> int | None:
    row = conn.execute("SELECT nrows FROM tap_schema.tables WHERE table_name = %s", [table])
    return row.fetchone()[0]  # type: ignore[index]


def make_table(conn: psycopg.Connection, rows: int) -> None:
    # no autovacuum: the statistics change only when the test says so
    conn.execute("CREATE TABLE public.big (id integer, mag real) WITH (autovacuum_enabled = false)")
    conn.execute(f"INSERT INTO public.big SELECT i, i % 20 FROM generate_series(1, {rows}) i")


def test_a_never_analysed_table_is_sampled_not_scanned(conn: psycopg.Connection) -> None:
    make_table(conn, 20_000)
    with conn.transaction():
        publish_table(conn, "public.big", None, ROLE)
        scans = conn.execute(
            "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'big'"
        ).fetchone()
    assert scans in (None, (0, None), (0, 0))
    assert nrows(conn, "public.big") == 20_000


def test_the_row_count_is_the_statistics_one(conn: psycopg.Connection) -> None:
    make_table(conn, 1_000)
    conn.execute("ANALYZE public.big")
    conn.execute("INSERT INTO public.big SELECT i, 0 FROM generate_series(1, 500) i")
    table = publish_table(conn, "public.big", None, ROLE)
    assert nrows(conn, "public.big") == 1_000
    assert table.nrows == 1_000
    conn.execute("ANALYZE public.big")
    publish_table(conn, "public.big", None, ROLE)
    assert nrows(conn, "public.big") == 1_500


def test_a_view_has_no_row_count(conn: psycopg.Connection) -> None:
    make_table(conn, 10)
    conn.execute("CREATE VIEW public.bright AS SELECT * FROM public.big WHERE mag < 5")
    publish_table(conn, "public.bright", None, ROLE)
    assert nrows(conn, "public.bright") is None
    assert (
        next(t for t in load_catalog(conn).tables if t.table_name == "public.bright").nrows is None
    )


def test_tap_schema_describes_the_row_count_column(conn: psycopg.Connection) -> None:
    make_table(conn, 10)
    publish_table(conn, "public.big", None, ROLE)
    description, std = conn.execute(
        "SELECT description, std FROM tap_schema.columns"
        " WHERE table_name = 'tap_schema.tables' AND column_name = 'nrows'"
    ).fetchone()  # type: ignore[misc]
    assert "statistics" in description and std == 0
