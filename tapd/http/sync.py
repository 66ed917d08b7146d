"""TAP /sync (TAP 1.1 §2.1): run the query in this process with the runner's code, stream it.

``tapd.runner.run_sync`` runs in a worker thread (at most ``sync_slots`` at
once, each with a connection of the service's sync pool) and writes into a
``ResultPipe``; the response starts with the first chunk. A failure before any
output is a 400 (the request's fault) or 5xx with a VOTable error document
(DALI 4.2); a failure after output began is reported inside the same
document by the writer (TAP-53).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, cast

import psycopg
from psycopg_pool import PoolTimeout
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tapd.errors import TapdError
from tapd.http.forms import RequestForm
from tapd.http.jobs import request_form
from tapd.http.problems import HttpProblem
from tapd.http.responses import NO_STORE
from tapd.http.service import TapService, service_of
from tapd.http.streaming import ClientGone, ResultPipe
from tapd.log import get_logger

log = get_logger(component="http")

VOTABLE_TYPE = "application/x-votable+xml"


def error_document(message: str, infos: list[tuple[str, str]] | None = None) -> bytes:
    """A VOTable with QUERY_STATUS=ERROR (``tapd.formats.write_error_document``)."""
    from tapd.formats import write_error_document

    out = io.BytesIO()
    write_error_document(out, message, infos=infos or [])
    return out.getvalue()


def error_response(message: str, status: int) -> Response:
    return Response(
        error_document(message), status_code=status, media_type=VOTABLE_TYPE, headers=NO_STORE
    )


def grouped_parameters(form: RequestForm) -> dict[str, list[str]]:
    """``{NAME: [values]}`` with names upper-cased (DALI 3.1), values in order."""
    grouped: dict[str, list[str]] = {}
    for name, value in form.fields:
        grouped.setdefault(name.upper(), []).append(value)
    return grouped


async def sync_query(request: Request) -> Response:
    """GET or POST /sync: the result in the response body (no redirect, TAP-20)."""
    service = service_of(request)
    try:
        form = await request_form(request, service)
    except HttpProblem as exc:
        return error_response(exc.message, exc.status)
    try:
        return await _run(request, service, form)
    except BaseException:
        form.discard_files()
        raise


async def _run(request: Request, service: TapService, form: RequestForm) -> Response:
    from tapd.runner import resolve_format, run_sync, tap_request

    config = service.config
    try:
        tap = tap_request(grouped_parameters(form), config)
        media_type = resolve_format(tap.format_name).mime_type
    except TapdError as exc:
        form.discard_files()
        return error_response(exc.message, 400)
    if tap.run_id is not None:  # RUNID is kept in the logs (DALI 3.4.6)
        log.info("http.sync_query", run_id=tap.run_id)
    loop = asyncio.get_running_loop()
    pipe = ResultPipe(loop)

    def resolve_part(name: str) -> Path:
        from tapd.uploads import UploadError

        part = form.parts.get(name)
        if part is None:
            raise UploadError(f"UPLOAD refers to param:{name}, but no such part was sent")
        return part.path

    def run_with_retry(out: BinaryIO) -> None:
        for attempt in (1, 2):
            with service.sync_pool.connection() as conn:
                try:
                    catalog = service.catalog(conn)
                    run_sync(
                        conn, tap, out, config=config, catalog=catalog, resolve_part=resolve_part
                    )
                    return
                except psycopg.OperationalError:
                    # A pooled connection that died with a PostgreSQL restart and
                    # nothing sent yet: replace the pool's dead connections, retry.
                    if attempt == 2 or not conn.broken or pipe.tell():
                        raise
            service.sync_pool.check()
            service.metrics.reconnects.inc()

    def work() -> None:
        error: BaseException | None = None
        try:
            if pipe.cancelled:
                return
            with service.metrics.sync_seconds.time():
                run_with_retry(cast(BinaryIO, pipe))  # duck-typed: write/flush/tell/closed
        except BaseException as exc:  # handed to the event loop, which answers or logs it
            error = exc
        finally:
            form.discard_files()
            pipe.finish(error)

    loop.run_in_executor(service.sync_executor, work)
    chunk, error = await pipe.first()
    if chunk is None:
        if error is not None:
            status, message = _failure(error)
            return error_response(message, status)
        return Response(b"", headers={"Content-Type": media_type, **NO_STORE})

    finished = pipe.ready_rest()
    if finished is not None:  # the whole result is already here: one plain response
        chunks, late_error = finished
        if late_error is not None:
            _log_late_failure(late_error)
        return Response(
            b"".join([chunk, *chunks]), headers={"Content-Type": media_type, **NO_STORE}
        )

    async def body(first: bytes) -> AsyncIterator[bytes]:
        yield first
        async for more in pipe.rest():
            yield more

    # The Content-Type exactly as the client named the format (TAP-13): set as a
    # header, Starlette would otherwise append a charset to text/* types.
    return StreamingResponse(body(chunk), headers={"Content-Type": media_type, **NO_STORE})


def _log_late_failure(error: BaseException) -> None:
    """A failure after output began: the writer ended the document with an ERROR INFO."""
    if not isinstance(error, TapdError | ClientGone):
        log.error("http.sync_failed_late", exc_info=(type(error), error, error.__traceback__))


def _failure(error: BaseException) -> tuple[int, str]:
    """HTTP status and message for a sync query that failed before writing anything."""
    if isinstance(error, HttpProblem):
        return error.status, error.message
    if isinstance(error, TapdError):
        return 400, error.message
    if isinstance(error, ClientGone):
        return 499, "the client went away"
    if isinstance(error, PoolTimeout):
        return 503, "the service is busy (all synchronous query slots are taken); try again"
    if isinstance(error, psycopg.OperationalError):
        log.warning("http.sync_database_error", error=str(error).strip())
        return 503, "the database connection was lost; try again shortly"
    log.error("http.sync_failed", exc_info=(type(error), error, error.__traceback__))
    return 500, f"internal error of the TAP service ({type(error).__name__}); see the service log"
