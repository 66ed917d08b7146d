"""SQL encoding cells in VOTable's binary serialisations (BINARY and BINARY2).

Big-endian like PostgreSQL's ``*send`` functions, so each cell is a
concatenation of ``int8send`` & co.; variable-length arrays and strings carry a
4-byte element count (VOTable 1.4 §5). BINARY2 rows start with null flags
(one bit per column, most significant first) and null cells are filled with
NaN or zero bytes; BINARY has no flags: integers use the magic value declared
in ``VALUES null`` (the type's minimum), floats NaN, booleans '?', strings and
arrays come out empty.

``char`` is 7-bit ASCII (VOTable up to 1.5; astropy refuses anything else), so
non-ASCII characters in ``char`` columns become '?'. Columns declared
``unicodeChar`` are written as UTF-16BE (UCS-2 for the Basic Multilingual
Plane; characters beyond it as surrogate pairs, counted as two).
"""

from __future__ import annotations

from collections.abc import Sequence

from tapd.formats.cells import Cell, Kind
from tapd.formats.query import sql_bytes
from tapd.formats.textual import ascii_only

#: VOTable datatype -> (send function, byte size, BINARY2 null filler, BINARY magic null).
_SCALARS: dict[str, tuple[str, int, bytes, int | None]] = {
    "short": ("int2send", 2, b"\x00\x00", -(2**15)),
    "int": ("int4send", 4, b"\x00" * 4, -(2**31)),
    "long": ("int8send", 8, b"\x00" * 8, -(2**63)),
    "float": ("float4send", 4, bytes.fromhex("7fc00000"), None),
    "double": ("float8send", 8, bytes.fromhex("7ff8000000000000"), None),
}
_EMPTY = sql_bytes(b"")
_ZERO_COUNT = sql_bytes(b"\x00" * 4)


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


def _utf16(x: str) -> str:
    """UTF-16BE bytes of text: ASCII by a fast path, anything else character by character."""
    hex_digits = f"encode(textsend({x}), 'hex')"
    ascii_path = f"decode(regexp_replace({hex_digits}, '(..)', '00\\1', 'g'), 'hex')"
    unit = (
        "CASE WHEN cp > 65535 THEN substring(int4send(55296 + ((cp - 65536) >> 10)) from 3)"
        " || substring(int4send(56320 + ((cp - 65536) & 1023)) from 3)"
        " ELSE substring(int4send(cp) from 3) END"
    )
    general = (
        f"(SELECT coalesce(string_agg({unit}, ''::bytea ORDER BY n), ''::bytea)"
        f" FROM (SELECT ascii(ch) AS cp, n"
        f" FROM string_to_table({x}, NULL) WITH ORDINALITY AS s(ch, n)) AS u)"
    )
    return f"CASE WHEN octet_length({x}) = char_length({x}) THEN {ascii_path} ELSE {general} END"


def _text(cell: Cell) -> str:
    """SQL encoding a text cell (never NULL: NULL becomes the empty/zero filler)."""
    x = cell.ref
    unit = 2 if cell.datatype == "unicodeChar" else 1
    if cell.limit is not None:
        x = f"left({x}, {cell.limit})"
    # textsend: the text's bytes in the client encoding, which the writer set to UTF8
    data = _utf16(x) if unit == 2 else f"textsend({ascii_only(x)})"
    if cell.fixed is not None:
        width = cell.fixed * unit
        zeros = sql_bytes(bytes(width))
        return f"coalesce(substring({data} || {zeros} from 1 for {width}), {zeros})"
    if unit == 1:  # one byte per character once non-ASCII ones are '?'
        return f"coalesce(int4send(char_length({x})) || {data}, {_ZERO_COUNT})"
    units = f"(SELECT int4send(length(b) / 2) || b FROM (SELECT {data} AS b) AS e)"
    return f"coalesce({units}, {_ZERO_COUNT})"


def _array(cell: Cell, with_magic: bool) -> str:
    x = cell.ref
    element, size, filler = _element(cell.datatype, "e", with_magic)
    element = f"coalesce({element}, {sql_bytes(filler)})"
    if cell.fixed is not None and cell.fixed <= 16:
        # short fixed arrays (points, circles): index directly, no sub-select per cell
        parts = [
            f"coalesce({_element(cell.datatype, f'{x}[{i}]', with_magic)[0]}, {sql_bytes(filler)})"
            for i in range(1, cell.fixed + 1)
        ]
        return " || ".join(parts)
    elements = (
        f"(SELECT coalesce(string_agg({element}, ''::bytea), ''::bytea) FROM unnest({x}) AS e)"
    )
    if cell.fixed is not None:
        width = cell.fixed * size
        pad = sql_bytes(filler * cell.fixed)
        return f"substring(coalesce({elements}, ''::bytea) || {pad} from 1 for {width})"
    if cell.limit is not None:
        elements = f"substring({elements} from 1 for {cell.limit * size})"
    return f"coalesce(int4send(length({elements}) / {size}) || {elements}, {_ZERO_COUNT})"


def _bytes(cell: Cell) -> str:
    x = cell.ref
    if cell.fixed is not None:
        pad = sql_bytes(bytes(cell.fixed))
        return f"substring(coalesce({x}, ''::bytea) || {pad} from 1 for {cell.fixed})"
    if cell.limit is not None:
        x = f"substring({x} from 1 for {cell.limit})"
    return f"coalesce(int4send(length({x})) || {x}, {_ZERO_COUNT})"


def cell_bytes(cell: Cell, *, binary2: bool) -> str:
    """SQL encoding one cell; never NULL."""
    if cell.kind is Kind.TEXT:
        return _text(cell)
    if cell.kind is Kind.BYTES:
        return _bytes(cell)
    if cell.kind is Kind.ARRAY:
        return _array(cell, with_magic=not binary2)
    element, _, filler = _element(cell.datatype, cell.ref, with_magic=not binary2)
    return f"coalesce({element}, {sql_bytes(filler)})"


def null_flags(cells: Sequence[Cell]) -> list[str]:
    """SQL for the null-flag bytes that start a row (BINARY2's layout: MSB = first column)."""
    flags = []
    for start in range(0, len(cells), 8):
        group = cells[start : start + 8]
        bits = " + ".join(f"({cell.ref} IS NULL)::int * {128 >> i}" for i, cell in enumerate(group))
        any_null = " OR ".join(f"{cell.ref} IS NULL" for cell in group)
        # most rows have no NULL: test that first, build the byte only when needed
        flags.append(
            f"CASE WHEN {any_null} THEN set_byte('\\x00'::bytea, 0, {bits}) ELSE '\\x00'::bytea END"
        )
    return flags


def row_bytes(cells: list[Cell] | tuple[Cell, ...], *, binary2: bool) -> str:
    """SQL for one whole row of the serialisation."""
    parts = null_flags(cells) if binary2 else []
    parts += [cell_bytes(cell, binary2=binary2) for cell in cells]
    return " || ".join(parts) if parts else _EMPTY
