"""What every result writer does, and the pieces they share.

A writer states the SQL of one output row (PostgreSQL renders or encodes the
cells, see ``tapd.formats.query``) and turns batches of those rows into its
document: ``begin`` before the first row, ``write_rows`` per batch, ``end``
after the last (with the overflow flag), or ``fail`` when the query breaks
after output started (VOTable then closes the same document with an ERROR
INFO, checklist TAP-53).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import BinaryIO

import psycopg

from tapd.columns import ColumnMeta
from tapd.errors import TapdError
from tapd.formats.cells import Cell
from tapd.formats.copyout import Batch

#: COPY options for rows that are one bytea value each (mode ``binary``).
BINARY_VALUES = "FORMAT binary"
#: COPY options for rows that are one line of text each, written as they are (mode ``lines``):
#: CSV with a delimiter and quote that never occur in the value, so nothing is quoted.
TEXT_LINES = "FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01'"

Infos = Mapping[str, str] | Iterable[tuple[str, str]]


def info_pairs(infos: Infos | None) -> list[tuple[str, str]]:
    """INFO name/value pairs from a mapping or a sequence of pairs."""
    if infos is None:
        return []
    if isinstance(infos, Mapping):
        return [(str(k), str(v)) for k, v in infos.items()]
    return [(str(k), str(v)) for k, v in infos]


def error_message(exc: BaseException) -> str:
    """What to tell the user about an error that ended a query."""
    if isinstance(exc, TapdError):
        return exc.message
    if isinstance(exc, psycopg.Error):
        primary = exc.diag.message_primary if exc.diag else None
        return primary or str(exc).strip().splitlines()[0]
    return "internal error while writing the result"


def concat_sql(parts: Sequence[str]) -> str:
    """``concat(...)`` of any number of parts (NULL prints as nothing; no 100-argument limit)."""
    if len(parts) <= 90:
        return f"concat({', '.join(parts)})"
    return concat_sql([concat_sql(parts[i : i + 90]) for i in range(0, len(parts), 90)])


class TableWriter:
    """Base of the format writers; see the module docstring for the life cycle."""

    #: COPY options of the statement.
    copy_options = BINARY_VALUES
    #: How ``tapd.formats.copyout`` reads the rows: ``binary``, ``lines`` or ``csv``.
    copy_mode = "binary"

    def __init__(self, cells: Sequence[Cell], infos: Infos | None = None) -> None:
        self.cells = tuple(cells)
        self.columns: tuple[ColumnMeta, ...] = tuple(cell.meta for cell in self.cells)
        self.infos = info_pairs(infos)

    def row_sql(self) -> list[str]:
        """SQL expressions of one COPY row (one per COPY column)."""
        raise NotImplementedError

    def begin(self, out: BinaryIO) -> None:
        """Write everything before the first row."""

    def write_rows(self, out: BinaryIO, batch: Batch) -> None:
        """Write one batch of rows as PostgreSQL produced them."""
        out.write(batch.values())

    def end(self, out: BinaryIO, *, overflow: bool) -> None:
        """Write everything after the last row."""

    def fail(self, out: BinaryIO, message: str) -> None:
        """End a document whose query failed after ``begin``; formats without a way do nothing."""
