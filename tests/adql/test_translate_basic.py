"""translate_adql end to end: the SQL runs and returns what the ADQL asked for."""

from __future__ import annotations

import psycopg
import pytest

from tapd.adql import AdqlNameError, translate_adql
from tapd.catalog import Catalog


def run(conn: psycopg.Connection, catalog: Catalog, adql: str, **kwargs: object) -> list[tuple]:
    translation = translate_adql(adql, catalog, **kwargs)  # type: ignore[arg-type]
    return conn.execute(translation.sql, translation.params).fetchall()


def test_top_where_and_order_by_return_the_right_rows(
    sample_conn: psycopg.Connection, catalog: Catalog
) -> None:
    rows = run(
        sample_conn,
        catalog,
        "SELECT TOP 3 id, name FROM stars WHERE ra > 30 AND mag IS NOT NULL ORDER BY id DESC",
    )
    expected = sample_conn.execute(
        "SELECT id, name FROM stars WHERE ra > 30 AND mag IS NOT NULL ORDER BY id DESC LIMIT 3"
    ).fetchall()
    assert rows == expected


def test_select_star_columns_carry_tap_schema_metadata(catalog: Catalog) -> None:
    translation = translate_adql("SELECT * FROM public.stars", catalog)
    table = next(t for t in catalog.tables if t.table_name == "public.stars")
    assert translation.columns == tuple(c.meta for c in table.columns)


def test_cross_join_of_published_tables_runs(
    sample_conn: psycopg.Connection, catalog: Catalog
) -> None:
    rows = run(sample_conn, catalog, "SELECT COUNT(*) FROM stars AS a, stars AS b, sightings AS c")
    assert rows == [(40 * 40 * 60,)]


def test_limit_caps_rows_below_top(sample_conn: psycopg.Connection, catalog: Catalog) -> None:
    assert len(run(sample_conn, catalog, "SELECT TOP 10 id FROM stars", limit=4)) == 4
    assert len(run(sample_conn, catalog, "SELECT TOP 2 id FROM stars", limit=4)) == 2
    assert len(run(sample_conn, catalog, "SELECT id FROM stars", limit=5)) == 5


def test_unknown_table_is_a_name_error_with_position(catalog: Catalog) -> None:
    with pytest.raises(
        AdqlNameError, match=r"line 1, column 15: there is no published table nosuch"
    ):
        translate_adql("SELECT x FROM nosuch", catalog)
