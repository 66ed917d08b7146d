"""What each result column is, and the SQL that turns its values into a canonical form.

Writers never convert values in Python: PostgreSQL formats or encodes every
cell inside the ``COPY`` statement (see ``tapd.formats.query``). This module
classifies a column from the checker's ``ColumnMeta`` and the PostgreSQL type
the query really returns, and gives the SQL that normalises its value:
integers and floats cast to the VOTable width, timestamps to DALI text
(``YYYY-MM-DDThh:mm:ss[.ffffff]``, UTC for ``timestamptz``), pgsphere values to
``float8[]`` in degrees, anything unknown to ``text``. The per-format modules
then encode the normalised value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tapd.columns import ColumnMeta
from tapd.sqltypes import split_type


class Kind(enum.Enum):
    """The shape of a normalised value, which decides how formats encode it."""

    BOOLEAN = "boolean"
    INTEGER = "integer"  # short, int, long, unsignedByte scalars
    FLOAT = "float"  # float, double
    TEXT = "text"  # char, unicodeChar (also timestamps, as DALI text)
    ARRAY = "array"  # numeric or boolean arrays (geometry: double arrays)
    BYTES = "bytes"  # unsignedByte arrays from bytea


#: VOTable datatype -> (PostgreSQL type after normalisation, kind).
DATATYPES: dict[str, tuple[str, Kind]] = {
    "boolean": ("boolean", Kind.BOOLEAN),
    "bit": ("boolean", Kind.BOOLEAN),
    "unsignedByte": ("smallint", Kind.INTEGER),
    "short": ("smallint", Kind.INTEGER),
    "int": ("integer", Kind.INTEGER),
    "long": ("bigint", Kind.INTEGER),
    "float": ("real", Kind.FLOAT),
    "double": ("double precision", Kind.FLOAT),
    "char": ("text", Kind.TEXT),
    "unicodeChar": ("text", Kind.TEXT),
}

_TIMESTAMP_TYPES = {
    "timestamp without time zone": "replace({x}::text, ' ', 'T')",
    "timestamp with time zone": "replace(({x} AT TIME ZONE 'UTC')::text, ' ', 'T')",
    "date": "{x}::text",
}

#: pgsphere values as DALI arrays in degrees (point, circle, polygon; a box as its 4 corners).
_PGSPHERE_ARRAYS = {
    "spoint": "ARRAY[degrees(long({x})), degrees(lat({x}))]",
    "scircle": (
        "ARRAY[degrees(long(center({x}))), degrees(lat(center({x}))), degrees(radius({x}))]"
    ),
    "sbox": (
        "ARRAY[degrees(long(sw({x}))), degrees(lat(sw({x}))), degrees(long(ne({x}))),"
        " degrees(lat(sw({x}))), degrees(long(ne({x}))), degrees(lat(ne({x}))),"
        " degrees(long(sw({x}))), degrees(lat(ne({x})))]"
    ),
    # pgsphere 1.2 has no vertex accessor: parse its (radian) text output
    "spoly": (
        "ARRAY(SELECT degrees(v::float8) FROM"
        " unnest(string_to_array(translate({x}::text, '{{}}() ', ''), ',')) AS v)"
    ),
}


def _pgsphere_array(pg_base: str, x: str) -> str:
    return f"CASE WHEN {x} IS NOT NULL THEN {_PGSPHERE_ARRAYS[pg_base].format(x=x)} END"


@dataclass(frozen=True)
class Cell:
    """One result column as the writers see it."""

    index: int
    meta: ColumnMeta
    pg_type: str  # what the query returns, as format_type() spells it
    kind: Kind
    sql_type: str  # PostgreSQL type of the normalised value ("double precision[]", "bytea", ...)
    fixed: int | None  # fixed element count (char(n), point); None when variable or scalar
    limit: int | None  # upper bound of a variable count ("n*"), if any

    @property
    def ref(self) -> str:
        """SQL name of the normalised value in the writers' SELECT."""
        return f"c{self.index}"

    @property
    def datatype(self) -> str:
        return self.meta.datatype

    @property
    def is_array(self) -> bool:
        """Whether VOTable declares an arraysize (strings included)."""
        return self.meta.arraysize is not None

    @property
    def variable(self) -> bool:
        """Whether the element count varies from row to row."""
        return self.meta.arraysize is not None and self.meta.arraysize.endswith("*")

    @property
    def element_type(self) -> str:
        """PostgreSQL type of one array element (for ARRAY cells)."""
        return self.sql_type.removesuffix("[]")


def parse_arraysize(arraysize: str | None) -> tuple[int | None, int | None]:
    """(fixed count, bound of a variable count): ``"2"`` -> (2, None); ``"8*"`` -> (None, 8).

    ``"*"`` and ``None`` give (None, None).

    Multi-dimensional sizes (``"2x3"``, ``"2x*"``) count all elements.
    """
    if arraysize is None:
        return None, None
    dims = arraysize.split("x")
    last = dims[-1]
    inner = 1
    for dim in dims[:-1]:
        inner *= int(dim)
    if last.endswith("*"):
        bound = last[:-1]
        return None, inner * int(bound) if bound else None
    return inner * int(last), None


def classify(index: int, meta: ColumnMeta, pg_type: str) -> Cell:
    """The ``Cell`` of a column from its metadata and the type PostgreSQL returns."""
    base_type, kind = DATATYPES.get(meta.datatype, ("text", Kind.TEXT))
    fixed, limit = parse_arraysize(meta.arraysize)
    pg_base, _, pg_array_levels = split_type(pg_type)
    if kind is Kind.TEXT:
        sql_type = "text"
        if meta.arraysize is None:
            fixed = 1
    elif meta.arraysize is None:
        sql_type = base_type
    elif meta.datatype == "unsignedByte" and pg_base == "bytea" and not pg_array_levels:
        kind, sql_type = Kind.BYTES, "bytea"
    else:
        kind, sql_type = Kind.ARRAY, f"{base_type}[]"
    return Cell(index, meta, pg_type, kind, sql_type, fixed, limit)


def normalise_sql(cell: Cell, x: str) -> str:
    """SQL turning the query's value ``x`` of this column into ``cell.sql_type``."""
    pg_base, _, pg_array_levels = split_type(cell.pg_type)
    if cell.kind is Kind.TEXT:
        if cell.meta.xtype == "timestamp" and pg_base in _TIMESTAMP_TYPES and not pg_array_levels:
            return _TIMESTAMP_TYPES[pg_base].format(x=x)
        if pg_base in ("text", "character varying") and not pg_array_levels:
            return x
        if pg_base in _PGSPHERE_ARRAYS:
            return f"array_to_string({_pgsphere_array(pg_base, x)}, ' ')"
        if pg_array_levels and pg_base not in ("text", "character varying", "character"):
            return f"array_to_string({x}, ' ')"
        return f"{x}::text"
    if pg_base in _PGSPHERE_ARRAYS and not pg_array_levels:
        value = _pgsphere_array(pg_base, x)
        return value if cell.sql_type == "double precision[]" else f"({value})::{cell.sql_type}"
    if cell.pg_type == cell.sql_type:
        return x
    if cell.kind is Kind.BOOLEAN and pg_base not in ("boolean", "text", "character varying"):
        return f"({x} <> 0)"  # bit-like numbers
    return f"{x}::{cell.sql_type}"
