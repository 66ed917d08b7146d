"""Property: whatever the text, translation gives a clean AdqlError or SQL PostgreSQL accepts.

Hypothesis feeds random token soups built from ADQL's vocabulary and the
sample catalog's names, mutations of valid queries, and arbitrary text. A
crash (any other exception) or translated SQL that PostgreSQL cannot even
plan (syntax errors, unknown tables, columns or functions, missing
privileges) fails the test.
"""

from __future__ import annotations

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapd.adql import AdqlError, translate_adql
from tapd.catalog import Catalog

from .conftest import QUERY_ROLE

SEEDS = [
    "SELECT TOP 5 id, name FROM stars WHERE mag > 12 ORDER BY mag DESC",
    "SELECT s.id, g.note FROM stars AS s JOIN sightings AS g ON s.id = g.star_id WHERE s.ra "
    "BETWEEN 10 AND 20",
    "SELECT flags, COUNT(*) AS n FROM stars GROUP BY flags HAVING COUNT(*) > 2 ORDER BY n",
    "SELECT id FROM stars WHERE 1 = CONTAINS(pos, CIRCLE('ICRS', 20, 0, 5)) AND name LIKE 'star%'",
    "SELECT DISTANCE(pos, POINT(20, 0)) AS d FROM stars WHERE DISTANCE(pos, POINT(20, 0)) < 3",
    "SELECT id FROM stars UNION SELECT star_id FROM sightings ORDER BY 1",
    "WITH w AS (SELECT id, ra FROM stars) SELECT * FROM w WHERE ra IN (10.25, 15.25)",
    "SELECT CAST(id AS VARCHAR(3)) || name, COALESCE(mag, 0), CASE WHEN flags = 1 THEN 'a' ELSE "
    "'b' END FROM stars",
    "SELECT POLYGON(ra, dec, ra + 1, dec, ra, dec + 1), AREA(beam), CENTROID(footprint) FROM stars",
    "SELECT id FROM stars WHERE EXISTS (SELECT 1 FROM sightings WHERE star_id = stars.id) OFFSET 3",
]

VOCABULARY = [
    "SELECT",
    "FROM",
    "WHERE",
    "TOP",
    "1",
    "5",
    "-",
    "+",
    "*",
    "/",
    "(",
    ")",
    ",",
    ".",
    "=",
    "<",
    ">",
    "<>",
    "AND",
    "OR",
    "NOT",
    "IN",
    "BETWEEN",
    "LIKE",
    "IS",
    "NULL",
    "ORDER",
    "BY",
    "GROUP",
    "HAVING",
    "AS",
    "JOIN",
    "ON",
    "USING",
    "UNION",
    "DISTINCT",
    "COUNT",
    "MAX",
    "POINT",
    "CIRCLE",
    "CONTAINS",
    "DISTANCE",
    "stars",
    "sightings",
    "id",
    "ra",
    "dec",
    "pos",
    "name",
    "mag",
    "star_id",
    "beam",
    "'x'",
    "'%'",
    '"Kind"',
    "||",
    "CAST",
    "INTEGER",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "--",
    "\n",
    "EXISTS",
    "OFFSET",
    "WITH",
    "^",
    "&",
    "~",
    "0x1F",
    "1e3",
    "ABS",
    "ROUND",
    "LOWER",
]

#: PostgreSQL errors that mean the translator let through something it must not.
FORBIDDEN = (
    psycopg.errors.SyntaxError,
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedColumn,
    psycopg.errors.UndefinedFunction,
    psycopg.errors.InsufficientPrivilege,
    psycopg.errors.AmbiguousColumn,
)

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def check(conn: psycopg.Connection, catalog: Catalog, text: str) -> None:
    try:
        translation = translate_adql(text, catalog)
    except AdqlError as exc:
        message = str(exc)
        assert message and "\n" not in message
        assert "Traceback" not in message
        return
    try:
        with conn.transaction():
            conn.execute(f"SET LOCAL ROLE {QUERY_ROLE}")
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute("EXPLAIN " + translation.sql, translation.params)
    except FORBIDDEN as exc:
        pytest.fail(
            f"translated SQL was refused by PostgreSQL: {exc}\n"
            f"ADQL: {text!r}\nSQL: {translation.sql}"
        )
    except psycopg.Error:
        pass  # a semantic error PostgreSQL reports (e.g. GROUP BY rules); the runner relays it


@PROPERTY_SETTINGS
@given(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=25))
def test_token_soup_gives_a_clean_error_or_valid_sql(
    sample_conn: psycopg.Connection, catalog: Catalog, tokens: list[str]
) -> None:
    check(sample_conn, catalog, " ".join(tokens))


@PROPERTY_SETTINGS
@given(st.data())
def test_mutated_queries_give_a_clean_error_or_valid_sql(
    sample_conn: psycopg.Connection, catalog: Catalog, data: st.DataObject
) -> None:
    text = data.draw(st.sampled_from(SEEDS))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["delete", "insert", "replace", "token", "long"]))
        if action == "delete":
            text = text[:position] + text[position + data.draw(st.integers(1, 8)) :]
        elif action == "insert":
            text = text[:position] + data.draw(st.text(min_size=1, max_size=3)) + text[position:]
        elif action == "replace":
            text = (
                text[:position]
                + data.draw(st.sampled_from("()'\",.*-+=<>|;"))
                + text[position + 1 :]
            )
        elif action == "long":  # long literals: numbers, hex, exponents, quotes
            unit = data.draw(st.sampled_from(["9", "0x", "1e", "'", '"', "1.5", "-"]))
            text = (
                text[:position]
                + unit * data.draw(st.sampled_from([2, 100, 5000]))
                + text[position:]
            )
        else:
            text = (
                text[:position]
                + " "
                + data.draw(st.sampled_from(VOCABULARY))
                + " "
                + text[position:]
            )
    check(sample_conn, catalog, text)


@PROPERTY_SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_text_gives_a_clean_error_or_valid_sql(
    sample_conn: psycopg.Connection, catalog: Catalog, text: str
) -> None:
    check(sample_conn, catalog, text)
