"""Uploaded rows as PostgreSQL ``COPY ... FROM STDIN`` text.

Handing each value to psycopg's dumper cost about 20 microseconds per value:
100,000 uploaded positions took seconds to store, more than the crossmatch
they were sent for. Rows arrive as Python values from the streaming reader
(``tapd.votable_stream``); each is written here as COPY text (``repr`` is the
shortest text that reads back to the same float), and rows are sent in
chunks of ``BATCH_ROWS``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

#: COPY's text format: NULL, and the characters a value must escape.
NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})

#: Rows per chunk handed to COPY.
BATCH_ROWS = 20_000


def text_value(value: Any) -> str | None:
    """An uploaded text value as stored: None for a null or an empty string (VOTable
    cannot tell them apart, VOTable 1.4 §5.1), NUL characters dropped."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).replace("\x00", "") or None


def copy_field(value: Any) -> str:
    """One converted upload value (see ``tapd.uploads``) as a COPY text field."""
    if value is None:
        return NULL
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, float):
        return NULL if math.isnan(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "{" + ",".join(_array_item(v) for v in value) + "}"
    return str(value).translate(_ESCAPES)


def _array_item(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NULL"
    if isinstance(value, bool):
        return "t" if value else "f"
    return repr(value) if isinstance(value, float) else str(value)


def copy_rows(rows: Iterator[Sequence[Any]]) -> Iterator[bytes]:
    """Rows of converted values as chunks of COPY text (``BATCH_ROWS`` rows each)."""
    lines: list[str] = []
    for row in rows:
        lines.append("\t".join([copy_field(v) for v in row]))
        if len(lines) >= BATCH_ROWS:
            yield ("\n".join(lines) + "\n").encode()
            lines = []
    if lines:
        yield ("\n".join(lines) + "\n").encode()
