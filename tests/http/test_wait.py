"""UWS WAIT returns when the job's phase differs from the one the request saw, or at its time:
never on a wake-up that changed nothing (a notification without a phase change, the
listener reconnecting)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from lxml import etree

from tests.http.conftest import RunningService, start_service, stop_service

NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}
WAIT_MAX = 30


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory) -> Iterator[RunningService]:
    settings = {"TAPD_WAIT_MAX": str(WAIT_MAX)}
    running = start_service(pg_cluster, tmp_path_factory.mktemp("wait"), "http_wait", settings)
    yield running
    stop_service(running, pg_cluster, "http_wait")


def create(client: httpx.Client) -> str:
    response = client.post("/async", data={"QUERY": "SELECT 1"})
    assert response.status_code == 303
    return str(response.headers["location"])


class Disturbance:
    """Keeps doing ``act`` every 0.2 s until stopped (so some of it lands during the WAIT)."""

    def __init__(self, dsn: str, act: str) -> None:
        self.dsn = dsn
        self.act = act
        self.stop = threading.Event()
        self.count = 0
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.wait(0.2):
                conn.execute(self.act)
                self.count += 1

    def __enter__(self) -> Disturbance:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def timed_wait(client: httpx.Client, url: str, seconds: int) -> tuple[str | None, float]:
    started = time.monotonic()
    response = client.get(url, params={"WAIT": str(seconds)})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    return etree.fromstring(response.content).findtext("uws:phase", namespaces=NS), elapsed


def test_a_notification_without_a_phase_change_does_not_end_the_wait(service, client) -> None:
    url = create(client)
    job_id = url.rsplit("/", 1)[1]
    payload = json.dumps({"job_id": job_id, "phase": "PENDING", "old_phase": "PENDING"})
    with Disturbance(service.dsn, f"NOTIFY \"tapd.phase\", '{payload}'") as noise:
        phase, elapsed = timed_wait(client, url, 3)
    assert noise.count > 0
    assert phase == "PENDING"
    assert elapsed >= 2.9  # a lower bound: holds on any machine


def test_the_listener_reconnecting_does_not_end_the_wait(service, client) -> None:
    url = create(client)
    kill = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
    )
    with Disturbance(service.dsn, kill) as noise:
        phase, elapsed = timed_wait(client, url, 3)
    assert noise.count > 0
    assert phase == "PENDING"
    assert elapsed >= 2.9


def test_a_real_change_during_the_disturbance_still_ends_the_wait(service, client) -> None:
    url = create(client)
    job_id = url.rsplit("/", 1)[1]
    payload = json.dumps({"job_id": job_id, "phase": "PENDING"})
    results: list[str | None] = []
    waiting = threading.Thread(target=lambda: results.append(timed_wait(client, url, 25)[0]))
    with Disturbance(service.dsn, f"NOTIFY \"tapd.phase\", '{payload}'"):
        waiting.start()
        time.sleep(1)
        with httpx.Client() as other:
            assert other.post(url + "/phase", data={"PHASE": "ABORT"}).status_code == 303
        waiting.join(timeout=60)
    assert results == ["ABORTED"]
