"""Result writers: VOTable, CSV, TSV, FITS, JSON, HTML and Parquet, streamed from COPY.

The public API (contract in docs/architecture.md): ``resolve_format``,
``available_formats``, ``UnknownFormat``, ``write_result``,
``stage_result_file``, ``write_error_document``.
"""

from tapd.formats.copyout import CopyInterrupted
from tapd.formats.registry import ResultFormat, UnknownFormat, available_formats, resolve_format
from tapd.formats.results import (
    ResultFile,
    WriteSummary,
    import_writers,
    result_filename,
    stage_result_file,
    write_result,
)
from tapd.formats.votable import write_error_document


def warm_up() -> None:
    """Import every writer this host offers (astropy's FITS, pyarrow) and find the
    COPY reader's libpq call, e.g. before forking."""
    from tapd.formats import copyout

    import_writers(fmt.key for fmt in available_formats())
    copyout.warm_up()


__all__ = [
    "CopyInterrupted",
    "ResultFile",
    "ResultFormat",
    "UnknownFormat",
    "WriteSummary",
    "available_formats",
    "resolve_format",
    "result_filename",
    "stage_result_file",
    "warm_up",
    "write_error_document",
    "write_result",
]
