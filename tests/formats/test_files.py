"""Result files: written whole to the caller's temporary name and fsynced, or
not there at all (the runner renames them into place inside its ending)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import psycopg
import pytest
from astropy.io import votable

from tapd.columns import ColumnMeta
from tapd.formats import resolve_format, stage_result_file

ID = [ColumnMeta("id", "int")]


def test_a_staged_result_is_complete_and_says_its_final_name(
    conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    staged = tmp_path / ".tmp-result.xml.attempt-1"
    result = stage_result_file(
        conn,
        "SELECT id FROM numbers ORDER BY id",
        None,
        ID,
        resolve_format("votable"),
        staged,
        maxrec=10,
        infos={"QUERY": "SELECT id FROM numbers"},
    )
    assert result.filename == "result.xml"
    assert result.mime_type == "application/x-votable+xml"
    assert (result.rows, result.overflow) == (10, True)
    assert staged.stat().st_size == result.size
    assert len(votable.parse(io.BytesIO(staged.read_bytes())).get_first_table().array) == 10
    assert [p.name for p in tmp_path.iterdir()] == [staged.name]


@pytest.mark.parametrize(
    ("name", "filename"),
    [
        ("csv", "result.csv"),
        ("text/csv", "result.csv"),
        ("fits", "result.fits"),
        ("json", "result.json"),
    ],
)
def test_result_file_name_and_type_follow_the_requested_format(
    conn: psycopg.Connection[Any], tmp_path: Path, name: str, filename: str
) -> None:
    fmt = resolve_format(name)
    staged = tmp_path / "staged"
    result = stage_result_file(conn, "SELECT id FROM numbers", None, ID, fmt, staged, maxrec=100)
    assert result.filename == filename and result.mime_type == fmt.mime_type
    assert staged.stat().st_size == result.size


def test_failed_query_leaves_no_file_behind(conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    sql = "SELECT i / (i - 30000) AS id FROM generate_series(1, 40000) AS i"
    with pytest.raises(psycopg.errors.DivisionByZero):
        stage_result_file(
            conn, sql, None, ID, resolve_format("votable"), tmp_path / "staged", maxrec=None
        )
    assert list(tmp_path.iterdir()) == []
