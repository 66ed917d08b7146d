"""/sync under slow, vanished and greedy clients: a bounded wait for a slot (then 503 with
Retry-After), a time limit covering the whole response, the backend query cancelled when
the client leaves, and URL uploads that trickle cut by a timeout or stopped with the client."""

from __future__ import annotations

import http.server
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.http.conftest import RunningService, start_service, stop_service

ROWS = 60
#: ROWS**6 combinations: runs far longer than any limit here, and yields no row until done.
SLOW_COUNT = (
    "SELECT COUNT(*) AS n FROM demo.stars AS a, demo.stars AS b, demo.stars AS c,"
    " demo.stars AS d, demo.stars AS e, demo.stars AS f"
)
#: Rows flow at once and keep flowing (ROWS**4 of them).
ENDLESS_ROWS = (
    "SELECT a.id, b.name, c.ra, d.dec FROM demo.stars AS a, demo.stars AS b, demo.stars AS c,"
    " demo.stars AS d"
)
SLOTS = 2
LONG_LIMIT = 60
SHORT_LIMIT = 4

TABLE = b"""<?xml version="1.0"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>
<FIELD name="a" datatype="int"/><DATA><TABLEDATA><TR><TD>1</TD></TR></TABLEDATA></DATA>
</TABLE></RESOURCE></VOTABLE>"""


class TrickleServer:
    """Serves a VOTable one byte every 0.3 s; records when the fetch of each path ended."""

    def __init__(self) -> None:
        self.finished: dict[str, threading.Event] = {}
        self.started: dict[str, threading.Event] = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.event(outer.started, self.path).set()
                self.send_response(200)
                self.send_header("Content-Length", str(len(TABLE)))
                self.end_headers()
                try:
                    for byte in TABLE:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.3)
                except OSError:
                    pass
                finally:
                    outer.event(outer.finished, self.path).set()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def event(events: dict[str, threading.Event], path: str) -> threading.Event:
        return events.setdefault(path, threading.Event())

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def trickle() -> Iterator[TrickleServer]:
    server = TrickleServer()
    yield server
    server.close()


def settings(limit: int, trickle: TrickleServer, fetch_timeout: int) -> dict[str, str]:
    return {
        "TAPD_SYNC_SLOTS": str(SLOTS),
        "TAPD_POOL_SIZE": str(SLOTS + 3),
        "TAPD_SYNC_SLOT_WAIT": "2",
        "TAPD_SYNC_EXECUTION_DURATION": str(limit),
        "TAPD_UPLOAD_URL_ALLOW": trickle.url,
        "TAPD_UPLOAD_FETCH_TIMEOUT": str(fetch_timeout),
    }


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory, trickle) -> Iterator[RunningService]:
    running = start_service(
        pg_cluster, tmp_path_factory.mktemp("slots"), "http_sync_slots",
        settings(LONG_LIMIT, trickle, LONG_LIMIT), sample_rows=ROWS,
    )  # fmt: skip
    yield running
    stop_service(running, pg_cluster, "http_sync_slots")


@pytest.fixture(scope="module")
def short(pg_cluster, tmp_path_factory, trickle) -> Iterator[RunningService]:
    running = start_service(
        pg_cluster, tmp_path_factory.mktemp("short"), "http_sync_short",
        settings(SHORT_LIMIT, trickle, 3), sample_rows=ROWS,
    )  # fmt: skip
    yield running
    stop_service(running, pg_cluster, "http_sync_short")


def raw_sync(service: RunningService, query: str, **extra: str) -> socket.socket:
    """A /sync request on a raw socket, not read: the caller decides how to consume it."""
    address = urllib.parse.urlsplit(service.url)
    body = urllib.parse.urlencode({"LANG": "ADQL", "QUERY": query, **extra}).encode()
    sock = socket.create_connection((address.hostname, address.port), timeout=120)
    sock.sendall(
        f"POST {address.path}/sync HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def running_queries(service: RunningService, text: str) -> int:
    with psycopg.connect(service.dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
            " AND application_name LIKE 'tapd http sync%%' AND query LIKE %s",
            (f"%{text}%",),
        ).fetchone()
    return int(row[0]) if row else 0


def wait_until(condition, seconds: float) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``condition()`` held (fails after ``seconds``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, "the condition never held"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_vanished_client_gets_its_query_cancelled_without_rows(service) -> None:
    sock = raw_sync(service, SLOW_COUNT)
    wait_until(lambda: running_queries(service, "count(") == 1, 30)
    sock.close()
    # Generous bound (the sync limit is 60 s): the cancel is expected within about 1 s.
    took = wait_until(lambda: running_queries(service, "count(") == 0, 15)
    print(f"query gone {took:.2f} s after the client left (no rows flowing)")


def test_a_vanished_client_gets_its_query_cancelled_while_rows_flow(service) -> None:
    sock = raw_sync(service, ENDLESS_ROWS, MAXREC="100000000")
    wait_until(lambda: running_queries(service, "COPY") == 1, 30)
    assert sock.recv(100)  # rows are flowing
    sock.close()
    took = wait_until(lambda: running_queries(service, "COPY") == 0, 15)
    print(f"query gone {took:.2f} s after the client left (rows flowing)")


def test_waiting_for_a_slot_is_bounded_then_503_with_retry_after(service) -> None:
    holders = [raw_sync(service, SLOW_COUNT) for _ in range(SLOTS)]
    try:
        wait_until(lambda: running_queries(service, "count(") == SLOTS, 30)
        with httpx.Client(base_url=service.url, timeout=60) as client:
            started = time.monotonic()
            response = client.post("/sync", data={"LANG": "ADQL", "QUERY": "SELECT 1"})
            waited = time.monotonic() - started
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1
        assert b"synchronous query slots" in response.content
        assert waited < LONG_LIMIT / 2  # bounded by sync_slot_wait, not by the holders
    finally:
        for sock in holders:
            sock.close()
    wait_until(lambda: running_queries(service, "count(") == 0, 15)
    with httpx.Client(base_url=service.url, timeout=60) as client:
        query = "SELECT TOP 1 id FROM demo.stars"
        assert client.post("/sync", data={"LANG": "ADQL", "QUERY": query}).status_code == 200


def cut_responses(service: RunningService) -> int:
    return service.log_text().count('"event": "http.sync_cut"')


def test_clients_too_slow_to_read_hold_no_slot_past_the_sync_time_limit(short) -> None:
    holders = [raw_sync(short, ENDLESS_ROWS, MAXREC="100000000") for _ in range(SLOTS)]
    try:
        for sock in holders:
            assert sock.recv(100)  # their results started; they read no more
        # The kernel keeps what was already sent; the service must let go by the limit.
        wait_until(lambda: cut_responses(short) >= SLOTS, SHORT_LIMIT + 60)
        wait_until(lambda: running_queries(short, "COPY") == 0, 30)
        query = "SELECT TOP 1 id FROM demo.stars"
        with httpx.Client(base_url=short.url, timeout=60) as client:
            for _ in range(SLOTS + 1):  # every slot is free again
                response = client.post("/sync", data={"LANG": "ADQL", "QUERY": query})
                assert response.status_code == 200
    finally:
        for sock in holders:
            sock.close()
    assert "Traceback" not in short.log_text()


def test_a_trickling_url_upload_is_cut_by_the_fetch_timeout(short, trickle) -> None:
    with httpx.Client(base_url=short.url, timeout=60) as client:
        response = client.post(
            "/sync",
            data={
                "LANG": "ADQL",
                "QUERY": "SELECT * FROM TAP_UPLOAD.t",
                "UPLOAD": f"t,{trickle.url}/cut.xml",
            },
        )
    assert response.status_code == 400
    assert b"3 s" in response.content
    assert trickle.event(trickle.finished, "/cut.xml").wait(30)


def test_a_url_upload_stops_when_the_client_leaves(service, trickle) -> None:
    sock = raw_sync(service, "SELECT * FROM TAP_UPLOAD.t", UPLOAD=f"t,{trickle.url}/left.xml")
    assert trickle.event(trickle.started, "/left.xml").wait(30)
    time.sleep(0.5)
    sock.close()
    # The trickle needs ~60 s to finish on its own; the fetch stops within a few.
    assert trickle.event(trickle.finished, "/left.xml").wait(20)


@pytest.fixture(scope="module")
def slow_fetch(pg_cluster, tmp_path_factory, trickle) -> Iterator[RunningService]:
    """The sync limit (2 s) passes long before the URL fetch would give up (60 s)."""
    running = start_service(
        pg_cluster, tmp_path_factory.mktemp("slowfetch"), "http_sync_slow_fetch",
        settings(2, trickle, LONG_LIMIT), sample_rows=ROWS,
    )  # fmt: skip
    yield running
    stop_service(running, pg_cluster, "http_sync_slow_fetch")


def test_the_sync_time_limit_passing_before_the_query_is_reported_as_that_limit(
    slow_fetch, trickle
) -> None:
    """Whatever the request was doing when the limit passed (here: fetching an upload),
    the client is told the limit it ran into, not that it went away."""
    with httpx.Client(base_url=slow_fetch.url, timeout=60) as client:
        response = client.post(
            "/sync",
            data={
                "LANG": "ADQL",
                "QUERY": "SELECT * FROM TAP_UPLOAD.t",
                "UPLOAD": f"t,{trickle.url}/limit.xml",
            },
        )
    assert response.status_code == 400
    assert b"time limit of synchronous queries of 2 s" in response.content
    assert trickle.event(trickle.finished, "/limit.xml").wait(30)
