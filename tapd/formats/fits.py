"""FITS binary table results: an empty primary HDU and one BINTABLE.

Column types follow the VOTable datatype (L, B, I, J, K, E, D, A). Strings
are fixed-width ``nA`` columns, n being the longest value (readers handle
``nA`` far better than variable-length ``PA``); polygons and other variable
arrays are variable-length arrays (``PD``, ``PJ``, ...) in the heap. FITS
strings are ASCII (astropy refuses other bytes): other characters become '?',
also in ``unicodeChar`` columns.

NULL: integers use TNULL, the type's minimum (so that value itself reads back
as NULL), floats NaN, booleans the ``\\0`` byte, strings and variable arrays
come out empty. FITS has no status channel for TAP; the writer adds the
keyword ``QSTATUS`` (``OK`` or ``OVERFLOW``) to the table header.

The header needs the row count and the string widths before the data, so the
rows (as PostgreSQL encoded them, ``tapd.formats.columnar``) are spooled to a
temporary file while they stream; ``end`` writes the header, then the rows
from the spool, then the heap.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

import numpy as np
from astropy.io import fits

from tapd.errors import TapdError
from tapd.formats.base import Infos, TableWriter
from tapd.formats.cells import Cell, Kind
from tapd.formats.columnar import (
    DecodedBatch,
    decode,
    heap_columns,
    plan_fields,
    record_dtype,
    row_sql,
)
from tapd.formats.copyout import Batch

BLOCK = 2880
_HEAP_LIMIT = 2**31 - 1  # 'P' descriptors hold 32-bit offsets
_SPOOL_HEADER = struct.Struct("<qqq")  # rows, record bytes, heap bytes
CHUNK_BYTES = 4 << 20


class ResultTooLarge(TapdError):
    """The result does not fit the format."""


def _ascii(text: str) -> str:
    return "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)


class FitsWriter(TableWriter):
    def __init__(self, cells: Sequence[Cell], infos: Infos | None = None) -> None:
        super().__init__(cells, infos)
        self.fields = plan_fields(cells, fixed_text=True, ascii_text=True)
        self._variable = [i for i, field in enumerate(self.fields) if field.variable]
        self._text = {i for i in self._variable if self.fields[i].cell.kind is Kind.TEXT}
        self._largest = dict.fromkeys(self._variable, 0)  # elements; string widths for text
        self._rows = 0
        self._heap_size = 0  # bytes of the arrays that stay variable
        self._spool: Any = None

    def row_sql(self) -> list[str]:
        return [row_sql(self.fields)]

    def begin(self, out: BinaryIO) -> None:
        self._spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by end or fail)

    # -- pass 1: spool and measure -----------------------------------------------------------

    def write_rows(self, out: BinaryIO, batch: Batch) -> None:
        decoded = decode(batch, self.fields)
        for j, i in enumerate(self._variable):
            counts = decoded.heap_sizes[:, j] // self.fields[i].size
            self._largest[i] = max(self._largest[i], int(counts.max()))
            if i not in self._text:
                self._heap_size += int(decoded.heap_sizes[:, j].sum())
        if self._heap_size > _HEAP_LIMIT:
            raise ResultTooLarge("the result's arrays exceed the 2 GiB FITS heap; use VOTable")
        self._rows += decoded.rows
        records, heap, sizes = decoded.records.tobytes(), decoded.heap.tobytes(), decoded.heap_sizes
        self._spool.write(_SPOOL_HEADER.pack(decoded.rows, len(records), len(heap)))
        self._spool.write(records)
        self._spool.write(heap)
        self._spool.write(sizes.astype("<i8").tobytes())

    def _spooled(self) -> Iterator[DecodedBatch]:
        self._spool.seek(0)
        dtype = record_dtype(self.fields)
        while header := self._spool.read(_SPOOL_HEADER.size):
            rows, record_bytes, heap_bytes = _SPOOL_HEADER.unpack(header)
            records = np.frombuffer(self._spool.read(record_bytes), dtype=dtype)
            heap = np.frombuffer(self._spool.read(heap_bytes), dtype=np.uint8)
            sizes = np.frombuffer(self._spool.read(rows * len(self._variable) * 8), dtype="<i8")
            yield DecodedBatch(rows, np.zeros((0, 0), bool), records, heap, sizes.reshape(rows, -1))

    # -- pass 2: the file --------------------------------------------------------------------

    def _width(self, i: int) -> int:
        return max(self._largest[i], 1)

    def _tform(self, i: int) -> str:
        field = self.fields[i]
        if i in self._text:
            return f"{self._width(i)}A"
        if field.variable:
            return f"P{field.code}({self._largest[i]})"
        return f"{field.repeat}{field.code}" if field.repeat != 1 else field.code

    def _output_dtype(self) -> np.dtype[Any]:
        parts: list[tuple[str, Any]] = []
        for i, field in enumerate(self.fields):
            if i in self._text:
                parts.append((f"f{i}", ("u1", (self._width(i),))))
            else:
                parts.append((f"f{i}", field.numpy_type))
        return np.dtype(parts)

    def _header(self, status: str) -> bytes:
        header = fits.Header()
        header["XTENSION"] = "BINTABLE"
        header["BITPIX"] = 8
        header["NAXIS"] = 2
        header["NAXIS1"] = self._output_dtype().itemsize
        header["NAXIS2"] = self._rows
        header["PCOUNT"] = self._heap_size
        header["GCOUNT"] = 1
        header["TFIELDS"] = len(self.fields)
        for i, field in enumerate(self.fields):
            n = i + 1
            meta = field.cell.meta
            header[f"TTYPE{n}"] = _ascii(meta.name)
            header[f"TFORM{n}"] = self._tform(i)
            if meta.unit:
                header[f"TUNIT{n}"] = _ascii(meta.unit)
            if field.null is not None:
                header[f"TNULL{n}"] = field.null
            if meta.ucd:
                header[f"TUCD{n}"] = _ascii(meta.ucd)
            if meta.utype:
                header[f"TUTYP{n}"] = _ascii(meta.utype)
            if meta.xtype:
                header[f"TXTYP{n}"] = _ascii(meta.xtype)
            if meta.description:
                header[f"TCOMM{n}"] = _ascii(meta.description)
        header["EXTNAME"] = "RESULT"
        header["QSTATUS"] = (status, "TAP QUERY_STATUS of this result")
        text: str = header.tostring()
        return text.encode("ascii")

    def _records(self, decoded: DecodedBatch, heap_base: int, heap: BinaryIO) -> tuple[bytes, int]:
        """The batch as output records, its arrays appended to ``heap``; returns heap bytes used."""
        out = np.zeros(decoded.rows, dtype=self._output_dtype())
        columns = heap_columns(decoded, self.fields)
        used = 0
        for i in range(len(self.fields)):
            name = f"f{i}"
            if i in self._text:
                values, offsets = columns[i]
                lengths = np.diff(offsets)
                width = self._width(i)
                cells = np.zeros((decoded.rows, width), dtype=np.uint8)
                rows = np.repeat(np.arange(decoded.rows), lengths)
                positions = np.arange(len(values)) - np.repeat(offsets[:-1], lengths)
                cells[rows, positions] = values
                out[name] = cells
            elif self.fields[i].variable:
                values, offsets = columns[i]
                size = self.fields[i].size
                out[name]["count"] = np.diff(offsets)
                out[name]["offset"] = heap_base + used + offsets[:-1] * size
                heap.write(values.tobytes())
                used += len(values)
            else:
                out[name] = decoded.records[name]
        return out.tobytes(), used

    def end(self, out: BinaryIO, *, overflow: bool) -> None:
        primary = fits.Header()
        primary["SIMPLE"] = True
        primary["BITPIX"] = 8
        primary["NAXIS"] = 0
        primary["EXTEND"] = True
        out.write(str(primary.tostring()).encode("ascii"))
        out.write(self._header("OVERFLOW" if overflow else "OK"))
        size = 0
        heap_used = 0
        # a few MB of output records at a time, however wide the longest string made them
        chunk_rows = max(1, CHUNK_BYTES // self._output_dtype().itemsize)
        with tempfile.TemporaryFile() as heap:
            for decoded in self._spooled():
                for chunk in decoded.chunks(chunk_rows):
                    records, used = self._records(chunk, heap_used, heap)
                    heap_used += used
                    out.write(records)
                    size += len(records)
            heap.seek(0)
            shutil.copyfileobj(heap, out, 1 << 20)
        size += heap_used
        out.write(bytes(-size % BLOCK))
        self._spool.close()

    def fail(self, out: BinaryIO, message: str) -> None:
        if self._spool is not None:
            self._spool.close()
