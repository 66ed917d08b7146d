"""VOTable's binary serialisations (BINARY2 and BINARY), rebuilt from a binary COPY.

The COPY selects the columns as they are (``plan`` says how each travels);
``encode_rows`` turns a batch of them into the serialisation's rows with
numpy (``tapd.formats.binarycopy``). Scalars need no work: PostgreSQL sends
integers and floats big-endian, as VOTable wants them. Variable-length
arrays and strings carry a 4-byte element count (VOTable 1.4 §5). BINARY2
rows start with null flags (one bit per column, most significant first) and
null cells are filled with NaN or zero bytes; BINARY has no flags: integers
use the magic value declared in ``VALUES null`` (the type's minimum), floats
NaN, booleans '?', strings and arrays come out empty.

``char`` is 7-bit ASCII (VOTable up to 1.5; astropy refuses anything else), so
non-ASCII characters in ``char`` columns become '?'. Columns declared
``unicodeChar`` are written as UTF-16BE (UCS-2 for the Basic Multilingual
Plane; characters beyond it as surrogate pairs, counted as two). Arrays
(geometries) and bytea are encoded by SQL (``*send`` of each element), the
only cells the server does more for than a plain COPY.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tapd.formats import binarycopy
from tapd.formats.binarycopy import Column, Fixed, Ragged
from tapd.formats.cells import Cell, Kind
from tapd.formats.copyout import gather_positions
from tapd.formats.query import sql_bytes

#: VOTable datatype -> (send function, byte size, BINARY2 null filler, BINARY magic null).
_SCALARS: dict[str, tuple[str, int, bytes, int | None]] = {
    "short": ("int2send", 2, b"\x00\x00", -(2**15)),
    "int": ("int4send", 4, b"\x00" * 4, -(2**31)),
    "long": ("int8send", 8, b"\x00" * 8, -(2**63)),
    "float": ("float4send", 4, bytes.fromhex("7fc00000"), None),
    "double": ("float8send", 8, bytes.fromhex("7ff8000000000000"), None),
}
_COUNT = np.dtype(">u4")
#: Bytes of a boolean cell, by PostgreSQL's binary boolean (0, 1).
_BOOLEAN_CELLS = np.frombuffer(b"FT", dtype=np.uint8)


class Conversion(enum.Enum):
    """What turns a COPY value into the cell's bytes."""

    NONE = "none"  # the value's bytes are the cell's
    BOOLEAN = "boolean"  # PostgreSQL's 0/1 byte -> 'F'/'T'
    LOW_BYTE = "low byte"  # smallint -> unsignedByte
    ASCII = "ascii"  # UTF-8 text -> ASCII, '?' for other characters
    UTF16 = "utf16"  # UTF-8 text -> UTF-16BE


@dataclass(frozen=True)
class BinaryCell:
    """How one column travels in the COPY and becomes its cell."""

    sql: str  # the COPY's expression (NULL exactly when the value is NULL)
    copy_width: int | None  # bytes of every COPY value; None: they vary
    conversion: Conversion
    width: int | None  # bytes of the cell; None: a count, then the elements
    unit: int  # bytes per counted element
    filler: bytes  # the cell of a NULL (fixed width)


def magic_null(cell: Cell) -> int | None:
    """The VALUES null value BINARY declares for an integer column (None: no magic)."""
    if cell.kind is not Kind.INTEGER:
        return None
    if cell.datatype == "unsignedByte":
        return 255
    return _SCALARS[cell.datatype][3]


def _element(datatype: str, x: str, with_magic: bool) -> tuple[str, int, bytes]:
    """SQL for one numeric/boolean element, its size, and the filler used for NULL."""
    if datatype in ("boolean", "bit"):
        return f"CASE WHEN {x} THEN '\\x54'::bytea WHEN NOT {x} THEN '\\x46'::bytea END", 1, b"?"
    if datatype == "unsignedByte":
        filler = b"\xff" if with_magic else b"\x00"
        return f"substring(int2send({x}) from 2 for 1)", 1, filler
    send, size, filler, magic = _SCALARS.get(datatype, _SCALARS["double"])
    if with_magic and magic is not None:
        filler = magic.to_bytes(size, "big", signed=True)
    return f"{send}({x})", size, filler


def _array(cell: Cell, with_magic: bool) -> BinaryCell:
    """An array's elements, encoded by SQL (fixed size: padded or cut; NULL elements filled)."""
    x = cell.ref
    element, size, filler = _element(cell.datatype, "e", with_magic)
    if cell.fixed is not None and cell.fixed <= 16:
        # short fixed arrays (points, circles): index directly, no sub-select per cell
        parts = [
            f"coalesce({_element(cell.datatype, f'{x}[{i}]', with_magic)[0]}, {sql_bytes(filler)})"
            for i in range(1, cell.fixed + 1)
        ]
        width = cell.fixed * size
        sql = f"CASE WHEN {x} IS NOT NULL THEN {' || '.join(parts)} END"
        return BinaryCell(sql, width, Conversion.NONE, width, size, filler * cell.fixed)
    elements = (
        f"(SELECT coalesce(string_agg(coalesce({element}, {sql_bytes(filler)}), ''::bytea),"
        f" ''::bytea) FROM unnest({x}) AS e)"
    )
    if cell.fixed is not None:
        width = cell.fixed * size
        pad = sql_bytes(filler * cell.fixed)
        sql = (
            f"CASE WHEN {x} IS NOT NULL THEN substring({elements} || {pad} from 1 for {width}) END"
        )
        return BinaryCell(sql, width, Conversion.NONE, width, size, filler * cell.fixed)
    if cell.limit is not None:
        elements = f"substring({elements} from 1 for {cell.limit * size})"
    sql = f"CASE WHEN {x} IS NOT NULL THEN {elements} END"
    return BinaryCell(sql, None, Conversion.NONE, None, size, b"")


def _bytes(cell: Cell) -> BinaryCell:
    x = cell.ref
    if cell.fixed is not None:
        pad = sql_bytes(bytes(cell.fixed))
        sql = f"substring({x} || {pad} from 1 for {cell.fixed})"
        return BinaryCell(sql, cell.fixed, Conversion.NONE, cell.fixed, 1, bytes(cell.fixed))
    if cell.limit is not None:
        x = f"substring({x} from 1 for {cell.limit})"
    return BinaryCell(x, None, Conversion.NONE, None, 1, b"")


def _text(cell: Cell) -> BinaryCell:
    x = cell.ref if cell.limit is None else f"left({cell.ref}, {cell.limit})"
    unit = 2 if cell.datatype == "unicodeChar" else 1
    conversion = Conversion.UTF16 if unit == 2 else Conversion.ASCII
    width = None if cell.fixed is None else cell.fixed * unit
    return BinaryCell(x, None, conversion, width, unit, bytes(width or 0))


def plan(cell: Cell, *, binary2: bool) -> BinaryCell:
    """How ``cell`` travels and becomes its BINARY2 (or BINARY) cell."""
    if cell.kind is Kind.TEXT:
        return _text(cell)
    if cell.kind is Kind.BYTES:
        return _bytes(cell)
    if cell.kind is Kind.ARRAY:
        return _array(cell, with_magic=not binary2)
    _, size, filler = _element(cell.datatype, cell.ref, with_magic=not binary2)
    if cell.kind is Kind.BOOLEAN:
        return BinaryCell(cell.ref, 1, Conversion.BOOLEAN, 1, 1, filler)
    if cell.datatype == "unsignedByte":  # normalised to smallint
        return BinaryCell(cell.ref, 2, Conversion.LOW_BYTE, 1, 1, filler)
    return BinaryCell(cell.ref, size, Conversion.NONE, size, size, filler)


def _cell_values(column: Column, cell: BinaryCell) -> Column:
    """The column's values as the serialisation's cells (fixed ones with NULLs filled)."""
    if isinstance(column, Ragged):
        if cell.conversion is Conversion.ASCII:
            column = binarycopy.ascii_text(column)
        elif cell.conversion is Conversion.UTF16:
            column = binarycopy.utf16_text(column)
        if cell.width is None:
            return column
        column = binarycopy.to_width(column, cell.width)
    elif cell.conversion is Conversion.BOOLEAN:
        column = Fixed(column.nulls, _BOOLEAN_CELLS[np.minimum(column.values, 1)])
    elif cell.conversion is Conversion.LOW_BYTE:
        column = Fixed(column.nulls, column.values[:, 1:])
    return Fixed(column.nulls, binarycopy.filled(column, cell.filler))


def _null_flags(columns: Sequence[Column]) -> np.ndarray[Any, Any]:
    """BINARY2's null flags of each row: (rows, bytes), first column in the top bit."""
    rows, size = len(columns[0].nulls), (len(columns) + 7) // 8
    if not any(column.nulls.any() for column in columns):
        return np.zeros((rows, size), dtype=np.uint8)
    nulls = np.stack([column.nulls for column in columns], axis=1)
    return np.packbits(nulls, axis=1)


def encode_rows(columns: Sequence[Column], cells: Sequence[BinaryCell], *, binary2: bool) -> bytes:
    """The serialisation's bytes of a batch's rows (``columns`` from ``binarycopy.split``)."""
    values = [_cell_values(column, cell) for column, cell in zip(columns, cells, strict=True)]
    if not values:
        return b""
    rows = len(values[0].nulls)
    flags = _null_flags(values) if binary2 else np.zeros((rows, 0), dtype=np.uint8)
    if all(isinstance(value, Fixed) for value in values):
        # rows of one size: a matrix, each column a slice of it
        parts = [flags, *(value.values for value in values if isinstance(value, Fixed))]
        return np.concatenate(parts, axis=1).tobytes()
    sizes = np.full(rows, flags.shape[1], dtype=np.int64)
    for value in values:
        sizes += value.width if isinstance(value, Fixed) else 4 + value.lengths
    position = np.cumsum(sizes) - sizes  # where each row starts
    out = np.empty(int(sizes.sum()), dtype=np.uint8)
    for byte in range(flags.shape[1]):
        out[position + byte] = flags[:, byte]
    position += flags.shape[1]
    for value, cell in zip(values, cells, strict=True):
        if isinstance(value, Fixed):
            if value.width:
                items = np.ascontiguousarray(value.values).view(f"V{value.width}")
                binarycopy.anywhere(out, f"V{value.width}")[position] = items[:, 0]
            position += value.width
        else:
            binarycopy.anywhere(out, _COUNT)[position] = value.lengths // cell.unit
            position += 4
            out[gather_positions(position, position + value.lengths)] = value.values
            position += value.lengths
    return out.tobytes()
