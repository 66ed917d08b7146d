"""The HTTP service's shared state: configuration, connection pool, WAIT listener, URLs, owners.

Job-store calls are synchronous (``tapd.store.JobStore`` over psycopg); the
service runs each in a worker thread with a connection from a bounded pool, so
the event loop never blocks on the database. Synchronous queries get their own
bounded pool (``sync_slots``), so a burst of slow /sync queries cannot take the
connections job control needs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from tapd.config import Config
from tapd.http.callers import Caller
from tapd.http.metrics import ServiceMetrics
from tapd.http.problems import Forbidden, NotFound
from tapd.http.waiting import PhaseWaiter
from tapd.peers import RemoteFile, host_name, locate, new_token, open_remote_file
from tapd.store import Job, JobStore
from tapd.store.jobdir import is_valid_job_id

T = TypeVar("T")

#: Jobs shown by the job list a DELETE redirects to (INT-09: keep it small).
DELETE_REDIRECT_LAST = 20

#: Seconds a loaded catalog (TAP_SCHEMA) serves /sync queries before it is read again.
CATALOG_TTL = 10.0


@dataclass
class TapService:
    """Everything the endpoints share; built by the app's lifespan."""

    config: Config
    pool: ConnectionPool
    sync_pool: ConnectionPool
    waiter: PhaseWaiter
    sync_executor: ThreadPoolExecutor
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    #: /tables documents by detail, with the TAP_SCHEMA version they were built from
    #: (``tapd.catalog.tap_schema_version``): 5,000 columns take 0.2 s to build
    tablesets: dict[bool, tuple[str, bytes]] = field(default_factory=dict)
    #: /sync slots: a request waits at most ``http.sync_slot_wait`` for one.
    sync_gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    #: this host's name (job rows name the host holding their files) and the
    #: token other hosts present when they ask for files here
    host: str = field(default_factory=host_name)
    token: str = field(default_factory=new_token)
    #: /capabilities documents by base URL (built from the configuration, read at start-up)
    capabilities_documents: dict[str, bytes] = field(default_factory=dict)
    #: The examples that passed the check at start-up (``tapd.examples``); None: not checked
    examples: tuple[Any, ...] | None = None
    _catalog: Any = None
    _catalog_loaded: float = 0.0
    _catalog_lock: threading.Lock = field(default_factory=threading.Lock)

    def catalog(self, conn: Any) -> Any:
        """TAP_SCHEMA as a ``Catalog``, re-read at most every ``CATALOG_TTL`` seconds.

        Called from worker threads with a connection they hold; saves reading
        TAP_SCHEMA for every synchronous query.
        """
        from tapd.catalog import load_catalog

        with self._catalog_lock:
            now = time.monotonic()
            if self._catalog is None or now - self._catalog_loaded > CATALOG_TTL:
                self._catalog = load_catalog(conn)
                self._catalog_loaded = now
            return self._catalog

    @property
    def jobs_dir(self) -> Path:
        return Path(self.config.jobs_dir)

    @property
    def base_path(self) -> str:
        return normalise_base_path(self.config.base_path)

    async def store(self, operation: Callable[[JobStore], T]) -> T:
        """Run ``operation`` on a ``JobStore`` over a pooled connection, in a worker thread."""

        def call() -> T:
            # Pooled connections die with a PostgreSQL restart: on the first broken
            # one, replace every dead connection of the pool and try once more.
            for attempt in (1, 2):
                with self.pool.connection() as conn:
                    try:
                        return operation(JobStore(conn, self.config.schema))
                    except psycopg.OperationalError:
                        if attempt == 2 or not conn.broken:
                            raise
                self.pool.check()
                self.metrics.reconnects.inc()
            raise AssertionError("unreachable")

        return await run_in_threadpool(call)

    async def remote_file(self, job: Job, host: str, name: str, what: str) -> RemoteFile | None:
        """Start receiving job file ``name`` from ``host`` (None: it has no such
        file); ``HostUnreachable`` (503) if that host cannot be asked."""
        timeout = float(self.config.internal_timeout)
        address = await self.store(lambda s: locate(s, host, what))
        return await run_in_threadpool(
            lambda: open_remote_file(address, job.job_id, name, timeout=timeout, what=what)
        )

    async def trusted_token(self, token: str) -> bool:
        """Whether ``token`` is this host's (another service process on this host
        may have advertised a newer one)."""
        if secrets.compare_digest(token, self.token):
            return True
        address = await self.store(lambda s: s.host_address(self.host))
        return address is not None and secrets.compare_digest(token, address.token)

    def base_url(self, request: Request) -> str:
        """Absolute URL of the TAP service: ``public_url`` or what the request reached."""
        if self.config.public_url:
            return str(self.config.public_url).rstrip("/")
        url = request.url
        return f"{url.scheme}://{url.netloc}{self.base_path}"

    def job_url(self, request: Request, job_id: str) -> str:
        return f"{self.base_url(request)}/async/{job_id}"

    def owner(self, request: Request) -> str | None:
        """The caller's identity from the trusted proxy header, or None (anonymous)."""
        header = self.config.owner_header
        if not header:
            return None
        value = request.headers.get(header, "").strip()
        return value or None

    def caller(self, request: Request) -> Caller:
        """The named owner or anonymous client address making ``request``."""
        client = request.client
        return Caller(self.owner(request), client.host if client else None)

    async def owned_job(self, request: Request, job_id: str) -> Job:
        """The job ``job_id`` if it exists and belongs to the caller."""
        check_job_id(job_id)
        job = await self.store(lambda s: s.get_job(job_id))
        check_owner(job, self.owner(request))
        return job


def service_of(request: Request) -> TapService:
    """The service of the app handling ``request`` (set by the lifespan)."""
    service: TapService = request.app.state.service
    return service


def normalise_base_path(path: str) -> str:
    """``tap``, ``/tap/`` and ``//tap`` all become ``/tap``; the root is ``""``."""
    parts = [p for p in str(path).split("/") if p]
    return "/" + "/".join(parts) if parts else ""


def check_job_id(job_id: str) -> None:
    """404 for anything that cannot be a job id (path tricks never reach the filesystem)."""
    if not is_valid_job_id(job_id):
        raise NotFound(
            f"no job with id {job_id!r}: job ids are 1 to 64 letters, digits, '-' or '_'"
        )


def check_owner(job: Job, owner: str | None) -> None:
    """Owners see and control only their own jobs (UWS 1.1 §3)."""
    if job.owner != owner:
        raise Forbidden(f"job {job.job_id} belongs to another user")
