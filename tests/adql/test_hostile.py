"""Hostile input is harmless: refused with a clear message, or translated into harmless SQL."""

from __future__ import annotations

import time

import psycopg
import pytest

from tapd.adql import AdqlError, translate_adql
from tapd.catalog import Catalog

from .conftest import QUERY_ROLE


def run_as_query_role(conn: psycopg.Connection, catalog: Catalog, adql: str) -> list[tuple]:
    translation = translate_adql(adql, catalog)
    with conn.transaction():
        conn.execute(f"SET LOCAL ROLE {QUERY_ROLE}")
        conn.execute("SET TRANSACTION READ ONLY")
        cursor = conn.execute(translation.sql, translation.params)
        return cursor.fetchall()


@pytest.mark.parametrize(
    ("adql", "message"),
    [
        ("SELECT id FROM stars; DROP TABLE stars", "unexpected ';'"),
        ("SELECT id FROM stars;", "unexpected ';'"),
        ("SELECT id FROM stars /* ; DROP TABLE stars */", "no /* ... */ comments"),
        ("SELECT pg_sleep(100) FROM stars", "unknown function PG_SLEEP"),
        ("SELECT id FROM stars WHERE pg_sleep(100) IS NULL", "unknown function PG_SLEEP"),
        ("SELECT pg_read_file('/etc/passwd') FROM stars", "unknown function PG_READ_FILE"),
        ("SELECT dblink('host=x', 'DROP TABLE stars') FROM stars", "unknown function DBLINK"),
        ("SELECT current_setting('data_directory') FROM stars", "unknown function CURRENT_SETTING"),
        ("SELECT set_config('role', 'postgres', false) FROM stars", "unknown function SET_CONFIG"),
        ("SELECT lo_import('/etc/passwd') FROM stars", "unknown function LO_IMPORT"),
        ("SELECT * FROM pg_catalog.pg_authid", "there is no published table pg_catalog.pg_authid"),
        ("SELECT * FROM pg_user", "there is no published table pg_user"),
        (
            "SELECT * FROM information_schema.tables",
            "there is no published table information_schema.tables",
        ),
        ("SELECT * FROM tapd.jobs", "there is no published table tapd.jobs"),
        ("SELECT * FROM jobs", "there is no published table jobs"),
        ("SELECT * FROM pg_temp.anything", "there is no published table pg_temp.anything"),
        ("SELECT CAST(id AS regclass) FROM stars", "cannot CAST to regclass"),
        ("SELECT id::text FROM stars", "unexpected character ':'"),
        ("SELECT id FROM stars WHERE name = $$x$$", "unexpected character '$'"),
        ("SELECT id FROM stars WHERE name = E'\\x27'", "expected"),
        ("SELECT id FROM ONLY stars", "ONLY is a reserved word"),
        ('SELECT "a""; DROP TABLE stars; --" FROM stars', "there is no column"),
        ('SELECT id FROM stars AS "x" WHERE "x"."id;DROP TABLE stars" = 1', "has no column"),
        ('SELECT name COLLATE "C" FROM stars', "COLLATE is a reserved word"),
        ("SELECT id FROM stars FOR UPDATE", "FOR is a reserved word"),
        ("SELECT id FROM stars INTO evil", "INTO is a reserved word"),
        ("SELECT 'a\x00b' FROM stars", "NUL"),
        ("SELECT TOP " + "9" * 5000 + " id FROM stars", "TOP takes at most 9223372036854775807"),
        ("SELECT id FROM stars OFFSET 99999999999999999999", "OFFSET takes at most"),
        ("SELECT " + "9" * 5000 + " FROM stars", "at most 100 characters"),
        ("SELECT 0x" + "f" * 5000 + " FROM stars", "at most 64 bits"),
        ("SELECT CAST(name AS CHAR(99999999999)) FROM stars", "CHAR takes at most 10485760"),
        ("SELECT CAST('1e999 2' AS POINT) FROM stars", "not a finite number"),
        ("SELECT REGION('Circle 1 2 nan') FROM stars", "not a finite number"),
    ],
)
def test_hostile_query_is_refused(catalog: Catalog, adql: str, message: str) -> None:
    with pytest.raises(AdqlError) as info:
        translate_adql(adql, catalog)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_comment_hiding_sql_is_only_a_comment(
    sample_conn: psycopg.Connection, catalog: Catalog
) -> None:
    adql = "SELECT COUNT(*) FROM stars -- ; DROP TABLE stars\n"
    translation = translate_adql(adql, catalog)
    assert "DROP" not in translation.sql
    assert run_as_query_role(sample_conn, catalog, adql) == [(40,)]


def test_quotes_inside_strings_stay_data(sample_conn: psycopg.Connection, catalog: Catalog) -> None:
    adql = "SELECT id FROM stars WHERE name = 'x''; DROP TABLE stars; --'"
    translation = translate_adql(adql, catalog)
    assert "DROP" not in translation.sql
    assert translation.params == ["x'; DROP TABLE stars; --"]
    assert run_as_query_role(sample_conn, catalog, adql) == []
    assert sample_conn.execute("SELECT count(*) FROM stars").fetchone() == (40,)


def test_backslashes_in_strings_are_literal(
    sample_conn: psycopg.Connection, catalog: Catalog
) -> None:
    rows = run_as_query_role(sample_conn, catalog, "SELECT 'a\\' || 'b\\n' FROM stars WHERE id = 0")
    assert rows == [("a\\b\\n",)]


def test_quotes_and_percent_inside_aliases_stay_names(
    sample_conn: psycopg.Connection, catalog: Catalog
) -> None:
    adql = 'SELECT id AS "x""; DROP TABLE stars; --", name AS "100%" FROM stars WHERE id = 1'
    translation = translate_adql(adql, catalog)
    with sample_conn.cursor() as cursor:
        cursor.execute(translation.sql, translation.params)
        assert [d.name for d in cursor.description] == ['x"; DROP TABLE stars; --', "100%"]
    assert [c.name for c in translation.columns] == ['x"; DROP TABLE stars; --', "100%"]


def test_very_long_names_do_not_collide(sample_conn: psycopg.Connection, catalog: Catalog) -> None:
    long = "a" * 70
    adql = f'SELECT id AS "{long}x", name AS "{long}y" FROM stars AS "{long}" WHERE "{long}".id = 1'
    translation = translate_adql(adql, catalog)
    assert [c.name for c in translation.columns] == [f"{long}x", f"{long}y"]
    assert sample_conn.execute(translation.sql, translation.params).fetchall() == [(1, "star 1")]


def test_published_tables_are_all_the_query_role_can_read(
    sample_conn: psycopg.Connection, catalog: Catalog
) -> None:
    sample_conn.execute("CREATE SCHEMA IF NOT EXISTS tapd")
    sample_conn.execute("CREATE TABLE IF NOT EXISTS tapd.jobs (secret text)")
    with pytest.raises(AdqlError, match=r"no published table tapd\.jobs"):
        translate_adql("SELECT secret FROM tapd.jobs", catalog)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), sample_conn.transaction():
        sample_conn.execute(f"SET LOCAL ROLE {QUERY_ROLE}")
        sample_conn.execute("SELECT * FROM tapd.jobs")


@pytest.mark.parametrize(
    "adql",
    [
        "SELECT id FROM stars WHERE id IN (" + ", ".join(str(i) for i in range(15000)) + ")",
        "SELECT id FROM stars WHERE " + " OR ".join(f"id = {i}" for i in range(5000)),
        "SELECT " + " + ".join(["id"] * 1000) + " FROM stars",
        "SELECT " + ", ".join(["id"] * 1664) + " FROM stars",
        "SELECT " + "ABS(" * 90 + "id" + ")" * 90 + " FROM stars",
        "SELECT id FROM stars WHERE name IN (" + ", ".join(["'x'"] * 10000) + ")",
    ],
    ids=["in-list", "or-chain", "long-sum", "many-columns", "nested-functions", "string-list"],
)
def test_big_queries_translate_and_run_in_bounded_time(
    sample_conn: psycopg.Connection, catalog: Catalog, adql: str
) -> None:
    started = time.monotonic()
    run_as_query_role(sample_conn, catalog, adql)
    # generous bound: a hang or quadratic blow-up takes minutes, not seconds
    assert time.monotonic() - started < 60


def test_too_long_or_too_deep_queries_are_refused_quickly(catalog: Catalog) -> None:
    for adql in (
        "SELECT id FROM stars WHERE id IN (" + "1, " * 60000 + "1)",
        "SELECT " + "ABS(" * 200 + "id" + ")" * 200 + " FROM stars",
        "SELECT id FROM stars WHERE " + "NOT " * 300 + "id = 1",
        "SELECT id FROM stars WHERE id IN "
        + "(SELECT id FROM stars WHERE id IN " * 60
        + "(1)"
        + ")" * 60,
        "SELECT " + " + ".join(["id"] * 1001) + " FROM stars",
        "SELECT " + ", ".join(["id"] * 1665) + " FROM stars",
    ):
        with pytest.raises(
            AdqlError, match=r"too long|nested too deeply|more than 1000 operands|1665 columns"
        ):
            translate_adql(adql, catalog)
