"""VOTable output validates with STILTS votlint and reads back right with STILTS (VOT-01..27)."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tapd.columns import ColumnMeta
from tapd.formats import write_error_document
from tests.formats.conftest import GEOMETRY, METAS, run_writer

pytestmark = pytest.mark.skipif(shutil.which("stilts") is None, reason="stilts is not installed")


def stilts(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["stilts", *args], capture_output=True, text=True, timeout=120)


#: votlint 3.4-7 complaints that are not ours: STILTS writes the same empty TD for a
#: NULL array itself (and VOTable 1.3+ makes an empty TD NULL for every datatype).
VOTLINT_FALSE_ALARMS = ("Bad double string ''", 'suppressing more messages like "Bad double')

#: votlint 3.4-7 misreads BINARY/BINARY2 polygons (xtype polygon) and loses the stream,
#: though STILTS itself reads them right (see the polygon test below).
POLYGONS = ("poly", "box")


def votlint(data: bytes, path: Path) -> list[str]:
    path.write_bytes(data)
    report = stilts("votlint", "validate=true", f"votable={path}")
    assert report.returncode == 0, report.stderr
    lines = (report.stdout + report.stderr).strip().splitlines()
    return [line for line in lines if not any(alarm in line for alarm in VOTLINT_FALSE_ALARMS)]


@pytest.mark.parametrize("fmt", ["votable", "votable/b", "votable/td"])
def test_votlint_finds_nothing_wrong(
    conn: psycopg.Connection[Any], fmt: str, tmp_path: Path
) -> None:
    """(VOT-01, VOT-03, VOT-06, VOT-21, VOT-22)"""
    columns = [meta for meta in METAS if fmt == "votable/td" or meta.name not in POLYGONS]
    sql = f"SELECT {', '.join(meta.name for meta in columns)} FROM everything ORDER BY id"
    data, _ = run_writer(conn, fmt, sql=sql, columns=columns, infos={"QUERY": "SELECT\n*"})
    assert votlint(data, tmp_path / "result.xml") == []


def test_votlint_accepts_error_documents(tmp_path: Path) -> None:
    """(TAP-50)"""
    out = io.BytesIO()
    write_error_document(out, "no such table: x", infos={"QUERY": "SELECT * FROM x"})
    assert votlint(out.getvalue(), tmp_path / "error.xml") == []


def test_stilts_reads_binary2_polygons(conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    columns = [meta for meta in METAS if meta.name in ("id", *POLYGONS)]
    data, _ = run_writer(
        conn, "votable", sql="SELECT id, poly, box FROM everything ORDER BY id", columns=columns
    )
    path = tmp_path / "polygons.xml"
    path.write_bytes(data)
    result = stilts("tpipe", f"in={path}", "ofmt=csv")
    assert result.returncode == 0, result.stderr
    first = next(csv.reader(io.StringIO(result.stdout.splitlines()[1])))
    assert [float(v) for v in first[1].strip("()").split(",")] == pytest.approx(GEOMETRY[1]["poly"])
    assert [float(v) for v in first[2].strip("()").split(",")] == pytest.approx(GEOMETRY[1]["box"])


def test_stilts_reads_binary2_nulls_of_every_type(
    conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    """astropy ignores null flags on strings; STILTS honours them (VOT-24).

    (STILTS also counts empty strings and arrays as NULL, so the values are not empty.)
    A unicodeChar column keeps non-ASCII text (VOT-20).
    """
    columns = [
        ColumnMeta("i", "int"),
        ColumnMeta("t", "char", "*"),
        ColumnMeta("u", "unicodeChar", "*"),
        ColumnMeta("f", "boolean"),
        ColumnMeta("a", "double", "*"),
        ColumnMeta("p", "double", "2", "point"),
    ]
    sql = (
        "SELECT NULL::int, NULL::text, NULL::text, NULL::boolean, NULL::float8[], NULL::float8[]"
        " UNION ALL SELECT 1, 'x', 'caf\u00e9', true, '{3}', '{1,2}'"
    )
    data, _ = run_writer(conn, "votable", sql=sql, columns=columns)
    path = tmp_path / "nulls.xml"
    path.write_bytes(data)
    expression = "; ".join(f"addcol null_{c.name} NULL_{c.name}" for c in columns)
    result = stilts("tpipe", f"in={path}", f"cmd={expression}; keepcols null_*", "ofmt=csv")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[1] == ",".join(["true"] * len(columns))
    assert lines[2] == ",".join(["false"] * len(columns))
    text = stilts("tpipe", f"in={path}", "cmd=keepcols u", "ofmt=csv")
    assert text.stdout.strip().splitlines()[2] == "caf\u00e9"
