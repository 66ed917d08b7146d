"""A writer tells how far it has got (``progress``): what a running job's users see."""

from __future__ import annotations

import io
from typing import Any

import psycopg
import pytest

from tapd.columns import ColumnMeta
from tapd.formats import resolve_format, results, write_result

COLUMNS = [ColumnMeta("g", "int")]
#: Rows that come slowly, each larger than the server's 8 kB send buffer (which
#: it flushes only when full): the client can see each as it comes.
SLOW = (
    "SELECT g, repeat('x', 9000) AS pad FROM generate_series(1, 4) AS g"
    " CROSS JOIN LATERAL (SELECT pg_sleep(0.7 + 0 * g)) AS pause"
)
SLOW_COLUMNS = [ColumnMeta("g", "int"), ColumnMeta("pad", "char", "*")]


def written(
    conn: psycopg.Connection[Any], sql: str, fmt: str, columns: list[ColumnMeta] = COLUMNS
) -> tuple[list[Any], bytes, int]:
    calls: list[tuple[int, int]] = []
    out = io.BytesIO()
    with conn.transaction():
        summary = write_result(
            conn,
            sql,
            [],
            columns,
            resolve_format(fmt),
            out,
            maxrec=None,
            batch_rows=10000,
            progress=lambda rows, size: calls.append((rows, size)),
        )
    return calls, out.getvalue(), summary.rows


@pytest.mark.parametrize(
    ("fmt", "streams"),
    [("csv", True), ("votable", True), ("fits", False)],  # FITS writes its data at the end
)
def test_progress_counts_rows_and_bytes_after_each_batch(
    conn: psycopg.Connection[Any], fmt: str, streams: bool
) -> None:
    calls, output, rows = written(conn, "SELECT g FROM generate_series(1, 25000) AS g", fmt)
    assert [r for r, _ in calls] == [10000, 20000, 25000] == [10000, 20000, rows]
    sizes = [size for _, size in calls]
    assert sizes == sorted(sizes) and sizes[-1] <= len(output)
    assert (sizes[0] > 0) is streams


def test_a_slow_querys_progress_shows_before_it_ends(
    conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(results, "PROGRESS_STALL", 0.1)
    calls, _, rows = written(conn, SLOW, "csv", SLOW_COLUMNS)
    assert rows == 4
    assert len(calls) >= 2 and calls[0][0] < 4  # told before the last row came
