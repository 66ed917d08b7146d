"""A result download racing DELETE gets the whole file or a 404, never a 500 or a cut stream."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tapd.http.problems import HttpProblem
from tapd.http.responses import file_response, problem
from tests.http.conftest import RunningService, start_service, stop_service

ROWS = 20000
QUERY = "SELECT TOP 20000 * FROM demo.stars"


def app_serving(path: Path, delete_first: bool) -> Starlette:
    """A one-route app answering ``file_response(path)``; the file is deleted (as a racing
    DELETE would) after it was opened and before the answer is sent."""

    async def endpoint(request: Request) -> Response:
        response = file_response(path, media_type="text/plain", missing="the file is gone")
        if delete_first:
            path.unlink()
        return response

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HttpProblem)
        return problem(exc.message, exc.status)

    return Starlette(routes=[Route("/f", endpoint)], exception_handlers={HttpProblem: refused})


def get(app: Starlette) -> httpx.Response:
    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/f")

    return asyncio.run(request())


def test_a_file_deleted_after_opening_is_served_whole(tmp_path: Path) -> None:
    path = tmp_path / "result.vot"
    content = bytes(range(256)) * 4096
    path.write_bytes(content)
    response = get(app_serving(path, delete_first=True))
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-length"] == str(len(content))


def test_a_file_gone_before_opening_is_a_404(tmp_path: Path) -> None:
    response = get(app_serving(tmp_path / "missing", delete_first=False))
    assert (response.status_code, response.text) == (404, "the file is gone\n")


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory) -> Iterator[RunningService]:
    running = start_service(
        pg_cluster, tmp_path_factory.mktemp("races"), "http_races", daemon=True, sample_rows=ROWS
    )
    yield running
    stop_service(running, pg_cluster, "http_races")


def completed_job(client: httpx.Client) -> str:
    data = {"LANG": "ADQL", "QUERY": QUERY, "PHASE": "RUN"}
    url = client.post("/async", data=data).headers["location"]
    for _ in range(60):
        phase = client.get(url, params={"WAIT": "5"}).text
        if "COMPLETED" in phase or "ERROR" in phase:
            break
    assert client.get(url + "/phase").text == "COMPLETED"
    return str(url)


@pytest.mark.slow
def test_downloads_racing_delete_are_whole_or_404(service: RunningService) -> None:
    with httpx.Client(base_url=service.url, timeout=60) as client:
        reference = client.get(completed_job(client) + "/results/result").content
        assert len(reference) > 500_000
        outcomes = []
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for _ in range(25):
                url = completed_job(client)
                downloads = [pool.submit(client.get, url + "/results/result") for _ in range(3)]
                deletion = pool.submit(client.delete, url)
                assert deletion.result().status_code == 303
                for future in downloads:
                    response = future.result()  # a cut stream raises here
                    outcomes.append(response.status_code)
                    assert response.status_code in (200, 404), response.text
                    if response.status_code == 200:
                        assert len(response.content) == len(reference)
    assert "Traceback" not in service.log_text()
    assert '"status": 500' not in service.log_text()
