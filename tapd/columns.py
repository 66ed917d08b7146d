"""Metadata of one result column: what the ADQL checker computes and the writers emit.

Types are VOTable's (datatype, arraysize, xtype), as in TAP_SCHEMA.columns; the
mapping from PostgreSQL types lives in ``tapd.sqltypes``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ColumnMeta:
    """One output column of a query result."""

    name: str
    # VOTable datatype: boolean, short, int, long, float, double, char, unicodeChar, unsignedByte
    datatype: str
    arraysize: str | None = None  # None for scalars; "*", "n", "n*"
    xtype: str | None = None  # DALI xtype: timestamp, point, circle, polygon, ...
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    description: str | None = None
