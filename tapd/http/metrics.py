"""Prometheus metrics of ``tapd serve``, served on an address of their own.

``[metrics] listen`` (default ``127.0.0.1:9181``, empty: off) and ``path``
(default ``/metrics``): off the public TAP path, so the figures are not
offered to the world. Where each figure comes from:

- this process: HTTP requests by route, method and status; the duration of
  /sync queries; this service's own database reconnects;
- the store's phase NOTIFY, which this process already LISTENs to for UWS
  WAIT (``tapd.http.waiting``): jobs started, requeued and ended by phase, the
  duration and result size of ended jobs. These count every job of the fleet,
  whichever daemon ran it, since this service started; each ``tapd serve``
  counts all of them (do not add them up across services). A job ending while
  the listener reconnects is not counted;
- the store, read at each scrape: jobs by phase, the age of the oldest QUEUED
  job, and per host the live daemons, their slots and their database
  reconnects (each daemon reports these in its heartbeat, the ``runners``
  table). ``tapd_store_up`` is 0 when the store could not be read.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    make_wsgi_app,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)

from tapd.errors import ConfigError
from tapd.log import get_logger
from tapd.store.jobs import RunnerInfo
from tapd.store.phases import USUAL_PHASES, JobPhase

log = get_logger(component="http")

#: Phases in which a job has ended, as the metrics count them.
ENDED_PHASES = (JobPhase.COMPLETED, JobPhase.ERROR, JobPhase.ABORTED)
#: Phases always present in ``tapd_jobs`` (others appear when they hold jobs).
REPORTED_PHASES = USUAL_PHASES
JOB_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600, 1800, 3600)
RESULT_BYTES_BUCKETS = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10)
SYNC_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServiceMetrics:
    """The figures this process keeps, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.http_requests = Counter(
            "tapd_http_requests",
            "HTTP requests answered, by route, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.sync_seconds = Histogram(
            "tapd_sync_query_duration_seconds",
            "Time to run a /sync query and write its result",
            buckets=SYNC_SECONDS_BUCKETS,
            registry=r,
        )
        self.reconnects = Counter(
            "tapd_http_database_reconnects",
            "Times this service found its database connections lost and reconnected",
            registry=r,
        )
        self.jobs_started = Counter(
            "tapd_jobs_started", "Jobs that started executing (any daemon)", registry=r
        )
        self.jobs_requeued = Counter(
            "tapd_jobs_requeued",
            "Running jobs put back in the queue (their runner stopped or lost the database)",
            registry=r,
        )
        self.jobs_ended = Counter(
            "tapd_jobs_ended", "Jobs that ended, by final phase", ["phase"], registry=r
        )
        self.job_seconds = Histogram(
            "tapd_job_duration_seconds",
            "Time from a job's start to its end, by final phase",
            ["phase"],
            buckets=JOB_SECONDS_BUCKETS,
            registry=r,
        )
        self.result_bytes = Histogram(
            "tapd_job_result_bytes",
            "Size of the results of completed jobs",
            buckets=RESULT_BYTES_BUCKETS,
            registry=r,
        )
        for phase in ENDED_PHASES:  # present from the start, at 0
            self.jobs_ended.labels(phase.value)
            self.job_seconds.labels(phase.value)

    def observe_phase_change(self, change: Mapping[str, Any]) -> None:
        """Count one phase NOTIFY payload (see ``tapd/store/schema.sql``)."""
        phase = change.get("phase")
        if phase == JobPhase.EXECUTING:
            self.jobs_started.inc()
        elif phase == JobPhase.QUEUED and change.get("old_phase") == JobPhase.EXECUTING:
            self.jobs_requeued.inc()
        elif phase in ENDED_PHASES:
            self.jobs_ended.labels(phase).inc()
            seconds = change.get("seconds")
            if isinstance(seconds, int | float):
                self.job_seconds.labels(phase).observe(max(0.0, float(seconds)))
            size = change.get("bytes")
            if phase == JobPhase.COMPLETED and isinstance(size, int | float):
                self.result_bytes.observe(float(size))

    def add_store_collector(self, read: Callable[[], StoreFigures]) -> None:
        self.registry.register(StoreCollector(read))


@dataclass(frozen=True)
class StoreFigures:
    """What a scrape reads from the store."""

    phase_counts: Mapping[JobPhase, int]
    oldest_queued_age: float | None  # seconds; None when nothing is queued
    runners: Sequence[RunnerInfo]
    heartbeat_timeout: float


def store_families(figures: StoreFigures) -> list[Metric]:
    """The metric families read from the store (a pure function of ``figures``)."""
    jobs = GaugeMetricFamily("tapd_jobs", "Jobs in the store, by phase", labels=["phase"])
    counts = dict.fromkeys(REPORTED_PHASES, 0) | dict(figures.phase_counts)
    for phase, count in counts.items():
        jobs.add_metric([phase.value], count)
    oldest = GaugeMetricFamily(
        "tapd_queue_oldest_age_seconds",
        "Time the oldest QUEUED job has waited (0 when the queue is empty)",
        value=figures.oldest_queued_age or 0.0,
    )
    runners = GaugeMetricFamily(
        "tapd_runners", "Runner daemons alive and taking jobs, by host", labels=["host"]
    )
    slots = GaugeMetricFamily(
        "tapd_runner_slots",
        "Job slots of the live runner daemons, by host: total, busy, usable (running a"
        " job or able to take one now)",
        labels=["host", "state"],
    )
    degraded = GaugeMetricFamily(
        "tapd_runners_degraded",
        "Live runner daemons that say they are not working normally, by host",
        labels=["host"],
    )
    reconnects = CounterMetricFamily(
        "tapd_runner_database_reconnects",
        "Times a runner daemon reconnected to the database since it started",
        labels=["host", "instance"],
    )
    for host, members in sorted(_by_host(figures.runners).items()):
        live = [r for r in members if r.is_live(figures.heartbeat_timeout)]
        runners.add_metric([host], len(live))
        slots.add_metric([host, "total"], sum(r.max_jobs for r in live))
        slots.add_metric([host, "busy"], sum(r.running for r in live))
        slots.add_metric([host, "usable"], sum(r.usable_slots for r in live))
        degraded.add_metric([host], sum(1 for r in live if r.degraded))
        for runner in members:
            reconnects.add_metric([host, runner.instance], runner.reconnects)
    up = GaugeMetricFamily("tapd_store_up", "1 when the job store could be read", value=1)
    return [up, jobs, oldest, runners, slots, degraded, reconnects]


def _by_host(runners: Iterable[RunnerInfo]) -> dict[str, list[RunnerInfo]]:
    grouped: dict[str, list[RunnerInfo]] = {}
    for runner in runners:
        grouped.setdefault(runner.host, []).append(runner)
    return grouped


class StoreCollector:
    """Reads the store at each scrape (in the metrics server's thread)."""

    def __init__(self, read: Callable[[], StoreFigures]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        try:
            figures = self.read()
        except Exception as exc:  # a scrape must still answer: say the store is down
            log.warning("metrics.store_unreadable", error=str(exc).strip())
            yield GaugeMetricFamily("tapd_store_up", "1 when the job store could be read", 0)
            return
        yield from store_families(figures)


# -- the listener ---------------------------------------------------------------


def parse_listen(text: str) -> tuple[str, int] | None:
    """``host:port`` (``[v6]:port``) of ``[metrics] listen``; None when empty (off)."""
    text = text.strip()
    if not text:
        return None
    host, colon, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(
            f"metrics.listen must be HOST:PORT (e.g. 127.0.0.1:9181) or empty, got {text!r}"
        )
    return host, int(port)


def metrics_path(text: str) -> str:
    """``[metrics] path`` as a URL path (leading slash, no trailing one)."""
    return "/" + str(text).strip("/")


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadedServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadedServer6(_ThreadedServer):
    address_family = socket.AF_INET6


@dataclass
class MetricsServer:
    """The metrics listener: a small threaded WSGI server beside the TAP service."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        address = self.server.server_address
        host, port = str(address[0]), int(address[1])
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def start_metrics_server(
    listen: str, path: str, registry: CollectorRegistry
) -> MetricsServer | None:
    """Serve ``registry`` at ``http://listen/path`` in a thread; None when off.

    A listener that cannot bind is logged and left off: the TAP service
    matters more than its figures.
    """
    where = parse_listen(listen)
    if where is None:
        return None
    host, port = where
    exposition = make_wsgi_app(registry)
    wanted = metrics_path(path)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").rstrip("/") != wanted.rstrip("/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [f"metrics are at {wanted}\n".encode()]
        result: Iterable[bytes] = exposition(environ, start_response)
        return result

    server_class = _ThreadedServer6 if ":" in host else _ThreadedServer
    try:
        server: WSGIServer = make_server(
            host, port, app, server_class=server_class, handler_class=_Quiet
        )
    except OSError as exc:
        log.error(
            "metrics.unavailable",
            listen=listen,
            error=exc.strerror or str(exc),
            hint="set [metrics] listen to a free address, or empty to turn metrics off",
        )
        return None
    thread = threading.Thread(target=server.serve_forever, name="tapd-metrics", daemon=True)
    thread.start()
    running = MetricsServer(server, thread)
    log.info("metrics.listening", url=running.url + wanted)
    return running
