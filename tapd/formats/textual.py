"""SQL that renders normalised values as text, shared by the text formats.

CSV, TSV, JSON, VOTable TABLEDATA and HTML all print cells in PostgreSQL; the
small differences (how booleans and infinities are spelled, whether text is
XML-escaped or restricted to ASCII) are parameters here, so each format module
only states its choices.
"""

from __future__ import annotations

from tapd.formats.cells import Cell, Kind

#: What makes text need XML escaping: & < > and the C0 controls (XML forbids all but
#: TAB, LF and CR; LF and CR become references so a row stays on one line).
_NEEDS_ESCAPING = "E'[&<>\\x01-\\x1f]'"
_XML_FORBIDDEN = "E'[\\x01-\\x08\\x0b\\x0c\\x0e-\\x1f]'"


def ascii_only(x: str) -> str:
    """Text with every non-ASCII character replaced by '?' (VOTable ``char`` is ASCII)."""
    return (
        f"CASE WHEN octet_length({x}) = char_length({x}) THEN {x}"
        f" ELSE regexp_replace({x}, '[^' || chr(1) || '-' || chr(127) || ']', '?', 'g') END"
    )


def xml_escaped(x: str, *, ascii_text: bool = False) -> str:
    """Text safe as XML character data on one line (and ASCII if ``ascii_text``).

    & < > escaped; CR and LF as character references (so they survive XML
    parsing and a row stays one line); other C0 controls, which XML forbids,
    '?'. One test per value; the rewriting only for values that need it.
    """
    cleaned = f"regexp_replace({ascii_only(x) if ascii_text else x}, {_XML_FORBIDDEN}, '?', 'g')"
    escaped = f"replace(replace(replace({cleaned}, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')"
    rewritten = f"replace(replace({escaped}, chr(13), '&#13;'), chr(10), '&#10;')"
    needs = f"{x} ~ {_NEEDS_ESCAPING}"
    if ascii_text:
        needs += f" OR octet_length({x}) <> char_length({x})"
    return f"CASE WHEN {needs} THEN {rewritten} ELSE {x} END"


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
    """A float printed with PostgreSQL's ``Infinity``/``-Infinity`` spelled as a format wants."""
    if positive == "Infinity" and negative == "-Infinity":
        return x
    return (
        f"CASE WHEN {x} = 'Infinity' THEN '{positive}' WHEN {x} = '-Infinity' THEN '{negative}'"
        f" ELSE {x}::text END"
    )


def _array_infinities(text: str, positive: str, negative: str) -> str:
    if positive == "Infinity" and negative == "-Infinity":
        return text
    return f"replace(replace({text}, '-Infinity', '{negative}'), 'Infinity', '{positive}')"


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
        return x  # printed by COPY or concat() as PostgreSQL prints it
    if cell.kind is Kind.FLOAT:
        return infinities_as(x, positive_infinity, negative_infinity)
    if cell.kind is Kind.BYTES:
        return bytes_as_numbers(x)
    if cell.kind is Kind.ARRAY:
        if cell.element_type == "boolean":
            return f"translate(array_to_string({x}, ' '), 'tf', '{true[0]}{false[0]}')"
        text = f"array_to_string({x}, ' ', 'NaN')"
        if cell.element_type in ("real", "double precision"):
            text = _array_infinities(text, positive_infinity, negative_infinity)
        return text
    ascii_text = ascii_text and cell.datatype != "unicodeChar"
    if xml:
        return xml_escaped(x, ascii_text=ascii_text)
    return ascii_only(x) if ascii_text else x
