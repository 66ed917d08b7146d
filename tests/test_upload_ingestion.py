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


EDGE_VOTABLE = """<?xml version="1.0"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>
<FIELD name="n" datatype="int"/>
<FIELD name="x" datatype="double"/>
<FIELD name="f" datatype="float"/>
<FIELD name="big" datatype="long"/>
<FIELD name="small" datatype="unsignedByte"/>
<FIELD name="ok" datatype="boolean"/>
<FIELD name="label" datatype="unicodeChar" arraysize="*"/>
<DATA><TABLEDATA>
<TR><TD>1</TD><TD>0.1</TD><TD>0.1</TD><TD>9223372036854775807</TD><TD>255</TD><TD>T</TD>
<TD>tab\there, line
break, back\\slash, "quoted", étoile</TD></TR>
<TR><TD>2</TD><TD>NaN</TD><TD>1e-40</TD><TD>-9223372036854775808</TD><TD>0</TD><TD>F</TD>
<TD></TD></TR>
<TR><TD/><TD>-Inf</TD><TD>3.4028235e38</TD><TD/><TD/><TD/><TD>\\N</TD></TR>
<TR><TD>4</TD><TD>1e-300</TD><TD>-0.0</TD><TD>0</TD><TD>7</TD><TD>?</TD><TD>x</TD></TR>
</TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>"""


def test_every_value_is_stored_exactly(conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    (tmp_path / "part").write_text(EDGE_VOTABLE)
    with conn.transaction():
        (table,) = load_uploads(
            conn,
            ["edge,param:part"],
            resolve_part=lambda part: tmp_path / part,
            limits=UploadLimits(max_bytes=10**6, max_rows=100),
            query_role=None,
        )
    rows = conn.execute(
        f"SELECT n, x, f, big, small, ok, label FROM pg_temp.{table.sql_table}"
    ).fetchall()
    by_x = {row[1]: row for row in rows}
    assert by_x[0.1] == (
        1,
        0.1,
        pytest.approx(0.1, rel=1e-7),
        2**63 - 1,
        255,
        True,
        'tab\there, line\nbreak, back\\slash, "quoted", étoile',
    )
    assert by_x[float("-inf")] == (
        None,
        float("-inf"),
        pytest.approx(3.4028235e38),
        None,
        None,
        None,
        "\\N",
    )
    assert by_x[1e-300] == (4, 1e-300, 0.0, 0, 7, None, "x")
    nan_row = next(row for row in rows if row[1] is None)  # NaN is stored as NULL
    assert nan_row == (2, None, pytest.approx(1e-40), -(2**63), 0, False, None)
    single = conn.execute(f"SELECT f::text FROM pg_temp.{table.sql_table} WHERE n = 1").fetchone()
    assert single == ("0.1",)  # the float32 nearest 0.1, not a float64 widened from it


def test_two_large_uploads_crossmatched_probe_an_index(
    conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    """Two uploads joined on position: without an index on one of them every row of
    one would be compared with every row of the other (10^8 pairs here)."""
    from tapd.adql import translate_adql
    from tapd.catalog import Catalog

    (tmp_path / "a").write_bytes(positions_votable(10_000))
    (tmp_path / "b").write_bytes(positions_votable(10_000))
    with conn.transaction():
        tables = load_uploads(
            conn,
            ["a,param:a", "b,param:b"],
            resolve_part=lambda part: tmp_path / part,
            limits=UploadLimits(max_bytes=10**8, max_rows=10**6),
            query_role=None,
        )
    translation = translate_adql(
        "SELECT a.id, b.id FROM TAP_UPLOAD.a AS a JOIN TAP_UPLOAD.b AS b"
        " ON 1 = CONTAINS(POINT(a.ra, a.dec), CIRCLE(b.ra, b.dec, 0.001))",
        Catalog(tables=()).with_uploads(tables),
    )
    plan = "\n".join(
        row[0] for row in conn.execute("EXPLAIN " + translation.sql, translation.params)
    )
    assert "Index Scan" in plan, plan


def test_a_single_upload_gets_no_index(conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    """Joined with a catalog, the catalog's index serves the crossmatch (the translator puts
    the catalog's position left of <@): building one on the upload would be wasted."""
    table = upload(conn, tmp_path, 12_000)
    indexes = conn.execute(
        "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass", [table]
    ).fetchone()
    assert indexes == (0,)
