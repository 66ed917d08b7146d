"""JSON results: column metadata, then rows as arrays, then the status.

The layout is VOLLT's (and the Gaia archive's) with a trailing status::

    {"metadata": [{"name": "ra", "datatype": "double", "unit": "deg", ...}, ...],
     "infos": {"QUERY": "SELECT ...", ...},
     "data": [
    [1, 10.5, "star 1"],
    ...
    ],
     "status": "OK"}

``status`` is ``OVERFLOW`` when MAXREC dropped rows, and ``ERROR`` (with a
``message``) when the query failed after rows were written. PostgreSQL builds
each row with ``json_build_array``: geometry and other arrays are JSON arrays,
timestamps DALI strings, bytes arrays of numbers; JSON has no NaN or infinity,
so those floats are the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import BinaryIO

from tapd.formats.base import TEXT_LINES, TableWriter
from tapd.formats.cells import Cell, Kind
from tapd.formats.copyout import Batch
from tapd.formats.textual import byte_array


def _value_sql(cell: Cell) -> str:
    if cell.kind is Kind.BYTES:
        return byte_array(cell.ref)
    return cell.ref


def json_array_sql(values: Sequence[str]) -> str:
    """A JSON array of SQL values as text (``json_build_array`` takes at most 100 arguments)."""
    chunks = [
        f"json_build_array({', '.join(values[i : i + 90])})::text"
        for i in range(0, len(values), 90)
    ]
    if len(chunks) == 1:
        return chunks[0]
    # join "[a,b]" and "[c]" into "[a,b,c]"
    inner = " || ',' || ".join(f"substr({chunk}, 2, length({chunk}) - 2)" for chunk in chunks)
    return f"'[' || {inner} || ']'"


class JsonWriter(TableWriter):
    copy_options = TEXT_LINES
    copy_mode = "lines"

    def __init__(self, cells: Sequence[Cell], infos: object = None) -> None:
        super().__init__(cells, infos)  # type: ignore[arg-type]
        self._separator = b"\n"

    def row_sql(self) -> list[str]:
        return [json_array_sql([_value_sql(cell) for cell in self.cells])]

    def begin(self, out: BinaryIO) -> None:
        metadata = []
        for meta in self.columns:
            entry = {"name": meta.name, "datatype": meta.datatype}
            for key in ("arraysize", "xtype", "unit", "ucd", "utype", "description"):
                value = getattr(meta, key)
                if value:
                    entry[key] = value
            metadata.append(entry)
        head = (
            '{"metadata": '
            + json.dumps(metadata, ensure_ascii=False)
            + ',\n "infos": '
            + json.dumps(dict(self.infos), ensure_ascii=False)
            + ',\n "data": ['
        )
        out.write(head.encode())

    def write_rows(self, out: BinaryIO, batch: Batch) -> None:
        # rows arrive as "row\n" lines; JSON text never holds a raw newline
        out.write(self._separator + batch.values()[:-1].replace(b"\n", b",\n"))
        self._separator = b",\n"

    def _close(self, out: BinaryIO, status: dict[str, str]) -> None:
        tail = "\n],\n " + json.dumps(status, ensure_ascii=False)[1:]
        out.write(tail.encode())

    def end(self, out: BinaryIO, *, overflow: bool) -> None:
        self._close(out, {"status": "OVERFLOW" if overflow else "OK"})

    def fail(self, out: BinaryIO, message: str) -> None:
        self._close(out, {"status": "ERROR", "message": message})
