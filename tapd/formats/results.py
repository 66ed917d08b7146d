"""Run a translated query and write its result: to a stream, or whole to a file.

The query's rows come from one ``COPY ... TO STDOUT`` whose SQL renders every
cell in the chosen format (see ``tapd.formats.query``); batches flow to the
writer as they arrive, so memory does not grow with the result. MAXREC: the
statement asks for MAXREC+1 rows; a (MAXREC+1)-th row means rows were dropped
(overflow) and is not written.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import psycopg

from tapd.columns import ColumnMeta
from tapd.formats.base import Infos, TableWriter, error_message
from tapd.formats.cells import Cell
from tapd.formats.copyout import CopyOut, input_buffer_statement
from tapd.formats.query import bind_parameters, copy_statement, describe
from tapd.formats.registry import ResultFormat

#: Told (rows, bytes) written so far, after each batch.
Progress = Callable[[int, int], None]

#: Seconds after which rows that arrived are written even if a batch is not
#: full, when the caller follows the progress.
PROGRESS_STALL = 1.0


@dataclass(frozen=True)
class WriteSummary:
    """How a result came out: rows written, and whether MAXREC dropped any."""

    rows: int
    overflow: bool


@dataclass(frozen=True)
class ResultFile:
    """A complete result file, written under a temporary name (``stage_result_file``)."""

    filename: str
    mime_type: str
    size: int
    rows: int
    overflow: bool


#: Writer of each format key: module and class, imported on first use (astropy, pyarrow
#: cost tens of MB that other formats need not pay).
WRITERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "votable": ("tapd.formats.votable", "VOTableWriter", {"serialization": "BINARY2"}),
    "votable/b": ("tapd.formats.votable", "VOTableWriter", {"serialization": "BINARY"}),
    "votable/td": ("tapd.formats.votable", "VOTableWriter", {"serialization": "TABLEDATA"}),
    "csv": ("tapd.formats.delimited", "CsvWriter", {}),
    "tsv": ("tapd.formats.delimited", "TsvWriter", {}),
    "json": ("tapd.formats.jsontable", "JsonWriter", {}),
    "html": ("tapd.formats.htmltable", "HtmlWriter", {}),
    "fits": ("tapd.formats.fits", "FitsWriter", {}),
    "parquet": ("tapd.formats.parquet", "ParquetWriter", {}),
}


def import_writers(keys: Iterable[str]) -> None:
    """Import the writer modules of these format keys now rather than on first use."""
    for key in keys:
        importlib.import_module(WRITERS[key][0])


def make_writer(fmt: ResultFormat, cells: Sequence[Cell], infos: Infos | None) -> TableWriter:
    module, name, options = WRITERS[fmt.key]
    writer_class = getattr(importlib.import_module(module), name)
    writer: TableWriter = writer_class(cells, infos, **options)
    return writer


def write_result(
    conn: psycopg.Connection[Any],
    sql: str,
    params: Sequence[Any] | None,
    columns: Sequence[ColumnMeta],
    fmt: ResultFormat,
    out: BinaryIO,
    *,
    maxrec: int | None,
    infos: Infos | None = None,
    batch_rows: int = 10000,
    prelude: Sequence[str] = (),
    interrupted: Callable[[], bool] | None = None,
    progress: Progress | None = None,
) -> WriteSummary:
    """Run ``sql`` on ``conn`` (inside the caller's transaction) and write the result to ``out``.

    Errors before any output raise with nothing written; errors after raise
    too, once the writer has ended its document as well as the format allows.

    ``sql`` reaches PostgreSQL only alone, through the extended protocol (in
    the describe statement and in the COPY), so no text in it can run a
    statement of its own. ``prelude`` holds the caller's own SQL statements
    (one per item), sent in the same round trip as the writer's first
    statement, before it: e.g. the transaction's BEGIN and settings.
    ``interrupted``: says the caller wants the query stopped (see ``CopyOut``;
    ``CopyInterrupted`` when that is before the COPY began).

    ``progress(rows, bytes)`` is told what has been written after each batch
    (rows that arrive slowly are handed over after ``PROGRESS_STALL`` seconds).
    """
    bound_sql = bind_parameters(conn, sql, params)
    # the describe round trip also carries the caller's prelude and, on a new
    # connection, the long value that lets the COPY be read in large chunks
    grow = input_buffer_statement(conn)
    prelude = [*prelude, grow] if grow else list(prelude)
    cells = describe(conn, bound_sql, columns, prelude=prelude)  # also the output settings
    writer = make_writer(fmt, cells, infos)
    statement = copy_statement(
        bound_sql,
        cells,
        writer.row_sql(),
        writer.copy_options,
        limit=None if maxrec is None else maxrec + 1,
    )
    copy = CopyOut(
        conn,
        statement,
        mode=writer.copy_mode,
        batch_rows=batch_rows,
        stall_seconds=PROGRESS_STALL if progress is not None else None,
        interrupted=interrupted,
    )
    copy.start()
    rows = 0
    overflow = False
    began = False
    batches = copy.batches()
    try:
        writer.begin(out)
        began = True
        for batch in batches:
            if maxrec is not None and rows + batch.rows > maxrec:
                batch = batch.head(maxrec - rows)
                overflow = True
            if batch.rows:
                writer.write_rows(out, batch)
                rows += batch.rows
                if progress is not None:
                    progress(rows, out.tell())
    except Exception as exc:
        batches.close()
        copy.cancel()  # a writer failed: the COPY may still be running
        if began:
            writer.fail(out, error_message(exc))
        raise
    writer.end(out, overflow=overflow)
    return WriteSummary(rows=rows, overflow=overflow)


def result_filename(fmt: ResultFormat) -> str:
    return f"result.{fmt.extension}"


def stage_result_file(
    conn: psycopg.Connection[Any],
    sql: str,
    params: Sequence[Any] | None,
    columns: Sequence[ColumnMeta],
    fmt: ResultFormat,
    path: str | os.PathLike[str],
    *,
    maxrec: int | None,
    infos: Infos | None = None,
    batch_rows: int = 10000,
    prelude: Sequence[str] = (),
    progress: Progress | None = None,
) -> ResultFile:
    """Write the whole result to ``path`` (a temporary name of the caller's) and
    fsync it; ``filename`` of the answer is the name it is meant to have once the
    caller renames it into place (``result.<ext>``). ``prelude`` and ``progress``
    as for ``write_result``.

    On any error the file is removed and the error re-raised (an ``OSError``
    when the disk is full or the directory unwritable).
    """
    target = Path(path)
    try:
        with open(target, "w+b") as out:
            summary = write_result(
                conn,
                sql,
                params,
                columns,
                fmt,
                out,
                maxrec=maxrec,
                infos=infos,
                batch_rows=batch_rows,
                prelude=prelude,
                progress=progress,
            )
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return ResultFile(result_filename(fmt), fmt.mime_type, size, summary.rows, summary.overflow)
