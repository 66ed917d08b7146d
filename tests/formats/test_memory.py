"""Constant memory: a writer's peak RSS for 10,000,000 rows is within 20% of that for 100,000."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Writes N rows shaped like the benchmark's to /dev/null in a fresh process; prints peak RSS (KiB).
WRITER = """
import resource, sys, psycopg
from tapd.columns import ColumnMeta
from tapd.formats import resolve_format, write_result
dsn, fmt, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
columns = [ColumnMeta("id", "long"), ColumnMeta("ra", "double"), ColumnMeta("dec", "double"),
           ColumnMeta("mag", "float"), ColumnMeta("name", "char", "*")]
# two small series crossed: PostgreSQL streams the rows instead of materialising a huge series
sql = ("SELECT i::bigint, i * 1e-5, -i * 1e-5, mod(i, 20)::real, 'star ' || i"
       " FROM (SELECT (a - 1) * 1000 + b AS i FROM generate_series(1, %s) AS a,"
       " generate_series(1, 1000) AS b) AS s")
with psycopg.connect(dsn) as conn, open("/dev/null", "wb") as out:
    fmt = resolve_format(fmt)
    summary = write_result(conn, sql, [rows // 1000], columns, fmt, out, maxrec=rows)
    assert summary.rows == rows, summary
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_kib(dsn: str, fmt: str, rows: int) -> int:
    done = subprocess.run(
        [sys.executable, "-c", WRITER, dsn, fmt, str(rows)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["votable"])
def test_peak_memory_does_not_grow_with_the_number_of_rows(dsn: str, fmt: str) -> None:
    small = peak_rss_kib(dsn, fmt, 100_000)
    large = peak_rss_kib(dsn, fmt, 10_000_000)
    print(f"peak RSS of the {fmt} writer: {small} KiB for 1e5 rows, {large} KiB for 1e7 rows")
    assert large <= small * 1.2, f"{fmt}: {small} KiB for 1e5 rows, {large} KiB for 1e7 rows"
