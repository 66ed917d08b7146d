"""Over HTTP, /sync and async queries run in sessions logged in as the query role,
and ``tapd serve`` refuses to start when the query role cannot log in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from lxml import etree

from tests.http.conftest import RunningService, start_service, stop_service
from tests.sites import publish_whoami

NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}
QUERY = {"REQUEST": "doQuery", "LANG": "ADQL", "FORMAT": "csv"}
WHOAMI = "SELECT login, who FROM public.whoami"


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory) -> Iterator[RunningService]:
    running = start_service(
        pg_cluster, tmp_path_factory.mktemp("login"), "http_login", daemon=True,
        prepare=publish_whoami,  # before the service first reads TAP_SCHEMA
    )  # fmt: skip
    yield running
    stop_service(running, pg_cluster, "http_login")


def test_sync_query_runs_logged_in_as_the_query_role(client: httpx.Client) -> None:
    reply = client.post("/sync", data={**QUERY, "QUERY": WHOAMI})
    assert reply.status_code == 200, reply.text
    assert reply.text.splitlines() == ["login,who", "tapd_query,tapd_query"]


def test_async_query_runs_logged_in_as_the_query_role(client: httpx.Client) -> None:
    created = client.post("/async", data={**QUERY, "QUERY": WHOAMI, "PHASE": "RUN"})
    assert created.status_code == 303
    job = created.headers["location"]
    for _ in range(20):  # WAIT returns at each phase change
        document = etree.fromstring(client.get(job, params={"WAIT": "5"}).content)
        phase = document.findtext("uws:phase", namespaces=NS)
        if phase not in ("PENDING", "QUEUED", "EXECUTING"):
            break
    assert phase == "COMPLETED", client.get(job).text
    result = client.get(f"{job}/results/result")
    assert result.text.splitlines() == ["login,who", "tapd_query,tapd_query"]


def test_serve_refuses_to_start_when_the_query_role_cannot_log_in(
    pg_cluster, tmp_path: Path
) -> None:
    with psycopg.connect(pg_cluster.admin_dsn(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS tapd_nologin")
        conn.execute("CREATE ROLE tapd_nologin NOLOGIN")
    with pytest.raises(AssertionError, match="tapd serve exited with 2") as failed:
        start_service(pg_cluster, tmp_path, "http_nologin", {"TAPD_QUERY_ROLE": "tapd_nologin"})
    assert "not permitted to log in" in str(failed.value)
    assert "QUERY LOGIN in tapd(8)" in str(failed.value)
    assert "Traceback" not in str(failed.value)
