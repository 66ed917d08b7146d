"""Rows encoded as fixed-width records plus a heap, decoded per batch with numpy.

FITS binary tables and Parquet are columnar or fixed-width, so their writers
share one row encoding, produced by PostgreSQL::

    null flags (one bit per column) | fixed part | heap part

The fixed part holds every field at a fixed offset, big-endian: scalars and
fixed-size arrays (NULL filled with NaN, ``\\0``, or for integers the type's
minimum, FITS's TNULL), and for variable-size fields (strings, polygons,
arrays) an 8-byte descriptor whose first 4 bytes count the elements (the
second 4 are left for FITS's heap offset). The heap part holds the elements
of the variable-size fields, in column order. A batch of such rows is split
with numpy index arithmetic: no Python work per row.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tapd.formats.cells import Cell, Kind
from tapd.formats.copyout import Batch, gather
from tapd.formats.query import sql_bytes
from tapd.formats.textual import ascii_only
from tapd.sqltypes import FITS_CODE_SIZES, FITS_TYPE_CODES

#: FITS type code -> (numpy dtype of one big-endian element, PostgreSQL send function).
_ELEMENTS: dict[str, tuple[str, str | None]] = {
    "L": ("u1", None),
    "B": ("u1", None),
    "I": (">i2", "int2send"),
    "J": (">i4", "int4send"),
    "K": (">i8", "int8send"),
    "E": (">f4", "float4send"),
    "D": (">f8", "float8send"),
    "A": ("u1", None),
}

_NAN = {"E": bytes.fromhex("7fc00000"), "D": bytes.fromhex("7ff8000000000000")}
DESCRIPTOR = np.dtype([("count", ">i4"), ("offset", ">i4")])


@dataclass(frozen=True)
class Field:
    """How one column sits in the encoded row."""

    cell: Cell
    code: str  # FITS TFORM letter
    size: int  # bytes per element
    dtype: str  # numpy dtype of one element (big-endian)
    repeat: int | None  # elements in the fixed part; None: variable, in the heap
    null: int | None  # integer filler of NULL (FITS TNULL)
    ascii: bool  # text restricted to ASCII ('?' for other characters)

    @property
    def width(self) -> int:
        return DESCRIPTOR.itemsize if self.repeat is None else self.repeat * self.size

    @property
    def variable(self) -> bool:
        return self.repeat is None

    @property
    def numpy_type(self) -> Any:
        """The field's dtype in a numpy record of the fixed part."""
        if self.repeat is None:
            return DESCRIPTOR
        return (self.dtype, (self.repeat,)) if self.repeat != 1 or self.code == "A" else self.dtype

    # -- SQL -----------------------------------------------------------------------------

    def filler(self) -> bytes:
        """Bytes of one NULL element."""
        if self.code in _NAN:
            return _NAN[self.code]
        if self.null is not None:
            return self.null.to_bytes(self.size, "big", signed=self.code != "B")
        return bytes(self.size)

    def element_sql(self, x: str) -> str:
        """SQL encoding one non-text element ``x`` (NULL gives NULL)."""
        if self.code == "L":
            return f"CASE WHEN {x} THEN '\\x54'::bytea WHEN NOT {x} THEN '\\x46'::bytea END"
        if self.code == "B":
            return f"substring(int2send({x}) from 2 for 1)"
        return f"{_ELEMENTS[self.code][1]}({x})"

    def _text_bytes(self) -> str:
        x = self.cell.ref
        return f"textsend({ascii_only(x) if self.ascii else x})"  # client encoding: UTF8

    def count_sql(self) -> str:
        """SQL counting the elements of a variable field (NULL: 0)."""
        x = self.cell.ref
        if self.cell.kind is Kind.TEXT:
            count = f"char_length({x})" if self.ascii else f"octet_length({x})"
        elif self.cell.kind is Kind.BYTES:
            count = f"length({x})"
        else:
            count = f"cardinality({x})"
        return f"coalesce({count}, 0)"

    def fixed_sql(self) -> str:
        """SQL of the field's bytes in the fixed part; never NULL."""
        x = self.cell.ref
        if self.repeat is None:
            return f"int4send({self.count_sql()}) || {sql_bytes(bytes(4))}"
        if self.cell.kind is Kind.TEXT or self.cell.kind is Kind.BYTES:
            data = self._text_bytes() if self.cell.kind is Kind.TEXT else x
            zeros = sql_bytes(bytes(self.repeat))
            return f"substring(coalesce({data}, ''::bytea) || {zeros} from 1 for {self.repeat})"
        filler = sql_bytes(self.filler())
        if self.cell.kind is not Kind.ARRAY:
            return f"coalesce({self.element_sql(x)}, {filler})"
        return " || ".join(
            f"coalesce({self.element_sql(f'{x}[{i}]')}, {filler})"
            for i in range(1, self.repeat + 1)
        )

    def heap_sql(self) -> str:
        """SQL of the field's elements in the heap part (variable fields); never NULL."""
        x = self.cell.ref
        if self.cell.kind is Kind.TEXT:
            return f"coalesce({self._text_bytes()}, ''::bytea)"
        if self.cell.kind is Kind.BYTES:
            return f"coalesce({x}, ''::bytea)"
        element = f"coalesce({self.element_sql('e')}, {sql_bytes(self.filler())})"
        return (
            f"coalesce((SELECT string_agg({element}, ''::bytea) FROM unnest({x}) AS e), ''::bytea)"
        )


def plan_fields(cells: Sequence[Cell], *, fixed_text: bool, ascii_text: bool) -> tuple[Field, ...]:
    """The fields of the encoded row.

    ``fixed_text``: strings of known size (``char(n)``, ``n*``) sit in the
    fixed part (FITS ``nA``); otherwise all strings go to the heap.
    ``ascii_text``: text is restricted to ASCII (other characters become '?').
    """
    fields = []
    for cell in cells:
        code = "A" if cell.kind is Kind.TEXT else FITS_TYPE_CODES.get(cell.datatype, "D")
        size, dtype = FITS_CODE_SIZES[code], _ELEMENTS[code][0]
        ascii = ascii_text
        if cell.kind is Kind.TEXT:
            bound = cell.fixed or cell.limit
            repeat = bound if fixed_text and ascii and bound is not None else None
        elif cell.kind in (Kind.ARRAY, Kind.BYTES):
            repeat = cell.fixed
        else:
            repeat = 1
        null = None  # variable arrays have none: astropy cannot apply TNULL to them
        if cell.kind in (Kind.INTEGER, Kind.ARRAY) and code in "BIJK" and repeat is not None:
            null = 255 if code == "B" else -(2 ** (8 * size - 1))
        fields.append(Field(cell, code, size, dtype, repeat, null, ascii))
    return tuple(fields)


def null_flags(cells: Sequence[Cell]) -> list[str]:
    """SQL for the null-flag bytes that start a row (MSB = first column)."""
    flags = []
    for start in range(0, len(cells), 8):
        group = cells[start : start + 8]
        bits = " + ".join(f"({cell.ref} IS NULL)::int * {128 >> i}" for i, cell in enumerate(group))
        any_null = " OR ".join(f"{cell.ref} IS NULL" for cell in group)
        flags.append(
            f"CASE WHEN {any_null} THEN set_byte('\\x00'::bytea, 0, {bits}) ELSE '\\x00'::bytea END"
        )
    return flags


def row_sql(fields: Sequence[Field]) -> str:
    """SQL of one encoded row."""
    parts = null_flags([field.cell for field in fields])
    parts += [field.fixed_sql() for field in fields]
    parts += [field.heap_sql() for field in fields if field.variable]
    return " || ".join(parts)


@dataclass
class DecodedBatch:
    """A batch split into null masks, the fixed records and each variable field's heap bytes."""

    rows: int
    nulls: np.ndarray[Any, Any]  # bool (rows, columns)
    records: np.ndarray[Any, Any]  # structured, big-endian, one per row
    heap: np.ndarray[Any, Any]  # uint8: every row's heap part, in row order
    heap_sizes: np.ndarray[Any, Any]  # int64 (rows, variable fields): bytes of each field's part

    def chunks(self, rows: int) -> Iterator[DecodedBatch]:
        """The batch in pieces of at most ``rows`` rows."""
        if self.rows <= rows:
            yield self
            return
        row_bytes = self.heap_sizes.sum(axis=1)
        heap_start = np.concatenate(([0], np.cumsum(row_bytes))).astype(np.int64)
        for first in range(0, self.rows, rows):
            last = min(first + rows, self.rows)
            yield DecodedBatch(
                last - first,
                self.nulls[first:last],
                self.records[first:last],
                self.heap[int(heap_start[first]) : int(heap_start[last])],
                self.heap_sizes[first:last],
            )


def record_dtype(fields: Sequence[Field]) -> np.dtype[Any]:
    return np.dtype([(f"f{i}", field.numpy_type) for i, field in enumerate(fields)])


def decode(batch: Batch, fields: Sequence[Field]) -> DecodedBatch:
    """Split a batch of encoded rows (see the module docstring)."""
    flag_bytes = (len(fields) + 7) // 8
    dtype = record_dtype(fields)
    fixed = flag_bytes + dtype.itemsize
    starts = batch.starts + 4  # the one field's length
    # every byte offset of the buffer seen as the start of a record: picking the rows'
    # starts copies just their records (no index array per byte)
    layout = np.dtype([("flags", "u1", (flag_bytes,)), ("record", dtype)])
    anywhere = np.ndarray(
        shape=(len(batch.data) - fixed + 1,), dtype=layout, buffer=batch.data, strides=(1,)
    )
    block = anywhere[starts]
    columns = np.arange(len(fields))
    nulls = ((block["flags"][:, columns // 8] >> (7 - columns % 8)) & 1).astype(bool)
    records = np.ascontiguousarray(block["record"])
    heap = gather(np.frombuffer(batch.data, dtype=np.uint8), starts + fixed, batch.row_ends())
    variable = [i for i, field in enumerate(fields) if field.variable]
    heap_sizes = np.zeros((len(starts), len(variable)), dtype=np.int64)
    for j, i in enumerate(variable):
        heap_sizes[:, j] = records[f"f{i}"]["count"].astype(np.int64) * fields[i].size
    return DecodedBatch(len(starts), nulls, records, heap, heap_sizes)


def heap_columns(decoded: DecodedBatch, fields: Sequence[Field]) -> dict[int, tuple[Any, Any]]:
    """Per variable field: (its heap bytes of all rows, contiguous; element offsets per row)."""
    sizes = decoded.heap_sizes
    row_start = np.cumsum(sizes.sum(axis=1)) - sizes.sum(axis=1)
    within = np.cumsum(sizes, axis=1) - sizes
    result = {}
    variable = [i for i, field in enumerate(fields) if field.variable]
    for j, i in enumerate(variable):
        begin = row_start + within[:, j]
        values = gather(decoded.heap, begin, begin + sizes[:, j])
        offsets = np.concatenate(([0], np.cumsum(sizes[:, j]))).astype(np.int64)
        result[i] = (values, offsets // fields[i].size)
    return result
