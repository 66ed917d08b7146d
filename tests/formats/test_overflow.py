"""MAXREC: OVERFLOW exactly when rows were dropped, in every format (TAP-60..62)."""

from __future__ import annotations

import io
import json
import warnings
from typing import Any

import psycopg
import pytest
from astropy.io import fits, votable
from lxml import etree

from tapd.columns import ColumnMeta
from tapd.formats import available_formats
from tests.formats.conftest import run_writer

ROWS = 25  # the table ``numbers`` holds ids 1..25
ID = [ColumnMeta("id", "int")]
QUERY = "SELECT id FROM numbers ORDER BY id"
FORMATS = [fmt.key for fmt in available_formats()]


def count_rows(fmt: str, data: bytes) -> int:
    if fmt.startswith("votable"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return len(votable.parse(io.BytesIO(data)).get_first_table().array)
    if fmt == "csv" or fmt == "tsv":
        return len(data.decode().splitlines()) - 1
    if fmt == "json":
        return len(json.loads(data)["data"])
    if fmt == "html":
        return data.count(b"<tr><td>")
    if fmt == "fits":
        return len(fits.open(io.BytesIO(data))[1].data)
    import pyarrow.parquet as pq

    return int(pq.read_table(io.BytesIO(data)).num_rows)


def status_infos(data: bytes) -> list[tuple[str, str]]:
    """(position, value) of each QUERY_STATUS INFO: before or after the TABLE."""
    root = etree.fromstring(data)
    resource = root.find("{*}RESOURCE")
    assert resource is not None and resource.get("type") == "results"
    found = []
    seen_table = False
    for child in resource:
        if etree.QName(child).localname == "TABLE":
            seen_table = True
        elif child.get("name") == "QUERY_STATUS":
            found.append(("after" if seen_table else "before", child.get("value")))
    return found


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("maxrec", "rows", "overflow"),
    [(ROWS - 1, ROWS - 1, True), (ROWS, ROWS, False), (ROWS + 1, ROWS, False), (0, 0, True)],
)
def test_overflow_exactly_when_maxrec_dropped_rows(
    conn: psycopg.Connection[Any], fmt: str, maxrec: int, rows: int, overflow: bool
) -> None:
    """(TAP-15, TAP-60, TAP-61, TAP-62, VOT-02)"""
    data, summary = run_writer(conn, fmt, sql=QUERY, columns=ID, maxrec=maxrec)
    assert (summary.rows, summary.overflow) == (rows, overflow)
    assert count_rows(fmt, data) == rows
    if fmt.startswith("votable"):
        expected = [("before", "OK")] + ([("after", "OVERFLOW")] if overflow else [])
        assert status_infos(data) == expected
    if fmt == "json":
        assert json.loads(data)["status"] == ("OVERFLOW" if overflow else "OK")


def test_maxrec_caps_a_query_without_a_limit_of_its_own(conn: psycopg.Connection[Any]) -> None:
    _data, summary = run_writer(
        conn, "votable", sql="SELECT i FROM generate_series(1, 1000000) AS i", columns=ID, maxrec=3
    )
    assert (summary.rows, summary.overflow) == (3, True)


def test_no_maxrec_writes_every_row(conn: psycopg.Connection[Any]) -> None:
    _, summary = run_writer(conn, "csv", sql=QUERY, columns=ID, maxrec=None)
    assert (summary.rows, summary.overflow) == (ROWS, False)


def test_overflow_with_rows_in_several_batches(conn: psycopg.Connection[Any]) -> None:
    out = io.BytesIO()
    from tapd.formats import resolve_format, write_result

    summary = write_result(
        conn, QUERY, None, ID, resolve_format("votable"), out, maxrec=ROWS - 2, batch_rows=4
    )
    assert (summary.rows, summary.overflow) == (ROWS - 2, True)
    table = votable.parse(io.BytesIO(out.getvalue())).get_first_table()
    assert list(table.array["id"]) == list(range(1, ROWS - 1))


WIDE = 150  # beyond PostgreSQL's 100 function arguments, 19 bytes of BINARY2 null flags


@pytest.mark.parametrize("fmt", FORMATS)
def test_wide_results_keep_every_column_and_null(conn: psycopg.Connection[Any], fmt: str) -> None:
    columns = [ColumnMeta(f"c{i}", "int") for i in range(WIDE)]
    values = ", ".join(
        f"CASE WHEN id % {i % 7 + 2} = 0 THEN NULL ELSE id * {i} END" for i in range(WIDE)
    )
    sql = f"SELECT {values} FROM numbers ORDER BY id".replace("%", "%%")
    data, summary = run_writer(conn, fmt, sql=sql, params=(), columns=columns, maxrec=100)
    assert summary.rows == ROWS and count_rows(fmt, data) == ROWS
    if fmt == "json":
        rows = json.loads(data)["data"]
    elif fmt.startswith("votable"):
        table = votable.parse(io.BytesIO(data)).get_first_table().array
        rows = [
            [None if table[c.name].mask[r] else int(table[c.name][r]) for c in columns]
            for r in range(ROWS)
        ]
    else:
        return
    for r, row in enumerate(rows):
        row_id = r + 1
        expected = [None if row_id % (i % 7 + 2) == 0 else row_id * i for i in range(WIDE)]
        assert row == expected, f"row {row_id}"
