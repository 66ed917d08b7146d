"""Reading COPY rows straight from libpq: row boundaries survive rows of any size."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tapd.formats.copyout import CopyOut

BIG = 700_000  # larger than the reader's buffer with batch_bytes=1024


def read_all(conn: psycopg.Connection[Any], statement: str, mode: str) -> list[bytes]:
    rows: list[bytes] = []
    for batch in CopyOut(conn, statement, mode=mode, batch_rows=3, batch_bytes=1024).batches():
        ends = batch.row_ends()
        rows += [batch.data[s:e] for s, e in zip(batch.starts, ends, strict=True)]
    return rows


def test_binary_rows_are_the_values_whatever_their_size(conn: psycopg.Connection[Any]) -> None:
    sql = (
        f"COPY (SELECT convert_to(repeat(chr(65 + i), CASE WHEN i = 3 THEN {BIG} ELSE i END),"
        " 'UTF8')"
        " FROM generate_series(0, 7) AS i) TO STDOUT (FORMAT binary)"
    )
    rows = read_all(conn, sql, "binary")
    assert [len(r) for r in rows] == [0, 1, 2, BIG, 4, 5, 6, 7]
    assert rows[3] == b"D" * BIG and rows[7] == b"H" * 7


def test_binary_copy_without_rows_gives_no_batch(conn: psycopg.Connection[Any]) -> None:
    sql = "COPY (SELECT '\\x01'::bytea WHERE false) TO STDOUT (FORMAT binary)"
    assert read_all(conn, sql, "binary") == []


@pytest.mark.parametrize("mode", ["csv", "lines"])
def test_text_rows_longer_than_the_buffer_stay_whole(
    conn: psycopg.Connection[Any], mode: str
) -> None:
    value = f"repeat(E'a\\nb\"', {BIG // 3})" if mode == "csv" else f"repeat('x', {BIG})"
    options = "FORMAT csv" if mode == "csv" else "FORMAT text"
    sql = (
        f"COPY (SELECT i, CASE WHEN i = 2 THEN {value} END FROM generate_series(1, 4) AS i)"
        f" TO STDOUT ({options})"
    )
    rows = read_all(conn, sql, mode)
    assert len(rows) == 4
    assert [r.split(b",")[0].split(b"\t")[0] for r in rows] == [b"1", b"2", b"3", b"4"]
    assert all(r.endswith(b"\n") for r in rows)
    assert len(rows[1]) > BIG


def test_server_error_raises_after_the_rows_before_it(conn: psycopg.Connection[Any]) -> None:
    sql = "COPY (SELECT 1 / (3 - i) FROM generate_series(1, 5) AS i) TO STDOUT"
    copy = CopyOut(conn, sql, mode="lines")
    seen = []
    with pytest.raises(psycopg.errors.DivisionByZero):
        for batch in copy.batches():
            seen.append(batch.values())
    conn.rollback()
    assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("rows", [3, 100_000])
def test_a_copy_left_at_its_last_batch_leaves_the_connection_usable(
    conn: psycopg.Connection[Any], rows: int
) -> None:
    """A writer that fails on the last batch (for a small result, the only one) abandons a
    COPY that libpq has already read to its end: the connection still takes queries."""
    sql = f"COPY (SELECT i FROM generate_series(1, {rows}) AS i) TO STDOUT"
    batches = CopyOut(conn, sql, mode="lines").batches()
    seen = 0
    for batch in batches:
        seen += batch.rows
        if seen == rows:
            batches.close()  # as write_result does when the writer raises
    assert seen == rows
    conn.rollback()
    assert conn.execute("SELECT 2").fetchone() == (2,)


def test_rows_of_a_slow_query_come_as_they_arrive_when_asked(
    conn: psycopg.Connection[Any],
) -> None:
    """With ``stall_seconds``, rows already read do not wait for a full batch
    (a slow query's progress shows); without, they do. (Each row is larger
    than the server's 8 kB send buffer, which it flushes only when full.)"""
    sql = (
        "COPY (SELECT g, repeat('x', 9000) FROM generate_series(1, 4) AS g"
        " CROSS JOIN LATERAL (SELECT pg_sleep(0.7 + 0 * g)) AS pause) TO STDOUT"
    )
    patient = [b.rows for b in CopyOut(conn, sql, mode="lines").batches()]
    eager = [b.rows for b in CopyOut(conn, sql, mode="lines", stall_seconds=0.1).batches()]
    assert patient == [4]
    assert sum(eager) == 4 and len(eager) >= 2
