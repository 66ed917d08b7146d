"""SQL that renders normalised values as text, shared by the text formats.

CSV, TSV, JSON, VOTable TABLEDATA and HTML all print cells in PostgreSQL; the
small differences (how booleans and infinities are spelled, whether text is
XML-escaped or restricted to ASCII) are parameters here, so each format module
only states its choices.
"""

from __future__ import annotations

from tapd.formats.cells import Cell, Kind

#: Characters XML 1.0 forbids (all C0 controls but TAB, LF, CR); replaced by '?'.
_XML_FORBIDDEN = "".join(chr(c) for c in range(1, 32) if c not in (9, 10, 13))


def ascii_only(x: str) -> str:
    """Text with every non-ASCII character replaced by '?' (VOTable ``char`` is ASCII)."""
    return (
        f"CASE WHEN octet_length({x}) = char_length({x}) THEN {x}"
        f" ELSE regexp_replace({x}, '[^' || chr(1) || '-' || chr(127) || ']', '?', 'g') END"
    )


def xml_escaped(x: str) -> str:
    """Text safe as XML character data on one line.

    & < > escaped; CR and LF as character references (so they survive XML
    parsing and a row stays one line); other C0 controls, which XML forbids, '?'.
    """
    cleaned = f"translate({x}, '{_XML_FORBIDDEN}', '{'?' * len(_XML_FORBIDDEN)}')"
    escaped = f"replace(replace(replace({cleaned}, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')"
    return f"replace(replace({escaped}, chr(13), '&#13;'), chr(10), '&#10;')"


def byte_array(x: str) -> str:
    """bytea as an ``int[]`` of its bytes (NULL stays NULL)."""
    return (
        f"CASE WHEN {x} IS NOT NULL THEN ARRAY(SELECT get_byte({x}, i)"
        f" FROM generate_series(0, length({x}) - 1) AS i) END"
    )


def bytes_as_numbers(x: str) -> str:
    """bytea as its bytes in decimal, space-separated (``unsignedByte`` arrays)."""
    return f"array_to_string({byte_array(x)}, ' ')"


def infinities_as(x: str, positive: str, negative: str) -> str:
    """PostgreSQL's ``Infinity``/``-Infinity`` spelled as a format wants."""
    if positive == "Infinity" and negative == "-Infinity":
        return x
    return f"replace(replace({x}, '-Infinity', '{negative}'), 'Infinity', '{positive}')"


def cell_text(
    cell: Cell,
    *,
    true: str = "true",
    false: str = "false",
    positive_infinity: str = "Infinity",
    negative_infinity: str = "-Infinity",
    xml: bool = False,
    ascii_text: bool = False,
) -> str:
    """SQL printing one normalised cell as text; NULL stays NULL."""
    x = cell.ref
    if cell.kind is Kind.BOOLEAN:
        return f"CASE WHEN {x} THEN '{true}' WHEN NOT {x} THEN '{false}' END"
    if cell.kind is Kind.INTEGER:
        return f"{x}::text"
    if cell.kind is Kind.FLOAT:
        return infinities_as(f"{x}::text", positive_infinity, negative_infinity)
    if cell.kind is Kind.BYTES:
        return bytes_as_numbers(x)
    if cell.kind is Kind.ARRAY:
        if cell.element_type == "boolean":
            return f"translate(array_to_string({x}, ' '), 'tf', '{true[0]}{false[0]}')"
        text = f"array_to_string({x}, ' ', 'NaN')"
        if cell.element_type in ("real", "double precision"):
            text = infinities_as(text, positive_infinity, negative_infinity)
        return text
    text = x
    if ascii_text and cell.datatype != "unicodeChar":
        text = ascii_only(text)
    if xml:
        text = xml_escaped(text)
    return text
