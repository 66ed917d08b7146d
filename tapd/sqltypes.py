"""PostgreSQL type -> VOTable (TAP_SCHEMA) type: the one mapping tapd uses.

Data, not a chain of ifs (as astropy.io.votable does): ``publish`` uses it to
fill TAP_SCHEMA.columns, the checker to type expressions, and the writers to
serialise values. Keys are PostgreSQL type names as ``format_type`` spells
them without modifiers (``character varying``, ``double precision``, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class VOType:
    """A VOTable datatype with arraysize and DALI xtype."""

    datatype: str
    arraysize: str | None = None
    xtype: str | None = None


#: Scalar PostgreSQL types.
SCALAR_TYPES: dict[str, VOType] = {
    "smallint": VOType("short"),
    "integer": VOType("int"),
    "bigint": VOType("long"),
    "real": VOType("float"),
    "double precision": VOType("double"),
    "numeric": VOType("double"),
    "boolean": VOType("boolean"),
    "text": VOType("char", "*"),
    "character varying": VOType("char", "*"),
    "character": VOType("char", "1"),
    "name": VOType("char", "*"),
    "timestamp without time zone": VOType("char", "*", "timestamp"),
    "timestamp with time zone": VOType("char", "*", "timestamp"),
    "date": VOType("char", "*", "timestamp"),
    "bytea": VOType("unsignedByte", "*"),
    "uuid": VOType("char", "36", "uuid"),
    "json": VOType("char", "*", "json"),
    "jsonb": VOType("char", "*", "json"),
    "spoint": VOType("double", "2", "point"),
    "scircle": VOType("double", "3", "circle"),
    "spoly": VOType("double", "*", "polygon"),
    "sbox": VOType("double", "*", "polygon"),
}

#: Types whose values are pgsphere geometries (returned in degrees as DALI arrays).
GEOMETRY_TYPES = frozenset({"spoint", "scircle", "spoly", "sbox"})

_MODIFIER = re.compile(
    r"^(?P<base>[a-z ]+?)(?:\((?P<args>[0-9, ]+)\))?(?P<rest>[a-z ]*)(?P<array>(\[\])*)$"
)


def split_type(pg_type: str) -> tuple[str, int | None, int]:
    """``character varying(20)[]`` -> (``character varying``, 20, 1 array level)."""
    text = pg_type.strip().lower()
    match = _MODIFIER.match(text)
    if not match:
        return text, None, 0
    base = (match["base"] + match["rest"]).strip()
    length = (
        int(match["args"].split(",")[0])
        if match["args"] and match["base"].startswith(("char", "bit"))
        else None
    )
    return base, length, len(match["array"]) // 2


def votable_type(pg_type: str) -> VOType:
    """The VOTable type of a PostgreSQL column type (as ``format_type`` prints it).

    Unknown types map to ``char``/``*``: the writers send their text form.
    """
    base, length, array_levels = split_type(pg_type)
    scalar = SCALAR_TYPES.get(base, VOType("char", "*"))
    if base == "character varying" and length is not None:
        scalar = VOType("char", f"{length}*")
    elif base == "character" and length is not None:
        scalar = VOType("char", str(length) if length > 1 else None)
    elif base == "character":
        scalar = VOType("char")
    if array_levels:
        if scalar.arraysize is not None or scalar.xtype is not None:
            # arrays of strings or geometries have no VOTable form: send text
            return VOType("char", "*")
        return VOType(scalar.datatype, "*")
    return scalar


#: VOTable datatype -> FITS binary table type code (FITS 4.0 §7.3, Table 18).
FITS_TYPE_CODES: dict[str, str] = {
    "boolean": "L",
    "bit": "L",
    "unsignedByte": "B",
    "short": "I",
    "int": "J",
    "long": "K",
    "float": "E",
    "double": "D",
    "char": "A",
    "unicodeChar": "A",  # FITS text is ASCII: writers replace other characters
}

#: Bytes per element of each FITS type code (and of VOTable's binary encodings).
FITS_CODE_SIZES: dict[str, int] = {"L": 1, "B": 1, "I": 2, "J": 4, "K": 8, "E": 4, "D": 8, "A": 1}


def fits_tform(vo: VOType) -> str:
    """The FITS TFORM of a VOTable type: ``D``, ``2D`` (point), ``PD`` (polygon), ``PA`` (text).

    Variable sizes become variable-length arrays (``P``); writers that know the
    longest value may append it (``PD(8)``) or, for text, use ``nA`` instead.
    """
    code = FITS_TYPE_CODES.get(vo.datatype, "A")
    if vo.arraysize is None:
        return code
    if vo.arraysize.endswith("*"):
        return f"P{code}"
    count = 1
    for dim in vo.arraysize.split("x"):
        count *= int(dim)
    return f"{count}{code}"
