"""Careless and hostile requests: malformed values are 400s naming the parameter, never 500s;
every answer carries the protective headers; 405 says what is allowed; OPTIONS and CORS.

No runner daemon: jobs stay where the HTTP side puts them.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from collections.abc import Iterator

import httpx
import pytest

from tests.http.conftest import RunningService, start_service, stop_service

ORIGIN = "https://notebook.example"
SYNC_QUERY = {"LANG": "ADQL", "QUERY": "SELECT TOP 1 schema_name FROM TAP_SCHEMA.schemas"}


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory) -> Iterator[RunningService]:
    settings = {"TAPD_CORS_ORIGINS": ORIGIN, "TAPD_REQUEST_MAX_BYTES": "200000"}
    running = start_service(
        pg_cluster, tmp_path_factory.mktemp("hostile"), "http_hostile", settings
    )
    yield running
    stop_service(running, pg_cluster, "http_hostile")


def create(client: httpx.Client, **params: str) -> str:
    response = client.post("/async", data=params)
    assert response.status_code == 303, response.text
    return response.headers["location"]


def log_events(service: RunningService) -> list[dict[str, object]]:
    events = []
    for line in service.log_text().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            events.append({"raw": line})
    return events


# -- item 7: malformed values ----------------------------------------------------------

NUL_CASES = [
    ({"QUERY": "SELECT\x00 1"}, "QUERY"),
    ({"RUNID": "a\x00b"}, "RUNID"),
    ({"QU\x00ERY": "SELECT 1"}, "QU"),
]


@pytest.mark.parametrize(("data", "named"), NUL_CASES)
def test_a_nul_byte_in_a_parameter_is_a_400_naming_it(client, data, named: str) -> None:
    response = client.post("/async", data=data)
    assert response.status_code == 400, response.text
    assert named in response.text and "NUL" in response.text
    url = create(client)
    response = client.post(url + "/parameters", data=data)
    assert response.status_code == 400, response.text
    assert named in response.text
    if not any("\x00" in k for k in data):  # httpx percent-encodes names in multipart
        files = {k: (None, v.encode()) for k, v in data.items()}
        response = client.post(url + "/parameters", files=files)
        assert response.status_code == 400, response.text


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_time_outside_the_calendar_is_a_400_naming_the_parameter(client, when: str) -> None:
    response = client.post("/async", data={"DESTRUCTION": when})
    assert (response.status_code, "DESTRUCTION" in response.text) == (400, True), response.text
    url = create(client)
    response = client.post(url + "/destruction", data={"DESTRUCTION": when})
    assert (response.status_code, "DESTRUCTION" in response.text) == (400, True), response.text
    response = client.get("/async", params={"AFTER": when})
    assert (response.status_code, "AFTER" in response.text) == (400, True), response.text


@pytest.mark.parametrize("last", ["99999999999999999999", "9223372036854775808"])
def test_an_enormous_last_is_a_400_naming_it(client, last: str) -> None:
    response = client.get("/async", params={"LAST": last})
    assert response.status_code == 400, response.text
    assert "LAST" in response.text


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"EXECUTIONDURATION": "9" * 40}, "EXECUTIONDURATION"),
        ({"MAXREC": "9" * 40}, "MAXREC"),
    ],
)
def test_enormous_numbers_are_clamped_or_a_400_never_a_500(client, params, named) -> None:
    response = client.post("/async", data=params)
    assert response.status_code in (303, 400), response.text
    if response.status_code == 400:
        assert named in response.text


def test_a_client_leaving_mid_body_is_one_info_line_and_no_traceback(service, client) -> None:
    url = create(client)
    address = urllib.parse.urlsplit(url)
    marker = f"{address.path}/parameters"
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(
            f"POST {marker} HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            "Content-Length: 100000\r\n\r\nQUERY=SELECT".encode()
        )
        time.sleep(0.2)  # let the server start reading the body
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        requests = [
            e
            for e in log_events(service)
            if e.get("event") == "http.request" and e.get("path") == marker
        ]
        if requests:
            break
        time.sleep(0.1)
    assert requests, "the aborted request was never logged"
    assert requests[0]["status"] != 500
    text = service.log_text()
    assert "Traceback" not in text
    gone = [e for e in log_events(service) if e.get("event") == "http.client_disconnected"]
    assert len([e for e in gone if e.get("path") == marker]) == 1
    assert gone[-1]["level"] == "info"


# -- item 10: headers ----------------------------------------------------------------


def test_every_answer_says_nosniff(client) -> None:
    url = create(client)
    for response in (
        client.get("/"),
        client.get("/async"),
        client.get(url),
        client.get(url + "/phase"),
        client.get("/nosuch"),
        client.post("/sync", data=SYNC_QUERY),
        client.post("/sync", data={"LANG": "ADQL", "QUERY": "SELECT nonsense FROM"}),
        client.get("/capabilities"),
    ):
        assert response.headers.get("x-content-type-options") == "nosniff", response.url


def test_sync_results_and_error_documents_are_never_stored(client) -> None:
    url = create(client)
    for response in (
        client.post("/sync", data=SYNC_QUERY),
        client.post("/sync", data={"LANG": "ADQL", "QUERY": "SELECT nonsense FROM"}),
        client.get(url + "/results/result"),
        client.get("/async/nosuchjob"),
        client.post("/async", data={"MAXREC": "ten"}),
    ):
        assert "no-store" in response.headers.get("cache-control", ""), (
            response.url,
            response.status_code,
        )


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/async", {"GET", "POST"}),
        ("DELETE", "/async", {"GET", "POST"}),
        ("PUT", "/async/{job}", {"GET", "POST", "DELETE"}),
        ("DELETE", "/async/{job}/phase", {"GET", "POST"}),
        ("PATCH", "/sync", {"GET", "POST"}),
        ("POST", "/capabilities", {"GET"}),
    ],
)
def test_405_says_which_methods_are_allowed(client, method, path, allowed) -> None:
    job = create(client).rsplit("/", 1)[1]
    response = client.request(method, path.format(job=job))
    assert response.status_code == 405
    methods = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed <= methods and method not in methods
    assert methods <= allowed | {"HEAD", "OPTIONS"}


def test_options_answers_with_the_allowed_methods(client) -> None:
    job = create(client).rsplit("/", 1)[1]
    for path, allowed in [("/async", {"GET", "POST"}), (f"/async/{job}/phase", {"GET", "POST"}),
                          ("/sync", {"GET", "POST"}), ("/tables", {"GET"})]:  # fmt: skip
        response = client.options(path)
        assert response.status_code in (200, 204), (path, response.text)
        assert allowed <= {m.strip() for m in response.headers["allow"].split(",")}
    assert client.options("/nosuch").status_code == 404


def test_cors_lets_a_configured_origin_read_results(client) -> None:
    response = client.post("/sync", data=SYNC_QUERY, headers={"Origin": ORIGIN})
    assert response.headers.get("access-control-allow-origin") == ORIGIN
    assert "Origin" in response.headers.get("vary", "")
    response = client.get("/sync", params=SYNC_QUERY, headers={"Origin": ORIGIN})
    assert response.headers.get("access-control-allow-origin") == ORIGIN
    preflight = client.options(
        "/sync", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers.get("access-control-allow-origin") == ORIGIN
    assert "GET" in preflight.headers.get("access-control-allow-methods", "")


def test_cors_says_nothing_to_other_origins(client) -> None:
    for headers in ({"Origin": "https://evil.example"}, {}):
        response = client.get("/sync", params=SYNC_QUERY, headers=headers)
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers
