"""Binary COPY rows taken apart into columns, a batch at a time, with numpy.

PostgreSQL's binary COPY sends each value as its ``*send`` function makes it:
integers and floats big-endian (VOTable's and FITS's byte order), text as
its bytes in the client encoding, bytea as is, each value behind a 4-byte
length (-1 for NULL). The binary writers select their columns plain (so the
server works no more than for a hand-written ``COPY ... (FORMAT binary)``)
and rebuild their serialisations from the columns here: every step works on
a whole batch (one numpy operation per column, none per row or value).

A column of a batch is ``Fixed`` (every value has the same size: a
``(rows, width)`` byte matrix) or ``Ragged`` (values of varying size: their
bytes one after the other, and each row's length). NULL rows are flagged in
``nulls``; their bytes are undefined (fixed) or empty (ragged), and each
format fills them its own way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tapd.formats.copyout import Batch, gather, gather_positions

Bytes = np.ndarray[Any, np.dtype[np.uint8]]
Offsets = np.ndarray[Any, np.dtype[np.int64]]
Mask = np.ndarray[Any, np.dtype[np.bool_]]


class CopyLayoutError(RuntimeError):
    """The COPY's rows do not have the fields the writer asked for (a bug, not bad input)."""


@dataclass(frozen=True)
class Fixed:
    """Values of one size: row i's bytes are ``values[i]`` (undefined where NULL)."""

    nulls: Mask
    values: Bytes  # (rows, width)

    @property
    def width(self) -> int:
        return int(self.values.shape[1])


@dataclass(frozen=True)
class Ragged:
    """Values of varying size: row i's bytes are ``values[offsets[i]:offsets[i + 1]]``."""

    nulls: Mask
    values: Bytes  # every row's bytes, one after the other (none for NULL)
    lengths: Offsets  # bytes of each row's value

    @property
    def offsets(self) -> Offsets:
        offsets: Offsets = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=offsets[1:])
        return offsets


Column = Fixed | Ragged


def anywhere(data: Any, dtype: Any) -> np.ndarray[Any, Any]:
    """``data`` seen as an item of ``dtype`` starting at every byte offset: indexing it with
    offsets reads (or writes) whole items at once, with no index per byte."""
    dtype = np.dtype(dtype)
    count = max(len(data) - dtype.itemsize + 1, 0)
    return np.ndarray(shape=(count,), dtype=dtype, buffer=data, strides=(1,))


def fixed_items(data: Any, starts: Offsets, width: int) -> Bytes:
    """The ``width`` bytes at each of ``starts``, as a ``(len(starts), width)`` matrix."""
    if width == 0 or not len(starts):
        return np.zeros((len(starts), width), dtype=np.uint8)
    items = anywhere(data, f"V{width}")[starts]
    matrix: Bytes = items.view(np.uint8).reshape(len(starts), width)
    return matrix


def split(batch: Batch, widths: Sequence[int | None]) -> list[Column]:
    """The columns of a batch of binary COPY rows (``copyout`` mode ``binary``).

    ``widths``: per column, the size of every non-NULL value (``Fixed``), or
    None for values of varying size (``Ragged``).
    """
    data = np.frombuffer(batch.data, dtype=np.uint8)
    lengths_at = anywhere(data, ">i4")
    position = batch.starts.astype(np.int64, copy=True)
    columns: list[Column] = []
    try:
        for width in widths:
            lengths = lengths_at[position].astype(np.int64)
            nulls = lengths < 0
            some_null = bool(nulls.any())
            if some_null:
                lengths[nulls] = 0
            position += 4
            if width is None:
                columns.append(Ragged(nulls, gather(data, position, position + lengths), lengths))
            else:
                if np.count_nonzero(lengths == width) + np.count_nonzero(nulls) != len(nulls):
                    raise CopyLayoutError(f"a value is not {width} bytes long")
                starts = np.where(nulls, 0, position) if some_null else position
                columns.append(Fixed(nulls, fixed_items(data, starts, width)))
            position += lengths
    except IndexError as exc:
        raise CopyLayoutError("a row ends before its last field") from exc
    if not np.array_equal(position, batch.row_ends()):
        raise CopyLayoutError("a row has more fields than the writer selected")
    return columns


# -- text --------------------------------------------------------------------------------


def _per_row(counts: Any, lengths: Offsets) -> Offsets:
    """Sums of ``counts`` (one per byte of a ragged column) over each row's bytes."""
    total = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=total[1:])
    ends = np.cumsum(lengths)
    sums: Offsets = total[ends] - total[ends - lengths]
    return sums


def ascii_text(column: Ragged) -> Ragged:
    """UTF-8 text with each non-ASCII character replaced by '?' (VOTable ``char``, FITS)."""
    values = column.values
    high = values >= 0x80
    if not high.any():
        return column
    first = values >= 0xC0  # a character's first byte; 0x80-0xBF continue it
    continuing = high & ~first
    replaced = np.where(first, np.uint8(ord("?")), values)[~continuing]
    lengths = column.lengths - _per_row(continuing, column.lengths)
    return Ragged(column.nulls, replaced, lengths)


def utf16_text(column: Ragged) -> Ragged:
    """UTF-8 text as UTF-16BE (VOTable ``unicodeChar``; beyond the BMP as surrogate pairs)."""
    values = column.values
    if not (values >= 0x80).any():  # ASCII: a zero byte before each
        wide = np.zeros(2 * len(values), dtype=np.uint8)
        wide[1::2] = values
        return Ragged(column.nulls, wide, 2 * column.lengths)
    encoded = values.tobytes().decode("utf-8").encode("utf-16-be")
    # a row's code units: one per character, two for characters beyond the BMP (4-byte UTF-8)
    units = ((values & 0xC0) != 0x80).astype(np.int64) + (values >= 0xF0)
    lengths = 2 * _per_row(units, column.lengths)
    return Ragged(column.nulls, np.frombuffer(encoded, dtype=np.uint8), lengths)


def to_width(column: Ragged, width: int) -> Fixed:
    """Each value cut or padded with zero bytes to ``width`` bytes (NULL: zeros)."""
    rows = len(column.lengths)
    matrix = np.zeros((rows, width), dtype=np.uint8)
    kept = np.minimum(column.lengths, width)
    starts = column.offsets[:-1]
    taken = column.values[gather_positions(starts, starts + kept)]
    row = np.repeat(np.arange(rows), kept)
    within = np.arange(len(taken)) - np.repeat(np.cumsum(kept) - kept, kept)
    matrix[row, within] = taken
    return Fixed(column.nulls, matrix)


def filled(column: Fixed, filler: bytes) -> Bytes:
    """The values with NULL rows set to ``filler`` (a row's bytes)."""
    values = column.values
    if column.nulls.any():
        values = values.copy() if not values.flags.writeable else values
        values[column.nulls] = np.frombuffer(filler, dtype=np.uint8)
    return values
