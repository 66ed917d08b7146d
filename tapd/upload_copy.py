"""Uploaded rows as PostgreSQL ``COPY ... FROM STDIN`` text, a column at a time.

Converting an upload value by value (a numpy scalar each, then psycopg's
dumper each) cost about 20 microseconds per value: 100,000 uploaded positions
took seconds to store, more than the crossmatch they were sent for. Numeric
and boolean columns are formatted here by numpy for the whole column at once
(``astype(str)`` writes the shortest text that reads back to the same
float64 or float32), text columns by one ``translate`` per value; rows are
joined into COPY's text format. Columns of other types (arrays, geometry)
have no fast path: ``copy_text`` then returns None and the caller stores the
rows one by one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

#: COPY's text format: NULL, and the characters a value must escape.
NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})

NUMERIC_TYPES = frozenset({"smallint", "integer", "bigint", "real", "double precision"})
TEXT_TYPES = frozenset({"text", "timestamp"})

#: Rows per chunk handed to COPY.
BATCH_ROWS = 20_000


def text_value(value: Any) -> str | None:
    """An uploaded text value as stored: None for a null or an empty string (VOTable
    cannot tell them apart, VOTable 1.4 §5.1), NUL characters dropped."""
    if value is None or value is np.ma.masked:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).replace("\x00", "") or None


def copy_fields(pg_type: str, values: Any) -> list[str] | None:
    """One column (a numpy, possibly masked, array) as COPY text fields; None when
    ``pg_type`` has no fast path. NaN is NULL, as everywhere in uploads."""
    data = np.ma.getdata(values)
    mask = np.ma.getmaskarray(values)
    if pg_type in NUMERIC_TYPES and data.dtype.kind in "iuf":
        if data.dtype.kind == "f":
            mask = mask | np.isnan(data)
        fields: list[str] = np.where(mask, NULL, data.astype(str)).tolist()
        return fields
    if pg_type == "boolean" and data.dtype.kind == "b":
        flags: list[str] = np.where(mask, NULL, np.where(data, "t", "f")).tolist()
        return flags
    if pg_type in TEXT_TYPES:
        texts = []
        for value, masked in zip(data.tolist(), mask.tolist(), strict=True):
            text = None if masked else text_value(value)
            texts.append(NULL if text is None else text.translate(_ESCAPES))
        return texts
    return None


def copy_text(pg_types: Sequence[str], rows: Any) -> Iterator[bytes] | None:
    """The rows of a numpy record array (fields in column order) as chunks of COPY
    text, or None when a column has no fast path."""
    names = rows.dtype.names or ()
    columns = [
        copy_fields(pg_type, rows[name]) for pg_type, name in zip(pg_types, names, strict=True)
    ]
    if any(column is None for column in columns):
        return None
    return _chunks([c for c in columns if c is not None], len(rows))


def _chunks(columns: list[list[str]], count: int) -> Iterator[bytes]:
    for start in range(0, count, BATCH_ROWS):
        lines = zip(*(column[start : start + BATCH_ROWS] for column in columns), strict=True)
        yield ("\n".join("\t".join(line) for line in lines) + "\n").encode()
