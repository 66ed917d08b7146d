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
import contextlib
import io
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import psycopg
from psycopg_pool import PoolTimeout
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from tapd.cancellation import Cancellation
from tapd.errors import TapdError
from tapd.http.forms import RequestForm
from tapd.http.jobs import request_form
from tapd.http.problems import HttpProblem
from tapd.http.responses import NO_STORE
from tapd.http.service import TapService, service_of
from tapd.http.streaming import ClientGone, ResultPipe
from tapd.log import get_logger
from tapd.store.connection import in_hot_standby
from tapd.watchdog import watchdog

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
    from tapd.runner import resolve_format, tap_request

    config = service.config
    try:
        tap = tap_request(grouped_parameters(form), config)
        media_type = resolve_format(tap.format_name).mime_type
    except TapdError as exc:
        form.discard_files()
        return error_response(exc.message, 400)
    if tap.run_id is not None:  # RUNID is kept in the logs (DALI 3.4.6)
        log.info("http.sync_query", run_id=tap.run_id)
    slot_wait = float(config.sync_slot_wait)
    try:
        await asyncio.wait_for(service.sync_gate.acquire(), slot_wait)
    except TimeoutError:
        form.discard_files()
        log.info("http.sync_busy", waited_s=slot_wait)
        return busy_response(int(config.sync_slots), slot_wait)
    try:
        return await _run_in_slot(request, service, form, tap, media_type)
    except BaseException:
        service.sync_gate.release()  # the worker never started
        raise


async def _run_in_slot(
    request: Request, service: TapService, form: RequestForm, tap: Any, media_type: str
) -> Response:
    """Run the query in a worker thread holding the slot (released when the worker ends).

    One ``Cancellation`` stops the work, whatever it is doing (fetching a URL
    upload, waiting for the database, writing): the client leaving, the time
    limit of the whole response passing, or the response ending otherwise.
    """
    from tapd.runner import run_sync

    config = service.config
    loop = asyncio.get_running_loop()
    pipe = ResultPipe(loop)
    cancellation = Cancellation()
    limit = float(config.sync_execution_duration) + RESPONSE_GRACE
    deadline = loop.time() + limit
    # Backstop: run_sync's own limit ends the query; this ends everything else too.
    alarm = watchdog().arm(limit, lambda: cancellation.cancel(SYNC_TIME_LIMIT_PASSED))

    def resolve_part(name: str) -> Path:
        from tapd.uploads import UploadError

        part = form.parts.get(name)
        if part is None:
            raise UploadError(f"UPLOAD refers to param:{name}, but no such part was sent")
        return part.path

    def run_on(conn: psycopg.Connection[Any], out: BinaryIO) -> None:
        run_sync(
            conn,
            tap,
            out,
            config=config,
            catalog=service.catalog(conn),
            resolve_part=resolve_part,
            cancellation=cancellation,
        )

    def run_with_retry(out: BinaryIO) -> None:
        from tapd.runner import connect_query_session

        for attempt in (1, 2):
            with service.sync_pool.connection() as conn:
                try:
                    if tap.uploads and in_hot_standby(conn):
                        # A standby refuses the uploads' temporary tables: the
                        # primary, still logged in as the query role.
                        with connect_query_session(
                            config, application_name="tapd http sync", primary=True
                        ) as primary:
                            run_on(primary, out)
                    else:
                        run_on(conn, out)
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
            with cancellation.on_cancel(pipe.cancel), service.metrics.sync_seconds.time():
                cancellation.check()
                run_with_retry(cast(BinaryIO, pipe))  # duck-typed: write/flush/tell/closed
        except BaseException as exc:  # handed to the event loop, which answers or logs it
            error = exc
            if cancellation.reason == SYNC_TIME_LIMIT_PASSED:
                # Whatever the backstop interrupted (an upload's fetch, a slot, the pipe):
                # the client still waits, and should hear which limit it ran into.
                from tapd.runner import QueryTimeLimit

                if not isinstance(exc, QueryTimeLimit):
                    error = QueryTimeLimit(
                        config.sync_execution_duration, "time limit of synchronous queries"
                    )
        finally:
            alarm.disarm()
            form.discard_files()
            pipe.finish(error)
            loop.call_soon_threadsafe(service.sync_gate.release)

    loop.run_in_executor(service.sync_executor, work)
    first = asyncio.ensure_future(pipe.first())
    gone = asyncio.ensure_future(client_gone(request.receive))
    try:
        await asyncio.wait({first, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not first.done():  # the client left before any output: stop the work now
        first.cancel()
        await stop(cancellation, "the client disconnected")
        log.info("http.sync_client_gone", before_output=True)
        return Response(b"", status_code=499)
    chunk, error = first.result()
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
    return BoundedStreamingResponse(
        body(chunk),
        headers={"Content-Type": media_type, **NO_STORE},
        deadline=deadline,
        cancellation=cancellation,
    )


#: Seconds the whole response may take beyond the query's own limit (the last chunks).
RESPONSE_GRACE = 1.0
#: The cancellation reason of the backstop that ends a request at the sync time limit.
SYNC_TIME_LIMIT_PASSED = "the sync time limit passed"


def busy_response(slots: int, waited: float) -> Response:
    """503 when no slot came free in time: the client should retry (or use /async)."""
    retry = max(1, math.ceil(waited))
    response = error_response(
        f"the service is busy: all {slots} synchronous query slots stayed taken for"
        f" {waited:g} s; try again in a few seconds, or submit an asynchronous job (/async)",
        503,
    )
    response.headers["Retry-After"] = str(retry)
    return response


async def client_gone(receive: Receive) -> None:
    """Returns when the client disconnects (the request body has been read already)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def stop(cancellation: Cancellation, reason: str) -> None:
    """Cancel the request's work (a backend cancel is a short blocking call: in a thread)."""
    if not cancellation.cancelled:
        await asyncio.get_running_loop().run_in_executor(None, cancellation.cancel, reason)


class BoundedStreamingResponse(StreamingResponse):
    """A streamed result that ends by the sync time limit, however slowly the client reads,
    and that stops the query whenever it ends early (client gone, limit passed)."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        headers: dict[str, str],
        deadline: float,
        cancellation: Cancellation,
    ) -> None:
        super().__init__(content, headers=headers)
        self.deadline = deadline
        self.cancellation = cancellation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        streaming = asyncio.ensure_future(super().__call__(scope, receive, send))
        gone = asyncio.ensure_future(client_gone(receive))
        try:
            done, _ = await asyncio.wait(
                {streaming, gone},
                timeout=max(0.0, self.deadline - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if streaming in done:
                streaming.result()
                return
            # Cut: the client left, or the time limit passed with the result still going
            # out. Returning without ending the body makes the server drop the connection,
            # so the client sees a cut answer, not a complete-looking one.
            log.info(
                "http.sync_cut",
                reason="client disconnected" if gone in done else "sync time limit",
            )
        finally:
            for task in (streaming, gone):
                task.cancel()
            with contextlib.suppress(BaseException):
                await streaming
            await stop(self.cancellation, "the response ended")


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
