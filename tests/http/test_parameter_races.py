"""Changing a job's parameters (files included) and queueing it are serialised per job:
a run sees all of a change or none of it, and a refused change leaves nothing behind."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator

import httpx
import pytest
from lxml import etree

from tests.http.conftest import RunningService, start_service, stop_service

NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}


def table(value: int) -> bytes:
    return f"""<?xml version="1.0"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>
<FIELD name="a" datatype="int"/><DATA><TABLEDATA><TR><TD>{value}</TD></TR></TABLEDATA></DATA>
</TABLE></RESOURCE></VOTABLE>""".encode()


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory) -> Iterator[RunningService]:
    running = start_service(pg_cluster, tmp_path_factory.mktemp("prace"), "http_param_races")
    yield running
    stop_service(running, pg_cluster, "http_param_races")


def query_of(client: httpx.Client, url: str) -> str | None:
    root = etree.fromstring(client.get(url).content)
    return root.findtext(".//uws:parameter[@id='QUERY']", namespaces=NS)


def test_a_change_racing_run_is_applied_whole_or_not_at_all(service: RunningService) -> None:
    outcomes = []
    with (
        httpx.Client(base_url=service.url, timeout=60) as client,
        concurrent.futures.ThreadPoolExecutor(2) as pool,
    ):
        for _ in range(20):
            response = client.post(
                "/async",
                data={"LANG": "ADQL", "QUERY": "SELECT 'old'", "UPLOAD": "t,param:t"},
                files={"t": ("t.xml", table(1))},
            )
            url = response.headers["location"]
            start = threading.Barrier(2)

            def change(url: str = url, start: threading.Barrier = start) -> int:
                start.wait()
                return client.post(
                    url + "/parameters",
                    data={"QUERY": "SELECT 'new'"},
                    files={"t": ("t.xml", table(2))},
                ).status_code

            def run(url: str = url, start: threading.Barrier = start) -> int:
                start.wait()
                return client.post(url + "/phase", data={"PHASE": "RUN"}).status_code

            changed, ran = pool.submit(change), pool.submit(run)
            assert ran.result() == 303
            status = changed.result()
            assert status in (303, 403)
            query = query_of(client, url)
            uploaded = client.get(url + "/parameters/t").content
            if status == 303:
                assert (query, uploaded) == ("SELECT 'new'", table(2))
            else:
                assert (query, uploaded) == ("SELECT 'old'", table(1))
            outcomes.append(status)
    assert set(outcomes) <= {303, 403}
