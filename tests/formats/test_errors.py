"""Errors: before output nothing is written; after, the document ends with an ERROR status
(TAP-53, one document), the error is re-raised, and the connection stays usable."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import psycopg
import pytest
from lxml import etree

from tapd.columns import ColumnMeta
from tapd.formats import available_formats, resolve_format, write_error_document, write_result
from tests.formats.conftest import run_writer

COLUMNS = [ColumnMeta("i", "int"), ColumnMeta("x", "int")]
#: Fails with division by zero at row 30000, after three batches of rows were written.
FAILING = "SELECT i, 1 / (i - 30000) AS x FROM generate_series(1, 40000) AS i"


def resource_children(data: bytes) -> list[tuple[str, str | None, str | None]]:
    root = etree.fromstring(data)  # raises unless the whole output is one document
    resource = root.find("{*}RESOURCE")
    assert resource is not None
    return [(etree.QName(c).localname, c.get("value"), c.text) for c in resource]


@pytest.mark.parametrize("fmt", ["votable", "votable/b", "votable/td"])
def test_error_after_streaming_started_ends_the_same_votable_with_error(
    conn: psycopg.Connection[Any], fmt: str
) -> None:
    """(TAP-53)"""
    out = io.BytesIO()
    with pytest.raises(psycopg.errors.DivisionByZero):
        write_result(conn, FAILING, None, COLUMNS, resolve_format(fmt), out, maxrec=None)
    children = resource_children(out.getvalue())
    assert children[0][:2] == ("INFO", "OK")
    assert [c[0] for c in children[-2:]] == ["TABLE", "INFO"]
    assert children[-1][1] == "ERROR" and "division by zero" in (children[-1][2] or "")
    assert out.getvalue().count(b"<VOTABLE") == 1


def test_error_after_streaming_started_ends_json_with_error_status(
    conn: psycopg.Connection[Any],
) -> None:
    out = io.BytesIO()
    with pytest.raises(psycopg.errors.DivisionByZero):
        write_result(conn, FAILING, None, COLUMNS, resolve_format("json"), out, maxrec=None)
    document = json.loads(out.getvalue())
    assert document["status"] == "ERROR" and "division by zero" in document["message"]
    assert len(document["data"]) > 0


@pytest.mark.parametrize("fmt", ["votable", "csv", "fits"])
def test_error_before_any_row_writes_nothing(conn: psycopg.Connection[Any], fmt: str) -> None:
    out = io.BytesIO()
    with pytest.raises(psycopg.errors.UndefinedColumn):
        write_result(
            conn,
            "SELECT nosuch FROM numbers",
            None,
            COLUMNS[:1],
            resolve_format(fmt),
            out,
            maxrec=5,
        )
    assert out.getvalue() == b""


def test_connection_is_usable_after_a_failed_query(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.DivisionByZero):
        run_writer(conn, "csv", sql=FAILING, columns=COLUMNS, maxrec=None)
    conn.rollback()
    assert conn.execute("SELECT 41 + 1").fetchone() == (42,)


class BrokenOutput(io.BytesIO):
    """An output that fails (disk full) after some bytes."""

    def write(self, data: Any) -> int:
        if self.tell() > 100_000:
            raise OSError(28, "No space left on device")
        return super().write(data)


def test_failing_output_cancels_the_query_and_leaves_the_connection_usable(
    conn: psycopg.Connection[Any],
) -> None:
    sql = "SELECT i, i AS x FROM generate_series(1, 1000000) AS i"
    with pytest.raises(OSError):
        write_result(conn, sql, None, COLUMNS, resolve_format("csv"), BrokenOutput(), maxrec=None)
    conn.rollback()
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_cancel_from_another_thread_ends_the_votable_with_error(
    conn: psycopg.Connection[Any],
) -> None:
    slow = (
        "SELECT i, CASE WHEN i % 500 = 0 THEN length(pg_sleep(0.05)::text) END AS x"
        " FROM generate_series(1, 1000000) AS i"
    )
    out = io.BytesIO()
    timer = threading.Timer(0.5, conn.cancel)
    timer.start()
    try:
        with pytest.raises(psycopg.errors.QueryCanceled):
            write_result(conn, slow, None, COLUMNS, resolve_format("votable"), out, maxrec=None)
    finally:
        timer.cancel()
    assert resource_children(out.getvalue())[-1][1] == "ERROR"


def test_statement_timeout_raises_query_canceled(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET LOCAL statement_timeout = '200ms'")
    with pytest.raises(psycopg.errors.QueryCanceled):
        run_writer(
            conn,
            "votable",
            sql="SELECT pg_sleep(5)::text AS x",
            columns=[ColumnMeta("x", "char", "*")],
        )


def test_error_document_is_a_votable_with_query_status_error() -> None:
    """(TAP-50, VOT-01, VOT-02, VOT-03)"""
    out = io.BytesIO()
    write_error_document(
        out,
        "bad <ADQL> & worse",
        infos=[("QUERY", "SELECT\nx"), ("standardID", "ivo://ivoa.net/std/TAP")],
    )
    root = etree.fromstring(out.getvalue())
    assert root.get("version") == "1.4"
    assert etree.QName(root).namespace == "http://www.ivoa.net/xml/VOTable/v1.3"
    infos = root.findall("{*}RESOURCE/{*}INFO")
    assert [(i.get("name"), i.get("value")) for i in infos] == [
        ("QUERY_STATUS", "ERROR"),
        ("QUERY", "SELECT\nx"),
        ("standardID", "ivo://ivoa.net/std/TAP"),
    ]
    assert infos[0].text == "bad <ADQL> & worse"
    assert root.find("{*}RESOURCE").get("type") == "results"


class WriteOnly:
    """An output with nothing but write(), like a socket or pipe wrapper."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: Any) -> int:
        self.data += data
        return len(data)


@pytest.mark.parametrize("fmt", [f.key for f in available_formats()])
def test_every_format_streams_to_a_write_only_output(
    conn: psycopg.Connection[Any], fmt: str
) -> None:
    out = WriteOnly()
    summary = write_result(
        conn,
        "SELECT id FROM numbers ORDER BY id",
        None,
        [ColumnMeta("id", "int")],
        resolve_format(fmt),
        out,  # type: ignore[arg-type]
        maxrec=5,
    )
    assert (summary.rows, summary.overflow) == (5, True) and len(out.data) > 0


class FailingStart(io.BytesIO):
    def write(self, data: Any) -> int:
        raise OSError(32, "Broken pipe")


def test_output_failing_before_the_first_row_cancels_the_query(
    conn: psycopg.Connection[Any],
) -> None:
    with pytest.raises(OSError):
        write_result(
            conn, FAILING, None, COLUMNS, resolve_format("votable"), FailingStart(), maxrec=None
        )
    conn.rollback()
    assert conn.execute("SELECT 1").fetchone() == (1,)
