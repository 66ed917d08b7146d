"""Types of ADQL expressions: the PostgreSQL type the SQL yields plus result-column metadata.

The checker gives every expression a ``ValueType``; for a column reference it
is the column's TAP_SCHEMA metadata, for other expressions it is derived from
the PostgreSQL type through the one mapping in ``tapd.sqltypes``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tapd.columns import ColumnMeta
from tapd.sqltypes import split_type, votable_type

NUMERIC_TYPES = ("smallint", "integer", "bigint", "numeric", "real", "double precision")
INTEGER_TYPES = ("smallint", "integer", "bigint")
STRING_TYPES = frozenset({"text", "character varying", "character", "name", "unknown"})
TIMESTAMP_TYPES = frozenset({"timestamp without time zone", "timestamp with time zone", "date"})

#: pgsphere type -> ADQL geometry kind.
GEOMETRY_KINDS = {"spoint": "point", "scircle": "circle", "spoly": "polygon", "sbox": "box"}

#: ADQL type names (CAST targets, UDF signatures) -> PostgreSQL types.
ADQL_TYPES = {
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "REAL": "real",
    "DOUBLE PRECISION": "double precision",
    "DOUBLE": "double precision",
    "CHAR": "character",
    "VARCHAR": "character varying",
    "TIMESTAMP": "timestamp without time zone",
    "POINT": "spoint",
    "CIRCLE": "scircle",
    "POLYGON": "spoly",
    "REGION": "spoly",
    "BOOLEAN": "boolean",
    "BINARY": "bytea",
    "VARBINARY": "bytea",
}

#: The ADQL types CAST accepts (ADQL 2.1 §4.7.1).
CAST_TARGETS = (
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "REAL",
    "DOUBLE PRECISION",
    "CHAR",
    "VARCHAR",
    "TIMESTAMP",
    "POINT",
    "CIRCLE",
    "POLYGON",
)


@dataclass(frozen=True)
class ValueType:
    """What an expression yields: PostgreSQL base type (no modifiers) and column metadata."""

    pg: str
    meta: ColumnMeta

    @property
    def is_numeric(self) -> bool:
        return self.pg in NUMERIC_TYPES

    @property
    def is_integer(self) -> bool:
        return self.pg in INTEGER_TYPES

    @property
    def is_string(self) -> bool:
        return self.pg in STRING_TYPES

    @property
    def is_timestamp(self) -> bool:
        return self.pg in TIMESTAMP_TYPES

    @property
    def geometry(self) -> str | None:
        """ "point", "circle", "polygon", "box" or None."""
        return GEOMETRY_KINDS.get(self.pg)

    @property
    def is_null(self) -> bool:
        return self.pg == "unknown" and self.meta.datatype == "char" and self.meta.xtype == "null"

    def describe(self) -> str:
        """How to name this type in a message to the user."""
        if self.is_null:
            return "NULL"
        if self.geometry:
            return f"a {self.geometry}"
        if self.is_numeric:
            return "a number"
        if self.is_string:
            return "a string"
        if self.is_timestamp:
            return "a timestamp"
        return f"a value of type {self.pg}"

    def with_meta(self, **changes: Any) -> ValueType:
        return dataclasses.replace(self, meta=dataclasses.replace(self.meta, **changes))


def of_pg(pg_type: str, *, unit: str | None = None, ucd: str | None = None) -> ValueType:
    """The type of an expression yielding ``pg_type`` (as ``format_type`` prints it)."""
    vo = votable_type(pg_type)
    base, _, levels = split_type(pg_type)
    return ValueType(
        pg=base + "[]" * levels,
        meta=ColumnMeta(
            name="",
            datatype=vo.datatype,
            arraysize=vo.arraysize,
            xtype=vo.xtype,
            unit=unit,
            ucd=ucd,
        ),
    )


def of_column(pg_type: str, meta: ColumnMeta) -> ValueType:
    """The type of a published column: its PostgreSQL type, its TAP_SCHEMA metadata."""
    base, _, levels = split_type(pg_type)
    return ValueType(pg=base + "[]" * levels, meta=meta)


NULL_TYPE = ValueType(
    pg="unknown", meta=ColumnMeta(name="", datatype="char", arraysize="*", xtype="null")
)
