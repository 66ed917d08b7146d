"""Owner isolation over the whole job tree: every method on every job route, three callers.

The routes come from the application's own route table, so a job route added
later is walked too: if it forgets the owner check, this test fails.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tapd.http.app import routes
from tapd.http.ownership import JOB_ID_PARAMETER, is_owner_checked, job_route, unchecked_job_routes
from tests.http.conftest import RunningService, start_service, stop_service

HEADER = "X-Remote-User"

#: Values for the other path parameters of job routes.
PLACEHOLDERS = {"name": "table1", "result_id": "result"}

#: What each method sends: enough to change the job if the check were skipped.
BODIES = {
    "POST": {
        "PHASE": "ABORT",
        "EXECUTIONDURATION": "1",
        "DESTRUCTION": "2030-01-01T00:00:00Z",
        "QUERY": "SELECT 2",
    },
}


def job_routes() -> list[tuple[str, str]]:
    """(method, path template) of every route under /async/{job_id}."""
    found = []
    for route in routes(""):
        path = getattr(route, "path", "")
        if "{" + JOB_ID_PARAMETER + "}" not in path:
            continue
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                found.append((method, path))
    return found


def fill(template: str, job_id: str) -> str:
    path = template.replace("{" + JOB_ID_PARAMETER + "}", job_id)
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PLACEHOLDERS.get(m.group(1), "x"), path)


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory) -> Iterator[RunningService]:
    settings = {"TAPD_OWNER_HEADER": HEADER, "TAPD_JOBS_PER_OWNER": "1000"}
    running = start_service(pg_cluster, tmp_path_factory.mktemp("iso"), "http_isolation", settings)
    yield running
    stop_service(running, pg_cluster, "http_isolation")


def client_for(service: RunningService, user: str | None) -> httpx.Client:
    headers = {HEADER: user} if user else {}
    return httpx.Client(base_url=service.url, headers=headers, follow_redirects=False, timeout=60)


def test_the_route_table_has_job_routes_for_every_uws_child() -> None:
    paths = {path for _, path in job_routes()}
    for child in ("phase", "executionduration", "destruction", "parameters", "results", "error"):
        assert f"/async/{{job_id}}/{child}" in paths
    assert len(job_routes()) >= 17


def test_every_job_route_passes_through_the_owner_check() -> None:
    unchecked = [
        path
        for route in routes("/tap")
        if "{" + JOB_ID_PARAMETER + "}" in (path := getattr(route, "path", ""))
        and not is_owner_checked(route.endpoint)
    ]
    assert unchecked == []


def test_a_job_route_without_the_check_is_found() -> None:
    async def endpoint(request: Request) -> Response:
        return Response(b"")

    table = [
        Route("/async/{job_id}/new", endpoint),
        job_route("/async/{job_id}/ok", endpoint, ["GET"]),
    ]
    assert unchecked_job_routes(table) == ["/async/{job_id}/new"]


@pytest.mark.parametrize(("method", "template"), job_routes())
def test_only_the_owner_reaches_a_job_route(
    service: RunningService, method: str, template: str
) -> None:
    """Another owner and an anonymous caller get 403 and change nothing (UWS-21, TAP-55)."""
    with (
        client_for(service, "alice") as alice,
        client_for(service, "mallory") as mallory,
        client_for(service, None) as anonymous,
    ):
        url = alice.post("/async", data={"QUERY": "SELECT 1", "RUNID": "mine"}).headers["location"]
        job_id = url.rsplit("/", 1)[1]
        before = alice.get(url).content
        path = fill(template, job_id)
        for intruder in (mallory, anonymous):
            response = intruder.request(method, path, data=BODIES.get(method))
            assert response.status_code == 403, (method, path, response.text)
            assert "belongs to another user" in response.text
        after = alice.get(url)
        assert after.status_code == 200
        assert after.content == before, (method, path)
        response = alice.request(method, path, data=BODIES.get(method))
        assert response.status_code != 403 or "belongs to another user" not in response.text


def test_anonymous_jobs_are_not_reachable_by_a_named_owner(service: RunningService) -> None:
    with client_for(service, None) as anonymous, client_for(service, "alice") as alice:
        url = anonymous.post("/async", data={"QUERY": "SELECT 1"}).headers["location"]
        for response in (
            alice.post(url + "/executionduration", data={"EXECUTIONDURATION": "1"}),
            alice.get(url),
            alice.delete(url),
        ):
            assert response.status_code == 403
        assert anonymous.get(url + "/executionduration").status_code == 200
