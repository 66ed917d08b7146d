"""Prometheus metrics of ``tapd serve``: scraped after a known workload, parsed with
``prometheus_client.parser`` as Prometheus would read them."""

from __future__ import annotations

import datetime as dt
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from tapd.errors import ConfigError
from tapd.http.metrics import (
    ServiceMetrics,
    StoreFigures,
    parse_listen,
    start_metrics_server,
    store_families,
)
from tapd.store import JobPhase, JobStore, RunnerInfo
from tests.http.conftest import RunningService, free_port, start_service, stop_service
from tests.sites import wait_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# -- the service, end to end -----------------------------------------------------


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory, metrics_port: int) -> Iterator[RunningService]:
    running = start_service(
        pg_cluster,
        tmp_path_factory.mktemp("metrics"),
        "http_metrics",
        {"TAPD_LISTEN": f"127.0.0.1:{metrics_port}", "TAPD_PATH": "/private/metrics"},
        daemon=True,
        sample_rows=50,
    )
    yield running
    stop_service(running, pg_cluster, "http_metrics")


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/private/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        return parse(r.read().decode())


def run_job(client: httpx.Client, query: str) -> str:
    created = client.post(
        "/async", data={"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": "csv", "PHASE": "RUN"}
    )
    assert created.status_code == 303
    job_id = created.headers["location"].rsplit("/", 1)[1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        phase = client.get(f"/async/{job_id}/phase", params={"WAIT": "5"}).text.strip()
        if phase in ("COMPLETED", "ERROR", "ABORTED"):
            return job_id
    raise AssertionError(f"job {job_id} did not end")


def test_scrape_after_a_known_workload_counts_it(
    service: RunningService, client: httpx.Client, metrics_port: int
) -> None:
    # A first job proves the listener counts (it may connect after the service answers).
    run_job(client, "SELECT TOP 1 id FROM demo.stars")
    wait_for(
        lambda: value(scrape(metrics_port), "tapd_jobs_ended_total", phase="COMPLETED") >= 1,
        30,
        "the metrics to count the first job",
    )
    before = scrape(metrics_port)

    completed = [run_job(client, f"SELECT TOP {n} id FROM demo.stars ORDER BY id") for n in (3, 7)]
    failed = run_job(client, "SELECT no_such_column FROM demo.stars")
    assert client.post("/sync", data={"LANG": "ADQL", "QUERY": "SELECT TOP 2 id FROM demo.stars"})
    assert client.get("/no/such/page").status_code == 404

    def counted() -> Samples | None:
        after = scrape(metrics_port)
        ended = value(after, "tapd_jobs_ended_total", phase="ERROR")
        return after if ended >= value(before, "tapd_jobs_ended_total", phase="ERROR") + 1 else None

    after = wait_for(counted, 30, "the metrics to count the workload")

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    with psycopg.connect(service.dsn) as conn:
        store = JobStore(conn)
        sizes = [store.get_job(job_id).results[0].size for job_id in completed]
        assert store.get_job(failed).phase == JobPhase.ERROR

    assert delta("tapd_jobs_started_total") == 3
    assert delta("tapd_jobs_ended_total", phase="COMPLETED") == 2
    assert delta("tapd_jobs_ended_total", phase="ERROR") == 1
    assert delta("tapd_jobs_ended_total", phase="ABORTED") == 0
    assert delta("tapd_job_duration_seconds_count", phase="COMPLETED") == 2
    assert delta("tapd_job_duration_seconds_count", phase="ERROR") == 1
    assert delta("tapd_job_duration_seconds_bucket", phase="COMPLETED", le="+Inf") == 2
    assert delta("tapd_job_result_bytes_count") == 2
    assert delta("tapd_job_result_bytes_sum") == sum(sizes)
    assert delta("tapd_sync_query_duration_seconds_count") == 1
    assert delta("tapd_http_requests_total", route="/tap/async", method="POST", status="303") == 3
    assert delta("tapd_http_requests_total", route="/tap/sync", method="POST", status="200") == 1
    assert delta("tapd_http_requests_total", route="other", method="GET", status="404") == 1

    # From the store at the scrape: 4 jobs ended, nothing waits, one daemon with its slots.
    assert value(after, "tapd_store_up") == 1
    assert value(after, "tapd_jobs", phase="COMPLETED") == 3
    assert value(after, "tapd_jobs", phase="ERROR") == 1
    assert value(after, "tapd_jobs", phase="QUEUED") == 0
    assert value(after, "tapd_queue_oldest_age_seconds") == 0
    hosts = [dict(labels)["host"] for (name, labels) in after if name == "tapd_runners"]
    assert len(hosts) == 1
    assert value(after, "tapd_runners", host=hosts[0]) == 1
    assert value(after, "tapd_runner_slots", host=hosts[0], state="total") == 4
    assert value(after, "process_cpu_seconds_total") > 0


def test_metrics_are_not_on_the_public_address(
    service: RunningService, client: httpx.Client, metrics_port: int
) -> None:
    assert client.get("/metrics").status_code == 404
    assert httpx.get(service.url.rsplit("/tap", 1)[0] + "/metrics").status_code == 404
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
    assert raised.value.code == 404


# -- the parts, one by one ---------------------------------------------------------


def runner(host: str, *, age: float = 1.0, stopping: bool = False, **kw: Any) -> RunnerInfo:
    now = dt.datetime.now(dt.UTC)
    fields: dict[str, Any] = {"max_jobs": 4, "running": 0, "reconnects": 0, "pid": 1} | kw
    fields.setdefault("usable_slots", fields["max_jobs"])
    return RunnerInfo(
        instance=f"{host}-{fields['pid']}",
        host=host,
        boot_id="b",
        started=now,
        heartbeat=now,
        heartbeat_age=age,
        stopping=stopping,
        **fields,
    )


def family_samples(figures: StoreFigures) -> Samples:
    registry = CollectorRegistry()

    class Fixed:
        def collect(self):  # type: ignore[no-untyped-def]
            return store_families(figures)

    registry.register(Fixed())
    from prometheus_client import generate_latest

    return parse(generate_latest(registry).decode())


def test_store_figures_per_host_count_only_live_daemons() -> None:
    figures = StoreFigures(
        phase_counts={JobPhase.QUEUED: 5, JobPhase.ARCHIVED: 2},
        oldest_queued_age=12.5,
        runners=[
            runner("a", pid=1, running=3, reconnects=2),
            runner("a", pid=2, max_jobs=2, running=1, usable_slots=1, degraded="spares fail"),
            runner("a", pid=3, age=60.0, running=4),  # heartbeat too old: dead
            runner("b", pid=4, stopping=True, running=1),  # stopping: takes no jobs
        ],
        heartbeat_timeout=30.0,
    )
    s = family_samples(figures)
    assert value(s, "tapd_jobs", phase="QUEUED") == 5
    assert value(s, "tapd_jobs", phase="ARCHIVED") == 2
    assert ("tapd_jobs", (("phase", "PENDING"),)) in s  # a phase without jobs shows 0
    assert value(s, "tapd_queue_oldest_age_seconds") == 12.5
    assert value(s, "tapd_runners", host="a") == 2
    assert value(s, "tapd_runners", host="b") == 0
    assert value(s, "tapd_runner_slots", host="a", state="total") == 6
    assert value(s, "tapd_runner_slots", host="a", state="busy") == 4
    assert value(s, "tapd_runner_slots", host="a", state="usable") == 5
    assert value(s, "tapd_runners_degraded", host="a") == 1
    assert value(s, "tapd_runner_slots", host="b", state="usable") == 0
    assert value(s, "tapd_runners_degraded", host="b") == 0
    assert value(s, "tapd_runner_database_reconnects_total", host="a", instance="a-1") == 2


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ([{"phase": "EXECUTING", "old_phase": "QUEUED"}], {"started": 1}),
        ([{"phase": "QUEUED", "old_phase": "EXECUTING"}], {"requeued": 1}),
        ([{"phase": "QUEUED", "old_phase": "PENDING"}], {}),
        (
            [{"phase": "COMPLETED", "old_phase": "EXECUTING", "seconds": 2.0, "bytes": 300}],
            {"COMPLETED": 1, "COMPLETED seconds": 2.0, "bytes": 300},
        ),
        (
            [{"phase": "ABORTED", "old_phase": "QUEUED", "seconds": None, "bytes": None}],
            {"ABORTED": 1},
        ),
        (
            [{"phase": "ERROR", "old_phase": "EXECUTING", "seconds": 0.5}],
            {"ERROR": 1, "ERROR seconds": 0.5},
        ),
    ],
)
def test_phase_notifications_count_starts_and_ends(changes, expected) -> None:
    metrics = ServiceMetrics()
    for change in changes:
        metrics.observe_phase_change({"job_id": "j", **change})
    got = {
        "started": metrics.jobs_started._value.get(),
        "requeued": metrics.jobs_requeued._value.get(),
        "bytes": metrics.result_bytes._sum.get(),
    }
    for phase in ("COMPLETED", "ERROR", "ABORTED"):
        got[phase] = metrics.jobs_ended.labels(phase)._value.get()
        got[f"{phase} seconds"] = metrics.job_seconds.labels(phase)._sum.get()
    assert {k: v for k, v in got.items() if v} == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9181", ("127.0.0.1", 9181)),
        ("[::1]:9181", ("::1", 9181)),
        ("localhost:0", ("localhost", 0)),
        ("", None),
        ("  ", None),
    ],
)
def test_listen_address_is_host_and_port(text: str, expected) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9181", "127.0.0.1", ":9181", "host:port", "h:70000"])
def test_malformed_listen_address_names_the_setting(text: str) -> None:
    with pytest.raises(ConfigError, match=r"metrics\.listen"):
        parse_listen(text)


def test_busy_metrics_address_is_logged_and_left_off() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with capture_logs() as logs:
            assert (
                start_metrics_server(f"127.0.0.1:{port}", "/metrics", CollectorRegistry()) is None
            )
    assert [e["event"] for e in logs] == ["metrics.unavailable"]
    assert logs[0]["log_level"] == "error"


def test_metrics_server_serves_its_registry_at_its_path_only() -> None:
    registry = CollectorRegistry()
    Counter("tapd_test_things", "things", registry=registry).inc(3)
    server = start_metrics_server("127.0.0.1:0", "/m", registry)
    assert server is not None
    try:
        with urllib.request.urlopen(server.url + "/m", timeout=10) as response:
            assert value(parse(response.read().decode()), "tapd_test_things_total") == 3
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(server.url + "/other", timeout=10)
    finally:
        server.stop()
    assert start_metrics_server("", "/m", registry) is None
