"""Result files: written under a temporary name, fsynced, renamed; never half there."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import psycopg
import pytest
from astropy.io import votable

from tapd.columns import ColumnMeta
from tapd.formats import resolve_format, write_result_file

ID = [ColumnMeta("id", "int")]


def test_result_file_is_complete_under_its_final_name(
    conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    result = write_result_file(
        conn,
        "SELECT id FROM numbers ORDER BY id",
        None,
        ID,
        resolve_format("votable"),
        tmp_path,
        maxrec=10,
        infos={"QUERY": "SELECT id FROM numbers"},
    )
    assert result.filename == "result.xml"
    assert result.mime_type == "application/x-votable+xml"
    assert (result.rows, result.overflow) == (10, True)
    path = tmp_path / result.filename
    assert path.stat().st_size == result.size
    assert len(votable.parse(io.BytesIO(path.read_bytes())).get_first_table().array) == 10
    assert [p.name for p in tmp_path.iterdir()] == ["result.xml"]


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
    result = write_result_file(conn, "SELECT id FROM numbers", None, ID, fmt, tmp_path, maxrec=100)
    assert result.filename == filename and result.mime_type == fmt.mime_type
    assert (tmp_path / filename).stat().st_size == result.size


def test_failed_query_leaves_no_file_behind(conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    sql = "SELECT i / (i - 30000) AS id FROM generate_series(1, 40000) AS i"
    with pytest.raises(psycopg.errors.DivisionByZero):
        write_result_file(conn, sql, None, ID, resolve_format("votable"), tmp_path, maxrec=None)
    assert list(tmp_path.iterdir()) == []


def test_a_new_result_replaces_an_old_one_whole(
    conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    (tmp_path / "result.csv").write_text("old\n")
    result = write_result_file(
        conn,
        "SELECT id FROM numbers ORDER BY id",
        None,
        ID,
        resolve_format("csv"),
        tmp_path,
        maxrec=2,
    )
    assert (tmp_path / "result.csv").read_text() == "id\n1\n2\n"
    assert result.size == len("id\n1\n2\n")
