"""CSV (RFC 4180, header line) and TSV, straight from PostgreSQL's COPY.

COPY does the quoting (CSV) or escaping (TSV); the SQL only prints the cells
the DALI way (checklist TAP-48): timestamps ``YYYY-MM-DDThh:mm:ss``, arrays and
geometries as space-separated numbers, booleans ``true``/``false``, NULL as an
empty cell (in CSV an empty string is ``""``, so the two stay distinct).
TSV has no quoting: tabs, newlines and backslashes inside values are written
as ``\\t``, ``\\n``, ``\\r`` and ``\\\\`` (PostgreSQL's text format), and NULL
and the empty string are both an empty cell. Neither format can say that
MAXREC truncated the result; the job's result entry records it.
"""

from __future__ import annotations

import csv
import io
from typing import BinaryIO

from tapd.formats.base import TableWriter
from tapd.formats.textual import cell_text


class CsvWriter(TableWriter):
    copy_options = "FORMAT csv"
    copy_mode = "csv"

    def row_sql(self) -> list[str]:
        return [cell_text(cell) for cell in self.cells]

    def begin(self, out: BinaryIO) -> None:
        header = io.StringIO()
        csv.writer(header, lineterminator="\n").writerow([meta.name for meta in self.columns])
        out.write(header.getvalue().encode("utf-8"))


def _tsv_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class TsvWriter(TableWriter):
    copy_options = "FORMAT text, NULL ''"
    copy_mode = "lines"

    def row_sql(self) -> list[str]:
        return [cell_text(cell) for cell in self.cells]

    def begin(self, out: BinaryIO) -> None:
        names = "\t".join(_tsv_escape(meta.name) for meta in self.columns)
        out.write(f"{names}\n".encode())
