"""Describing a result's columns costs a parse, not a plan of the query.

Writers learn the PostgreSQL types of the result columns before the COPY. A
query over 20 million rows (an aggregate, a crossmatch) has a plan costly
enough for PostgreSQL to JIT-compile it and set up parallel workers: doing
that once more just to learn the column types cost 0.4 to 1 s per query
(issue 15). The describing statement must be one the planner answers
without planning the user's query at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tapd.formats.query import describe_statement


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE big AS SELECT i, i * 0.5 AS x FROM generate_series(1, 1000) i"
        )
        connection.execute("ANALYZE big")
        yield connection


QUERIES = [
    "SELECT floor(x) AS bin, count(*) AS n FROM big GROUP BY floor(x) LIMIT 10000001",
    "SELECT a.i, b.i FROM big AS a JOIN big AS b ON a.x < b.x ORDER BY 1 LIMIT 5",
    "WITH m AS (SELECT i FROM big) SELECT * FROM m UNION SELECT i + 1 FROM big",
    "SELECT (SELECT max(i) FROM big) AS top, x FROM big WHERE i > 3;",
]


@pytest.mark.parametrize("query", QUERIES)
def test_the_describing_statement_plans_no_scan(conn: psycopg.Connection[Any], query: str) -> None:
    plan = [row[0] for row in conn.execute("EXPLAIN " + describe_statement(query))]
    assert len(plan) == 2 and plan[0].startswith("Result"), plan
    assert "One-Time Filter: false" in plan[1], plan


@pytest.mark.parametrize("query", QUERIES)
def test_the_describing_statement_has_the_query_s_columns(
    conn: psycopg.Connection[Any], query: str
) -> None:
    described = conn.execute(describe_statement(query))
    ran = conn.execute(query.rstrip(";"))
    assert described.fetchall() == []
    assert [(c.name, c.type_code) for c in described.description or ()] == [
        (c.name, c.type_code) for c in ran.description or ()
    ]
