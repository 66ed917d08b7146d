"""Owners from a trusted proxy header: each sees and controls only their own jobs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from lxml import etree

from tests.http.conftest import RunningService, start_service, stop_service

NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}
HEADER = "X-Remote-User"


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory) -> Iterator[RunningService]:
    settings = {"TAPD_OWNER_HEADER": HEADER, "TAPD_JOBS_PER_OWNER": "3"}
    running = start_service(pg_cluster, tmp_path_factory.mktemp("own"), "http_owners", settings)
    yield running
    stop_service(running, pg_cluster, "http_owners")


def client_for(service: RunningService, user: str | None) -> httpx.Client:
    headers = {HEADER: user} if user else {}
    return httpx.Client(base_url=service.url, headers=headers, follow_redirects=False)


def test_owner_is_recorded_and_others_get_403(service: RunningService) -> None:
    """(UWS-21, TAP-55)"""
    with client_for(service, "alice") as alice, client_for(service, "bob") as bob:
        url = alice.post("/async", data={"QUERY": "SELECT 1"}).headers["location"]
        root = etree.fromstring(alice.get(url).content)
        assert root.findtext("uws:ownerId", namespaces=NS) == "alice"
        assert alice.get(url + "/owner").text == "alice"
        for response in (
            bob.get(url),
            bob.get(url + "/phase"),
            bob.post(url + "/phase", data={"PHASE": "ABORT"}),
            bob.delete(url),
        ):
            assert response.status_code == 403
            assert "belongs to another user" in response.text
        assert alice.get(url + "/phase").text == "PENDING"


def test_job_list_shows_only_the_callers_jobs(service: RunningService) -> None:
    with client_for(service, "carol") as carol, client_for(service, None) as anonymous:
        mine = carol.post("/async").headers["location"].rsplit("/", 1)[1]
        theirs = anonymous.post("/async").headers["location"].rsplit("/", 1)[1]
        carol_ids = {r.get("id") for r in etree.fromstring(carol.get("/async").content)}
        anonymous_ids = {r.get("id") for r in etree.fromstring(anonymous.get("/async").content)}
        assert mine in carol_ids and theirs not in carol_ids
        assert theirs in anonymous_ids and mine not in anonymous_ids


def test_an_owner_cannot_keep_more_jobs_than_the_limit(service: RunningService) -> None:
    with client_for(service, "dave") as dave:
        for _ in range(3):
            assert dave.post("/async").status_code == 303
        response = dave.post("/async")
        assert response.status_code == 403
        assert "you have 3 jobs" in response.text
        assert len(etree.fromstring(dave.get("/async").content)) == 3
