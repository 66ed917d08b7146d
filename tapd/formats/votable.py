"""VOTable results and error documents (VOTable 1.4, DALI 4.4).

One ``RESOURCE type="results"`` with ``INFO name="QUERY_STATUS" value="OK"``
before the TABLE; when MAXREC dropped rows an ``OVERFLOW`` INFO follows the
TABLE; when the query fails mid-stream an ``ERROR`` INFO follows it instead, in
the same document. Data as BINARY2 (the default), BINARY or TABLEDATA: binary
rows are rebuilt from PostgreSQL's binary COPY (``tapd.formats.binary``),
TABLEDATA cells are printed by PostgreSQL (``tapd.formats.textual``); both are
only framed here.

Text: ``char`` columns are ASCII (non-ASCII characters become '?', in every
serialisation, so all three read back alike); columns that may hold other
characters must be declared ``unicodeChar`` in the catalogue.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from typing import BinaryIO
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from tapd.columns import ColumnMeta
from tapd.formats import binary, binarycopy
from tapd.formats.base import TEXT_LINES, Infos, TableWriter, concat_sql, info_pairs
from tapd.formats.cells import Cell
from tapd.formats.copyout import Batch
from tapd.formats.textual import cell_text

VOTABLE_NAMESPACE = "http://www.ivoa.net/xml/VOTable/v1.3"
VOTABLE_VERSION = "1.4"
_ATTRIBUTE_ENTITIES = {"\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
_XML_FORBIDDEN = {c: "?" for c in range(32) if c not in (9, 10, 13)}


def _attr(value: str) -> str:
    """An XML attribute value, quoted; newlines survive attribute normalisation."""
    return quoteattr(value.translate(_XML_FORBIDDEN), _ATTRIBUTE_ENTITIES)


def _text(value: str) -> str:
    return escape(value.translate(_XML_FORBIDDEN))


def document_start() -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<VOTABLE version="{VOTABLE_VERSION}" xmlns="{VOTABLE_NAMESPACE}"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        '<RESOURCE type="results">\n'
    )


def info_element(name: str, value: str, text: str | None = None) -> str:
    if text is None:
        return f"<INFO name={_attr(name)} value={_attr(value)}/>\n"
    return f"<INFO name={_attr(name)} value={_attr(value)}>{_text(text)}</INFO>\n"


def declared_arraysize(meta: ColumnMeta) -> str | None:
    """The FIELD arraysize: bounded strings (``n*``) are declared ``*``.

    astropy before 6.1 (Debian 12 ships 5.2.1) reads a ``char`` ``n*`` cell of
    BINARY/BINARY2 as n fixed bytes and fails; the bound is only informative.
    """
    size = meta.arraysize
    if size and meta.datatype in ("char", "unicodeChar") and size.endswith("*") and "x" not in size:
        return "*"
    return size


def field_element(meta: ColumnMeta, null: int | None = None) -> str:
    """A FIELD from checker metadata (no ID: names may not be XML IDs, checklist VOT-05)."""
    attributes = [f"name={_attr(meta.name)}", f"datatype={_attr(meta.datatype)}"]
    size = declared_arraysize(meta)
    if size:
        attributes.append(f"arraysize={_attr(size)}")
    for key in ("xtype", "unit", "ucd", "utype"):
        value = getattr(meta, key)
        if value:
            attributes.append(f"{key}={_attr(value)}")
    children = ""
    if meta.description:
        children += f"<DESCRIPTION>{_text(meta.description)}</DESCRIPTION>"
    if null is not None:
        children += f'<VALUES null="{null}"/>'
    if not children:
        return f"<FIELD {' '.join(attributes)}/>\n"
    return f"<FIELD {' '.join(attributes)}>{children}</FIELD>\n"


def table_metadata(
    columns: Sequence[ColumnMeta], infos: Infos | None, nulls: Sequence[int | None] = ()
) -> str:
    """The start of a results document up to and including the FIELDs."""
    parts = [document_start(), info_element("QUERY_STATUS", "OK")]
    parts += [info_element(name, value) for name, value in info_pairs(infos)]
    parts.append("<TABLE>\n")
    nulls = list(nulls) or [None] * len(columns)
    parts += [field_element(meta, null) for meta, null in zip(columns, nulls, strict=True)]
    return "".join(parts)


def write_error_document(out: BinaryIO, message: str, *, infos: Infos | None = None) -> None:
    """A VOTable error document: QUERY_STATUS=ERROR with the message (DALI 4.4.2)."""
    parts = [document_start(), info_element("QUERY_STATUS", "ERROR", message)]
    parts += [info_element(name, value) for name, value in info_pairs(infos)]
    parts.append("</RESOURCE>\n</VOTABLE>\n")
    out.write("".join(parts).encode("utf-8"))


class Base64Lines:
    """Streaming base64 in lines of 76 characters (whole 57-byte groups; the rest carried)."""

    GROUP = 57

    def __init__(self) -> None:
        self._carry = b""

    def encode(self, data: bytes) -> bytes | memoryview:
        if self._carry:
            data = self._carry + data
        whole = len(data) - len(data) % self.GROUP
        self._carry = data[whole:]
        if not whole:
            return b""
        encoded = binascii.b2a_base64(memoryview(data)[:whole], newline=False)
        lines = np.empty((whole // self.GROUP, 77), dtype=np.uint8)
        lines[:, :76] = np.frombuffer(encoded, dtype=np.uint8).reshape(-1, 76)
        lines[:, 76] = ord("\n")
        return lines.data.cast("B")  # the lines without a copy

    def finish(self) -> bytes:
        rest, self._carry = self._carry, b""
        return binascii.b2a_base64(rest) if rest else b""


class VOTableWriter(TableWriter):
    """VOTable with BINARY2 (``serialization="BINARY2"``), BINARY or TABLEDATA data."""

    def __init__(
        self, cells: Sequence[Cell], infos: Infos | None = None, *, serialization: str = "BINARY2"
    ) -> None:
        super().__init__(cells, infos)
        self.serialization = serialization
        if serialization == "TABLEDATA":
            self.copy_options, self.copy_mode = TEXT_LINES, "lines"
        binary2 = serialization == "BINARY2"
        self._binary_cells = [binary.plan(cell, binary2=binary2) for cell in self.cells]
        self._base64 = Base64Lines()
        self._data_open = False

    def row_sql(self) -> list[str]:
        if self.serialization == "TABLEDATA":
            parts: list[str] = []
            for i, cell in enumerate(self.cells):
                parts.append("'<TR><TD>'" if i == 0 else "'</TD><TD>'")
                parts.append(
                    cell_text(
                        cell,
                        true="T",
                        false="F",
                        positive_infinity="+Inf",
                        negative_infinity="-Inf",
                        xml=True,
                        ascii_text=True,
                    )
                )
            parts.append("'</TD></TR>'")
            return [concat_sql(parts)]
        return [cell.sql for cell in self._binary_cells]

    def _nulls(self) -> list[int | None]:
        if self.serialization != "BINARY":
            return []
        return [binary.magic_null(cell) for cell in self.cells]

    def begin(self, out: BinaryIO) -> None:
        start = table_metadata(self.columns, self.infos, self._nulls())
        if self.serialization == "TABLEDATA":
            start += "<DATA><TABLEDATA>\n"
        else:
            start += f'<DATA><{self.serialization}><STREAM encoding="base64">\n'
        out.write(start.encode("utf-8"))
        self._data_open = True

    def write_rows(self, out: BinaryIO, batch: Batch) -> None:
        if self.serialization == "TABLEDATA":
            out.write(batch.values())
            return
        widths = [cell.copy_width for cell in self._binary_cells]
        columns = binarycopy.split(batch, widths)
        rows = binary.encode_rows(
            columns, self._binary_cells, binary2=self.serialization == "BINARY2"
        )
        out.write(self._base64.encode(rows))

    def _close_table(self, out: BinaryIO) -> None:
        if self.serialization == "TABLEDATA":
            closing = "</TABLEDATA></DATA>\n</TABLE>\n"
        else:
            out.write(self._base64.finish())
            closing = f"</STREAM></{self.serialization}></DATA>\n</TABLE>\n"
        out.write(closing.encode("utf-8"))
        self._data_open = False

    def end(self, out: BinaryIO, *, overflow: bool) -> None:
        self._close_table(out)
        trailer = info_element("QUERY_STATUS", "OVERFLOW") if overflow else ""
        out.write(f"{trailer}</RESOURCE>\n</VOTABLE>\n".encode())

    def fail(self, out: BinaryIO, message: str) -> None:
        if self._data_open:
            self._close_table(out)
        out.write(
            f"{info_element('QUERY_STATUS', 'ERROR', message)}</RESOURCE>\n</VOTABLE>\n".encode()
        )
