"""Uploaded tables give the planner what it needs to join them well.

A temporary table is never analysed by autovacuum: without an ANALYZE of its
own, PostgreSQL plans a join with an uploaded table on a guess of its size and
of every column's distribution (issue 15).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tapd.uploads import UploadLimits, load_uploads

ROWS = 3000


def positions_votable(rows: int) -> bytes:
    cells = "".join(
        f"<TR><TD>{i}</TD><TD>{(i * 0.01) % 360!r}</TD><TD>{(i % 170) - 85}</TD></TR>"
        for i in range(1, rows + 1)
    )
    return f"""<?xml version="1.0"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>
<FIELD name="id" datatype="int"/>
<FIELD name="ra" datatype="double" unit="deg" ucd="pos.eq.ra;meta.main"/>
<FIELD name="dec" datatype="double" unit="deg" ucd="pos.eq.dec;meta.main"/>
<DATA><TABLEDATA>{cells}</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>""".encode()


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


def upload(conn: psycopg.Connection[Any], tmp_path: Path, rows: int) -> str:
    (tmp_path / "part").write_bytes(positions_votable(rows))
    with conn.transaction():
        (table,) = load_uploads(
            conn,
            ["pts,param:part"],
            resolve_part=lambda part: tmp_path / part,
            limits=UploadLimits(max_bytes=10**8, max_rows=10**6),
            query_role=None,
        )
    return f"pg_temp.{table.sql_table}"


def estimated_rows(conn: psycopg.Connection[Any], query: str) -> int:
    plan = conn.execute("EXPLAIN (FORMAT JSON) " + query).fetchone()[0]  # type: ignore[index]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def test_the_planner_knows_how_many_rows_an_upload_has(
    conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    table = upload(conn, tmp_path, ROWS)
    assert estimated_rows(conn, f"SELECT * FROM {table}") == ROWS


def test_the_planner_knows_how_an_uploaded_column_is_distributed(
    conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    table = upload(conn, tmp_path, ROWS)
    # without statistics a range condition is guessed to keep a third of the rows
    assert 15 <= estimated_rows(conn, f"SELECT * FROM {table} WHERE id <= 30") <= 60
