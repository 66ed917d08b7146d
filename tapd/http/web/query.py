"""The query form: ADQL checked before anything runs, a synchronous preview, async submission.

Without JavaScript everything works by plain form posts: "Run" answers the
same page with the first rows as an HTML table and links to the whole result
in every format (``/sync``); "Submit as job" creates an async job (through
``tapd.http.jobs.submit_job``, as ``POST /async`` does) and redirects to its
page. An ADQL error is shown beside the query with its line and column.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from tapd.catalog import CatalogTable
from tapd.errors import TapdError
from tapd.http import responses
from tapd.http.forms import RequestForm, UploadedPart
from tapd.http.jobs import request_form, submit_job
from tapd.http.service import TapService, service_of
from tapd.http.web.render import WEB_PATH, check_same_origin, render_page
from tapd.store.jobdir import SPOOL_PREFIX

#: Rows shown on the page; the download links give the whole result.
PREVIEW_ROWS = 100

#: The part name an upload of the form travels under (``UPLOAD=<table>,param:upload``).
UPLOAD_PART = "upload"

#: What the form starts with when nothing else is asked for.
DEFAULT_QUERY = "SELECT TOP 10 * FROM TAP_SCHEMA.tables"


class ServiceBusy(TapdError):
    """Every synchronous query slot stayed taken (the page answers 503)."""


@dataclass
class QueryForm:
    """What the form shows: the user's input, and what came of it."""

    query: str = DEFAULT_QUERY
    format: str = "votable"
    maxrec: str = ""
    example: str = ""  # id of the loaded example (its upload table comes with it)
    upload_name: str = "mine"
    error: str | None = None
    error_line: int | None = None
    error_column: int | None = None
    preview: Preview | None = None


@dataclass(frozen=True)
class Preview:
    """The first rows of a synchronous run, ready for the page."""

    columns: Sequence[dict[str, Any]]
    rows: Sequence[Sequence[str]]
    overflow: bool  # more rows matched than were shown
    cut_by_maxrec: bool = False  # ... because of MAXREC (else: only the preview was cut)
    downloads: Sequence[tuple[str, str]] = field(default_factory=list)  # (format label, URL)


def cell_text(value: Any) -> str:
    """A JSON result value as the page shows it."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.10g}" if math.isfinite(value) else str(value)
    if isinstance(value, list):
        return "(" + ", ".join(cell_text(v) for v in value) + ")"
    return str(value)


def preview_from_json(document: bytes) -> tuple[Preview, str | None]:
    """The preview of a JSON result (``tapd.formats.jsontable``) and its error, if it failed."""
    parsed = json.loads(document)
    rows = [[cell_text(v) for v in row] for row in parsed["data"]]
    status = parsed.get("status")
    error = parsed.get("message") if status == "ERROR" else None
    return Preview(parsed["metadata"], rows, overflow=status == "OVERFLOW"), error


def error_position(exc: TapdError) -> tuple[int | None, int | None]:
    """(line, column) of an ADQL error, when the checker knows them."""
    pos = getattr(exc, "pos", None)
    return (pos.line, pos.column) if pos is not None else (None, None)


def example_by_id(service: TapService, example_id: str) -> Any:
    for example in service.examples or ():
        if example.id == example_id:
            return example
    return None


#: Names people know the formats by (the FORMAT value is the writer's key).
FORMAT_LABELS = {
    "votable": "VOTable",
    "votable/b": "VOTable (BINARY)",
    "votable/td": "VOTable (TABLEDATA)",
    "csv": "CSV",
    "tsv": "TSV",
    "fits": "FITS",
    "json": "JSON",
    "html": "HTML",
    "parquet": "Parquet",
}


def format_choices() -> list[tuple[str, str]]:
    """(FORMAT value, label) of every result format this host writes, default first."""
    from tapd.formats import available_formats

    return [(fmt.key, FORMAT_LABELS.get(fmt.key, fmt.key)) for fmt in available_formats()]


def render_form(request: Request, form: QueryForm, status: int = 200) -> Response:
    service = service_of(request)
    examples = service.examples or ()
    context = {
        "form": form,
        "formats": format_choices(),
        "examples": examples,
        "example": example_by_id(service, form.example) if form.example else None,
        "query_lines": form.query.split("\n"),
        "preview_rows": PREVIEW_ROWS,
    }
    return render_page(request, "query.html", context, status=status)


async def show_form(request: Request) -> Response:
    """GET /web/query: the form, filled from ``example``, ``table`` or QUERY, FORMAT, MAXREC."""
    service = service_of(request)
    params = request.query_params
    form = QueryForm()
    example = example_by_id(service, params.get("example", ""))
    if example is not None:
        form.query, form.example = example.query, example.id
        if example.upload is not None:
            form.upload_name = example.upload.table
    elif params.get("table"):
        form.query = f"SELECT TOP 100 * FROM {params['table']}"
    form.query = params.get("QUERY", form.query)
    form.format = params.get("FORMAT", form.format)
    form.maxrec = params.get("MAXREC", form.maxrec)
    return render_form(request, form)


async def post_form(request: Request) -> Response:
    """POST /web/query: check the ADQL, then ``action=run`` (preview) or ``action=submit`` (job)."""
    service = service_of(request)
    check_same_origin(request, service.base_url(request))
    fields = await request_form(request, service)
    try:
        return await _answer(request, service, fields)
    finally:
        fields.discard_files()


async def _answer(request: Request, service: TapService, fields: RequestForm) -> Response:
    form = QueryForm(
        query=(fields.last("QUERY") or "").replace("\r\n", "\n"),
        format=fields.last("FORMAT") or "votable",
        maxrec=(fields.last("MAXREC") or "").strip(),
        example=fields.last("example") or "",
        upload_name=(fields.last("upload_name") or "mine").strip(),
    )
    upload = _upload_file(service, fields, form)
    submit = fields.last("action") == "submit"
    try:
        # A run without upload translates first thing in run_sync: checking here too
        # would translate twice. A job, or an upload to load, is checked before.
        await _check(service, form, upload, translate=submit or upload is not None)
    except TapdError as exc:
        form.error = exc.message
        form.error_line, form.error_column = error_position(exc)
        return render_form(request, form, status=400)
    if submit:
        job_form = RequestForm(fields=_parameters(form, upload, form.format, form.maxrec))
        if upload is not None:
            job_form.parts[UPLOAD_PART] = _spooled_copy(service, upload)
        job = await submit_job(request, service, job_form)
        return responses.see_other(f"{service.base_url(request)}{WEB_PATH}/jobs/{job.job_id}")
    try:
        form.preview = await _run_preview(request, service, form, upload)
    except TapdError as exc:
        form.error = exc.message
        form.error_line, form.error_column = error_position(exc)
        return render_form(request, form, status=503 if isinstance(exc, ServiceBusy) else 400)
    return render_form(request, form)


def _upload_file(service: TapService, fields: RequestForm, form: QueryForm) -> Path | None:
    """The table to upload: the file the user chose, else the loaded example's table."""
    part = fields.parts.get("upload_file")
    if part is not None and part.size > 0:
        return part.path
    example = example_by_id(service, form.example)
    if example is not None and example.upload is not None:
        form.upload_name = example.upload.table
        return Path(example.upload.path)
    return None


def _parameters(
    form: QueryForm, upload: Path | None, fmt: str, maxrec: str
) -> list[tuple[str, str]]:
    """The TAP parameters of the form (``UPLOAD`` refers to the part ``param:upload``)."""
    parameters = [("LANG", "ADQL"), ("QUERY", form.query), ("FORMAT", fmt), ("PHASE", "RUN")]
    if maxrec:
        parameters.append(("MAXREC", maxrec))
    if upload is not None:
        parameters.append(("UPLOAD", f"{form.upload_name},param:{UPLOAD_PART}"))
    return parameters


def _spooled_copy(service: TapService, path: Path) -> UploadedPart:
    """A part file ``submit_job`` may move into the job directory (examples' files stay put)."""
    if path.name.startswith(SPOOL_PREFIX):
        return UploadedPart(UPLOAD_PART, path.name, path, path.stat().st_size)
    import tempfile

    fd, name = tempfile.mkstemp(prefix=SPOOL_PREFIX, dir=service.jobs_dir)
    with open(fd, "wb") as out, path.open("rb") as source:
        shutil.copyfileobj(source, out)
    copy = Path(name)
    return UploadedPart(UPLOAD_PART, path.name, copy, copy.stat().st_size)


async def _check(
    service: TapService, form: QueryForm, upload: Path | None, *, translate: bool
) -> None:
    """Check MAXREC and FORMAT and (``translate``) the query against the catalog and the
    upload's columns: nothing runs."""
    from starlette.concurrency import run_in_threadpool

    from tapd.adql import translate_adql
    from tapd.formats import resolve_format
    from tapd.runner import tap_request
    from tapd.uploads import upload_table_of_file
    from tapd.votable_stream import StreamLimits

    config = service.config
    # MAXREC and FORMAT are checked as TAP checks them, with their messages.
    tap_request(
        {"LANG": ["ADQL"], "QUERY": [form.query or " "], "FORMAT": [form.format],
         **({"MAXREC": [form.maxrec]} if form.maxrec else {})},
        config,
    )  # fmt: skip
    resolve_format(form.format)
    if not translate:
        return

    def check() -> None:
        with service.pool.connection() as conn:
            catalog = service.catalog(conn)
        tables: tuple[CatalogTable, ...] = ()
        if upload is not None:
            limits = StreamLimits(int(config.upload_max_rows), int(config.upload_max_cell_bytes))
            tables = (upload_table_of_file(form.upload_name, upload, limits),)
        translate_adql(form.query, catalog.with_uploads(tables), udfs=tuple(config.udfs))

    await run_in_threadpool(check)


async def _run_preview(
    request: Request, service: TapService, form: QueryForm, upload: Path | None
) -> Preview:
    """Run the query as /sync does (same code, same limits) for the first rows, as JSON."""
    from tapd.runner import run_sync, tap_request

    config = service.config
    wanted = int(form.maxrec) if form.maxrec else int(config.maxrec_default)
    rows = str(min(wanted, PREVIEW_ROWS))
    parameters: dict[str, list[str]] = {}
    for name, value in _parameters(form, upload, "json", rows):
        parameters.setdefault(name, []).append(value)
    tap = tap_request(parameters, config)

    def resolve_part(name: str) -> Path:
        assert upload is not None and name == UPLOAD_PART
        return upload

    loop = asyncio.get_running_loop()

    def work() -> bytes:
        try:
            out = io.BytesIO()
            with service.sync_pool.connection() as conn:
                catalog = service.catalog(conn)
                run_sync(conn, tap, out, config=config, catalog=catalog, resolve_part=resolve_part)
            return out.getvalue()
        finally:
            loop.call_soon_threadsafe(service.sync_gate.release)

    # The form's queries take the same slots as /sync, and wait as long for one.
    slot_wait = float(config.sync_slot_wait)
    try:
        await asyncio.wait_for(service.sync_gate.acquire(), slot_wait)
    except TimeoutError:
        raise ServiceBusy(
            f"the service is busy: all {config.sync_slots} synchronous query slots stayed taken"
            f" for {slot_wait:g} s; try again shortly, or submit the query as a job"
        ) from None
    try:
        running = loop.run_in_executor(service.sync_executor, work)
    except BaseException:
        service.sync_gate.release()  # the worker never started
        raise
    document = await running
    preview, error = preview_from_json(document)
    if error is not None:
        raise TapdError(error)
    downloads = [] if upload is not None else _downloads(service.base_url(request), form)
    return Preview(
        preview.columns,
        preview.rows,
        overflow=preview.overflow,
        cut_by_maxrec=preview.overflow and wanted <= PREVIEW_ROWS,
        downloads=downloads,
    )


def _downloads(base: str, form: QueryForm) -> list[tuple[str, str]]:
    """(format, /sync URL) for the whole result in each format."""
    links = []
    for value, label in format_choices():
        parameters = {"LANG": "ADQL", "QUERY": form.query, "FORMAT": value}
        if form.maxrec:
            parameters["MAXREC"] = form.maxrec
        links.append((label, f"{base}/sync?{urlencode(parameters)}"))
    return links
