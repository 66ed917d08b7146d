"""The ASGI application: routes under the base path, lifespan, error answers, access log.

Works with Starlette 0.26 (Debian 12) and 1.x: only ``lifespan``, ``Route``,
``exception_handlers`` and plain ASGI middleware are used.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route

from tapd.config import Config
from tapd.errors import DatabaseUnavailable, TapdError
from tapd.http import fleet, jobs, metadata, sync, web
from tapd.http.forms import RemoveSpooledFiles
from tapd.http.headers import ServiceHeaders, allowed_methods
from tapd.http.metrics import (
    ServiceMetrics,
    StoreFigures,
    metrics_path,
    start_metrics_server,
)
from tapd.http.ownership import JOB_ID_PARAMETER, job_route, unchecked_job_routes
from tapd.http.presence import ServicePresence
from tapd.http.problems import HttpProblem
from tapd.http.responses import problem
from tapd.http.service import TapService, normalise_base_path
from tapd.http.waiting import PhaseWaiter
from tapd.log import get_logger
from tapd.peers import HostUnreachable
from tapd.store import (
    JobNotFound,
    JobStore,
    PhaseConflict,
    QuotaExceeded,
    phase_channel,
    require_current_schema,
)
from tapd.store.connection import BalancedConnection, LinkTimeouts, connect, link_parameters

log = get_logger(component="http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def routes(base: str) -> list[Route]:
    """Every route of the service; those under ``/async/{job_id}`` go through ``job_route``."""
    job = f"{base}/async/{{{JOB_ID_PARAMETER}}}"
    return [
        Route(f"{base}/sync", sync.sync_query, methods=["GET", "POST"]),
        Route(f"{base}/async", jobs.list_jobs, methods=["GET"]),
        Route(f"{base}/async", jobs.create_job, methods=["POST"]),
        job_route(job, jobs.get_job, ["GET"]),
        job_route(job, jobs.post_job, ["POST"]),
        job_route(job, jobs.delete_job, ["DELETE"]),
        job_route(f"{job}/phase", jobs.get_phase, ["GET"]),
        job_route(f"{job}/phase", jobs.post_phase, ["POST"]),
        job_route(f"{job}/executionduration", jobs.get_execution_duration, ["GET"]),
        job_route(f"{job}/executionduration", jobs.post_execution_duration, ["POST"]),
        job_route(f"{job}/destruction", jobs.get_destruction, ["GET"]),
        job_route(f"{job}/destruction", jobs.post_destruction, ["POST"]),
        job_route(f"{job}/error", jobs.get_error, ["GET"]),
        job_route(f"{job}/quote", jobs.get_quote, ["GET"]),
        job_route(f"{job}/owner", jobs.get_owner, ["GET"]),
        job_route(f"{job}/parameters", jobs.get_parameters, ["GET"]),
        job_route(f"{job}/parameters", jobs.post_parameters, ["POST"]),
        job_route(f"{job}/parameters/{{name}}", jobs.get_parameter, ["GET"]),
        job_route(f"{job}/results", jobs.get_results, ["GET"]),
        job_route(f"{job}/results/{{result_id}}", jobs.get_result, ["GET"]),
        Route(f"{base}/capabilities", metadata.capabilities, methods=["GET"]),
        Route(f"{base}/availability", metadata.availability, methods=["GET"]),
        Route(f"{base}/tables", metadata.tables, methods=["GET"]),
        Route(f"{base}/tables/{{table_name}}", metadata.table, methods=["GET"]),
        Route(f"{base}/fleet/jobs/{{job}}/{{name:path}}", fleet.get_job_file, methods=["GET"]),
        Route(f"{base}/fleet/jobs/{{job}}", fleet.delete_job_dir, methods=["DELETE"]),
        *web.routes(base),
    ]


def create_app(config: Config, metrics: ServiceMetrics | None = None) -> Starlette:
    """The TAP service for ``config`` (pools, the WAIT listener and the metrics
    listener open in the lifespan)."""
    metrics = metrics or ServiceMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service = open_service(config, metrics)
        app.state.service = service
        metrics.add_store_collector(lambda: read_store_figures(service))
        web.publish_examples(service)
        await service.waiter.start()
        if config.internal_url:
            await service.store(
                lambda s: s.advertise_host(service.host, config.internal_url, service.token)
            )
            log.info("http.advertised", host=service.host, internal_url=config.internal_url)
        metrics_server = start_metrics_server(config.listen, config.path, metrics.registry)
        presence = ServicePresence(
            service,
            service_url(config),
            metrics_server.url + metrics_path(config.path) if metrics_server else None,
        )
        await presence.start()
        log.info(
            "http.started",
            base_path=service.base_path or "/",
            pool_size=service.pool.max_size,
            sync_slots=service.sync_pool.max_size,
        )
        try:
            yield
        finally:
            await presence.stop()
            if metrics_server is not None:
                metrics_server.stop()
            await service.waiter.stop()
            service.sync_executor.shutdown(wait=False, cancel_futures=True)
            service.pool.close()
            service.sync_pool.close()
            log.info("http.stopped")

    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        HttpProblem: _problem,
        TapdError: _tapd_error,
        psycopg.OperationalError: _database_down,
        PoolTimeout: _database_busy,
        ClientDisconnect: _client_disconnected,
        404: _not_found,
        405: _method_not_allowed,
    }
    table = routes(normalise_base_path(config.base_path))
    unchecked = unchecked_job_routes(table)
    if unchecked:  # a programming error: refuse to serve jobs without the owner check
        raise RuntimeError(f"job routes without the owner check: {', '.join(unchecked)}")
    app = Starlette(
        routes=table,
        lifespan=lifespan,
        exception_handlers=handlers,
    )
    return app


def open_service(config: Config, metrics: ServiceMetrics) -> TapService:
    """Pools (bounded) and the WAIT listener for ``config``; the schema must be current."""
    timeouts = LinkTimeouts.of(config)
    with connect(config.dsn, application_name="tapd http", timeouts=timeouts) as conn:
        require_current_schema(conn, config.schema)
    sync_slots = int(config.sync_slots)
    control_size = max(2, int(config.pool_size) - sync_slots)
    bounds = link_parameters(config.dsn, timeouts)
    pool = _pool(config.dsn, control_size, "tapd http", bounds)
    # /sync queries log in as the query role, never as the tables' owner, on
    # database.query_dsn (e.g. the standbys) when it is set
    query_dsn = config.query_conninfo
    sync_pool = _pool(query_dsn, sync_slots, "tapd http sync", link_parameters(query_dsn, timeouts))
    waiter = PhaseWaiter(
        config.dsn,
        phase_channel(config.schema),
        bounds=bounds,
        on_change=metrics.observe_phase_change,
        on_reconnect=metrics.reconnects.inc,
    )
    executor = ThreadPoolExecutor(max_workers=sync_slots, thread_name_prefix="tapd-sync")
    return TapService(
        config=config,
        pool=pool,
        sync_pool=sync_pool,
        waiter=waiter,
        sync_executor=executor,
        metrics=metrics,
        sync_gate=asyncio.Semaphore(sync_slots),
    )


def service_url(config: Config) -> str:
    """Where this service answers, as configured (``http.public_url`` when set)."""
    if config.public_url:
        return str(config.public_url).rstrip("/")
    host = str(config.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.port}{normalise_base_path(config.base_path)}"


def read_store_figures(service: TapService) -> StoreFigures:
    """What a metrics scrape reads from the store (in the metrics server's thread)."""
    with service.pool.connection(timeout=5.0) as conn:
        store = JobStore(conn, service.config.schema)
        return StoreFigures(
            phase_counts=store.phase_counts(),
            oldest_queued_age=store.oldest_queued_age(),
            runners=store.list_runners(),
            heartbeat_timeout=float(service.config.heartbeat_timeout),
        )


def _pool(dsn: str, size: int, name: str, bounds: dict[str, str]) -> ConnectionPool:
    """A pool whose connections give up on a silent server (``bounds``: libpq
    time-bound parameters, ``tapd.store.connection.link_parameters``)."""
    pool: ConnectionPool[Any] = ConnectionPool(
        dsn,
        connection_class=BalancedConnection,
        min_size=1,
        max_size=size,
        kwargs={"autocommit": True, "application_name": name, **bounds},
        timeout=10.0,
        open=False,
        name=name,
    )
    pool.open(wait=True, timeout=10.0)
    return pool


def asgi_app(config: Config) -> ASGIApp:
    """``create_app`` wrapped in protective headers, path normalising and access logging."""
    metrics = ServiceMetrics()
    app = create_app(config, metrics)
    with_headers = ServiceHeaders(app, lambda: app.routes, config.cors_origins)
    return AccessLog(CollapseSlashes(RemoveSpooledFiles(with_headers)), lambda: app.routes, metrics)


class CollapseSlashes:
    """``/tap//async`` is ``/tap/async`` (clients join base URLs with a trailing slash, INT-07)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            scope = dict(scope)
            while "//" in scope["path"]:
                scope["path"] = scope["path"].replace("//", "/")
        await self.app(scope, receive, send)


class AccessLog:
    """One ``http.request`` event per request (method, path, status,
    duration_ms), counted in the metrics by route (the route's path template:
    job ids and other raw paths would make a label without bounds)."""

    def __init__(
        self, app: ASGIApp, routes: Callable[[], list[Any]], metrics: ServiceMetrics
    ) -> None:
        self.app = app
        self.routes = routes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            route = route_label(self.routes(), scope)
            self.metrics.http_requests.labels(route, scope["method"], str(status)).inc()
            client = scope.get("client")
            log.info(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                client=client[0] if client else None,
            )


def route_label(routes: list[Any], scope: Scope) -> str:
    """The path template of the route ``scope`` asked for (whatever its method),
    or ``other`` for paths the service does not have."""
    for route in routes:
        match, _ = route.matches(scope)
        if match != Match.NONE:
            return str(route.path)
    return "other"


async def _problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpProblem)
    return problem(exc.message, exc.status)


async def _tapd_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TapdError)
    if isinstance(exc, JobNotFound):
        return problem(exc.message, 404)
    if isinstance(exc, PhaseConflict | QuotaExceeded):
        return problem(exc.message, 403)
    if isinstance(exc, DatabaseUnavailable):
        return problem(exc.message, 503)
    if isinstance(exc, HostUnreachable):
        log.warning("http.host_unreachable", host=exc.host, error=exc.message)
        return problem(exc.message, 503)
    return problem(exc.message, 400)


async def _database_down(request: Request, exc: Exception) -> Response:
    log.warning("http.database_error", error=str(exc).strip())
    return problem("the database is not reachable; try again shortly", 503)


async def _database_busy(request: Request, exc: Exception) -> Response:
    log.warning("http.pool_exhausted")
    return problem("the service is busy (no database connection free); try again shortly", 503)


async def _not_found(request: Request, exc: Exception) -> Response:
    detail = exc.detail if isinstance(exc, HTTPException) else ""
    if detail and detail != "Not Found":
        return problem(str(detail), 404)
    return problem(f"there is no resource {request.url.path!r} in this TAP service", 404)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    methods = allowed_methods(request.app.routes, request.url.path)
    response = problem(
        f"{request.method} is not allowed on {request.url.path}: use {', '.join(methods)}", 405
    )
    response.headers["Allow"] = ", ".join(methods)
    return response


async def _client_disconnected(request: Request, exc: Exception) -> Response:
    """The client left while sending its body: one info line; nobody reads the answer."""
    log.info("http.client_disconnected", method=request.method, path=request.url.path)
    return problem("the client disconnected before sending the whole request", 400)
