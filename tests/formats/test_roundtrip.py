"""Every format reads back as the rows it was written from (Done means: round trips)."""

from __future__ import annotations

import csv
import io
import json
import warnings
from typing import Any

import lxml.html
import numpy as np
import psycopg
import pytest
from astropy.io import fits, votable
from astropy.table import Table
from lxml import etree

from tapd.columns import ColumnMeta
from tests.formats.conftest import COLUMNS, METAS, assert_same_rows, run_writer, source_rows


def _python(value: Any) -> Any:
    """A numpy/astropy cell as a plain Python value (masked -> None)."""
    if value is np.ma.masked:
        return None
    if isinstance(value, np.ma.MaskedArray):
        if value.mask is not np.ma.nomask and np.all(value.mask):
            return None
        value = value.data
    if isinstance(value, np.ndarray):
        if value.dtype == np.uint8:
            return bytes(value.tolist())
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value


def read_votable(data: bytes) -> tuple[Any, list[dict[str, Any]]]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any astropy VOTable warning fails the test
        table = votable.parse(io.BytesIO(data)).get_first_table()
    rows = []
    for i in range(len(table.array)):
        row = {meta.name: _python(table.array[meta.name][i]) for meta in METAS}
        if row["by"] is not None:
            row["by"] = bytes(row["by"])
        rows.append(row)
    return table, rows


def _parse_text(text: str | None, name: str) -> Any:
    """A CSV/TSV cell (None: empty) as the Python value of its column."""
    meta = next(m for m in METAS if m.name == name)
    if text is None or text == "":
        return None
    if meta.datatype in ("short", "int", "long") and meta.arraysize is None:
        return int(text)
    if meta.datatype in ("float", "double") and meta.arraysize is None:
        return float(text)
    if meta.datatype == "boolean":
        return {"true": True, "false": False}[text]
    if meta.datatype == "unsignedByte":
        return bytes(int(v) for v in text.split())
    if meta.arraysize is not None and meta.datatype in ("int",):
        return [int(v) for v in text.split()]
    if meta.arraysize is not None and meta.datatype == "double":
        return [float(v) for v in text.split()]
    return text


def test_votable_binary2_reads_back_with_astropy(conn: psycopg.Connection[Any]) -> None:
    """(VOT-24, VOT-25)"""
    data, summary = run_writer(conn, "votable")
    _table, rows = read_votable(data)
    assert summary.rows == len(rows) == 5 and not summary.overflow
    # astropy ignores BINARY2 null flags of strings (reads ""); STILTS tests check them
    assert_same_rows(rows, source_rows(conn), ascii_char=True, empty_is_null=True, nan_is_null=True)
    assert b"<BINARY2>" in data


def test_votable_binary_reads_back_with_astropy(conn: psycopg.Connection[Any]) -> None:
    """(VOT-26)"""
    data, _ = run_writer(conn, "votable/b")
    _, rows = read_votable(data)
    # BINARY cannot flag NULL strings or arrays (they read back empty), and an
    # integer equal to the declared magic null value (the type's minimum) reads as NULL
    expected = source_rows(conn)
    magic = {"s": -(2**15), "i": -(2**31), "b": -(2**63)}
    for row in expected:
        for name, value in magic.items():
            if row[name] == value:
                row[name] = None
    assert_same_rows(rows, expected, empty_is_null=True, ascii_char=True, nan_is_null=True)


def test_votable_tabledata_reads_back_with_astropy(conn: psycopg.Connection[Any]) -> None:
    """(VOT-21, VOT-22)"""
    data, _ = run_writer(conn, "votable/td")
    _, rows = read_votable(data)
    expected = source_rows(conn)
    for row in expected:  # astropy strips the whitespace around TABLEDATA strings
        row.update({k: v.strip() for k, v in row.items() if isinstance(v, str)})
    assert_same_rows(rows, expected, empty_is_null=True, ascii_char=True, nan_is_null=True)


def test_tabledata_keeps_whitespace_and_line_breaks_of_strings(
    conn: psycopg.Connection[Any],
) -> None:
    """(VOT-21)"""
    data, _ = run_writer(
        conn,
        "votable/td",
        sql="SELECT vc, t FROM everything WHERE id = 5",
        columns=[METAS[10], METAS[8]],
    )
    cells = etree.fromstring(data).findall(".//{*}TD")
    assert [cell.text for cell in cells] == ["   ", "line\nbreak and\r\ncrlf"]


def test_field_metadata_comes_from_the_checker_columns(conn: psycopg.Connection[Any]) -> None:
    """(VOT-13, TAP-44)"""
    data, _ = run_writer(conn, "votable")
    table, _ = read_votable(data)
    for field, meta in zip(table.fields, METAS, strict=True):
        assert field.name == meta.name
        assert field.datatype == meta.datatype
        assert field.description == meta.description
        assert (field.xtype or None) == meta.xtype
    assert str(table.get_field_by_id_or_name("p").unit) == "deg"
    assert table.get_field_by_id_or_name("id").ucd == "meta.id"


def test_csv_reads_back_with_the_csv_module(conn: psycopg.Connection[Any]) -> None:
    """(TAP-45)"""
    data, summary = run_writer(conn, "csv")
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    header = next(reader)
    assert header == [name for name, _ in COLUMNS]
    rows = [
        {name: _parse_text(cell, name) for name, cell in zip(header, line, strict=True)}
        for line in reader
    ]
    assert summary.rows == len(rows) == 5
    assert_same_rows(rows, source_rows(conn), empty_is_null=True)


def test_csv_tells_an_empty_string_from_null(conn: psycopg.Connection[Any]) -> None:
    data, _ = run_writer(
        conn,
        "csv",
        sql="SELECT t FROM everything WHERE id IN (2, 3) ORDER BY id",
        columns=[METAS[8]],
    )
    assert data.decode().splitlines() == ["t", "", '""']


def _tsv_cell(text: str) -> str:
    escapes = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}
    out, chars = [], iter(text)
    for ch in chars:
        out.append(escapes[next(chars)] if ch == "\\" else ch)
    return "".join(out)


def test_tsv_reads_back_with_its_escapes(conn: psycopg.Connection[Any]) -> None:
    """(TAP-46)"""
    data, _ = run_writer(conn, "tsv")
    lines = data.decode("utf-8").split("\n")
    assert lines[-1] == ""
    header = lines[0].split("\t")
    rows = [
        {
            name: _parse_text(_tsv_cell(cell), name)
            for name, cell in zip(header, line.split("\t"), strict=True)
        }
        for line in lines[1:-1]
    ]
    assert_same_rows(rows, source_rows(conn), empty_is_null=True)


def _json_value(value: Any, name: str) -> Any:
    meta = next(m for m in METAS if m.name == name)
    special = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
    if meta.datatype in ("float", "double"):
        if isinstance(value, list):
            return [special.get(v, v) if isinstance(v, str) else float(v) for v in value]
        if value is not None:
            return special.get(value, value) if isinstance(value, str) else float(value)
    if meta.datatype == "unsignedByte" and value is not None:
        return bytes(value)
    return value


def test_json_reads_back_with_the_json_module(conn: psycopg.Connection[Any]) -> None:
    data, summary = run_writer(conn, "json", infos={"QUERY": "SELECT * FROM everything"})
    document = json.loads(data)
    assert [m["name"] for m in document["metadata"]] == [name for name, _ in COLUMNS]
    assert document["metadata"][0] == {
        "name": "id",
        "datatype": "int",
        "ucd": "meta.id",
        "description": "column id",
    }
    assert document["infos"] == {"QUERY": "SELECT * FROM everything"}
    assert document["status"] == "OK"
    rows = [
        {name: _json_value(value, name) for (name, _), value in zip(COLUMNS, row, strict=True)}
        for row in document["data"]
    ]
    assert summary.rows == len(rows) == 5
    assert_same_rows(rows, source_rows(conn))


def test_html_is_a_page_with_one_escaped_table(conn: psycopg.Connection[Any]) -> None:
    data, _ = run_writer(conn, "html")
    page = lxml.html.fromstring(data)
    header = [th.text_content() for th in page.findall(".//th")]
    assert header[0] == "id" and header[18] == "p[deg]"
    rows = page.findall(".//tbody/tr")
    assert len(rows) == 5
    cells = [td.text_content() for td in rows[3].findall("td")]
    assert cells[8] == 'comma, "quote" <tag> & amp\\back\tslash'
    assert cells[9] == "\u00e9t\u00e9 \u2013 \u65e5\u672c \U0001f600"
    assert all(td.text_content() == "" for td in rows[1].findall("td")[1:])


def test_fits_reads_back_with_astropy(conn: psycopg.Connection[Any]) -> None:
    data, summary = run_writer(conn, "fits")
    assert len(data) % 2880 == 0
    with warnings.catch_warnings():
        # astropy turns NULL logicals into False, and says so
        warnings.filterwarnings("ignore", message=".*contains NULL.*")
        table = Table.read(io.BytesIO(data), format="fits")
    assert table.colnames == [name for name, _ in COLUMNS]
    rows = []
    for i in range(len(table)):
        row = {}
        for meta in METAS:
            value = _python(table[meta.name][i])
            if meta.datatype == "unsignedByte" and value is not None:
                value = bytes(value)
            if isinstance(value, list) and value and all(v is None for v in value):
                value = None  # a NULL fixed array: every element masked
            if isinstance(value, str):
                value = value.rstrip(" ")  # newer astropy drops trailing blanks, 5.2 not
            row[meta.name] = value
        rows.append(row)
    expected = source_rows(conn)
    magic = {"s": -(2**15), "i": -(2**31), "b": -(2**63)}
    for row in expected:
        # FITS: TNULL magic integers, no NULL for booleans, strings or variable arrays
        for name, value in magic.items():
            if row[name] == value:
                row[name] = None
        if row["flag"] is None:
            row["flag"] = False
        for name in ("t", "u", "vc", "ch", "ts", "tstz", "dt"):
            if isinstance(row[name], str):  # ASCII; trailing blanks are FITS padding
                row[name] = "".join(c if ord(c) < 128 else "?" for c in row[name]).rstrip(" ")
    assert summary.rows == len(rows) == 5
    assert_same_rows(rows, expected, empty_is_null=True, nan_is_null=True)
    header = fits.open(io.BytesIO(data))[1].header
    assert header["TUNIT19"] == "deg" and header["TUCD1"] == "meta.id"
    assert header["QSTATUS"] == "OK"


def test_fits_status_keyword_says_overflow(conn: psycopg.Connection[Any]) -> None:
    data, summary = run_writer(conn, "fits", maxrec=2)
    assert summary.overflow
    hdus = fits.open(io.BytesIO(data))
    assert hdus[1].header["QSTATUS"] == "OVERFLOW" and len(hdus[1].data) == 2


@pytest.mark.pypi_only
def test_parquet_reads_back_with_pyarrow_and_carries_the_votable_metadata(
    conn: psycopg.Connection[Any],
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    data, summary = run_writer(conn, "parquet")
    table = pq.read_table(io.BytesIO(data))
    rows = table.to_pylist()
    assert summary.rows == len(rows) == 5
    assert_same_rows(rows, source_rows(conn))
    metadata = pq.ParquetFile(io.BytesIO(data)).metadata.metadata
    assert metadata[b"IVOA.VOTable-Parquet.version"] == b"1.0"
    assert metadata[b"IVOA.VOTable-Parquet.query_status"] == b"OK"
    # astropy's read_parquet_votable reads the columns' metadata from this VOTable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        described = votable.parse(io.BytesIO(metadata[b"IVOA.VOTable-Parquet.content"]))
    fields = described.get_first_table().fields
    assert [f.name for f in fields] == [name for name, _ in COLUMNS]
    assert str(fields[18].unit) == "deg" and fields[0].ucd == "meta.id"
    assert table.schema.field("p").metadata[b"xtype"] == b"point"


def test_fits_one_long_string_among_many_rows(conn: psycopg.Connection[Any]) -> None:
    """Strings are as wide as the longest; the writer still works in small pieces."""
    sql = (
        "SELECT i, CASE WHEN i = 7 THEN repeat('x', 300000) ELSE 'short' END"
        " FROM generate_series(1, 40) AS i"
    )
    columns = [ColumnMeta("i", "int"), ColumnMeta("s", "char", "*")]
    data, summary = run_writer(conn, "fits", sql=sql, columns=columns)
    table = Table.read(io.BytesIO(data), format="fits")
    assert summary.rows == len(table) == 40
    assert table["s"][6] == "x" * 300000 and table["s"][7] == "short"
    assert fits.open(io.BytesIO(data))[1].header["TFORM2"] == "300000A"
