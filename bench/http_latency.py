"""Latency of the TAP HTTP service as a client sees it, beside same-run baselines.

    .venv/bin/python bench/http_latency.py [--runs 50] [--rows 100000]

Starts a throwaway PostgreSQL with the demo catalog, one runner daemon (``tapd
run``) and the HTTP service (``tapd serve``) as separate processes, then
measures (median of ``--runs`` after a warm-up, one keep-alive ``http.client``
connection: the lightest client, so the figures are the service's):

* sync: ``POST /sync`` with ``SELECT TOP 1 id FROM demo.stars``, the whole
  response read; baselines: ``tapd.runner.run_sync`` in-process (the same
  work without HTTP), the translated query over a direct psycopg connection,
  ``GET /`` (tapd's HTTP stack without the database) and the client's own
  floor (the same client against a canned answer from a bare socket).
* async: ``POST /async`` with PHASE=RUN, then ``GET job?WAIT=-1`` until the job
  is COMPLETED; baseline: the same job submitted straight to the job store
  (``JobStore.create_job(queue=True)``) and awaited by LISTEN on the phase
  channel, i.e. the daemon's share without HTTP. Async jobs are 0.2 s apart
  (not timed), as in ``bench/daemon_latency.py``: the latency of one job, not
  of a stream competing with the daemon re-forking its spares (throughput is
  ``bench/daemon_throughput.py``'s).

Also printed: which event loop and HTTP parser ``tapd serve`` used (uvloop and
httptools when installed) and psycopg's implementation (C with the ``fast``
extra). Targets (issue 5): sync < 5 ms, async < 20 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import shutil
import socket
import statistics
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
from lxml import etree
from tapd_services import running_tapd

from tapd.catalog import load_catalog
from tapd.config import load_config
from tapd.demo import prepare_database
from tapd.devcluster import DevCluster
from tapd.runner import run_sync, tap_request
from tapd.store import JobStore, phase_channel

QUERY = "SELECT TOP 1 id FROM demo.stars"
BASELINE_SQL = "SELECT id FROM demo.stars LIMIT 1"
UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"


#: Seconds between async jobs (the slot's next spare forks and connects meanwhile).
ASYNC_PAUSE = 0.2


def median_ms(
    function: Callable[[], object], runs: int, warmup: int = 5, pause: float = 0.0
) -> float:
    """Median milliseconds of ``function``; ``pause`` seconds (not timed) after each run."""
    for _ in range(warmup):
        function()
        time.sleep(pause)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
        time.sleep(pause)
    return statistics.median(times) * 1000


@contextlib.contextmanager
def running_service(rows: int, settings: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    """(TAP base URL, DSN) of a demo-like setup (``settings``: extra ``TAPD_*``
    variables); everything removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="tapd-bench-"))
    workdir.chmod(0o755)
    cluster = DevCluster(base_dir=workdir / "postgresql", dbname="tapd")
    try:
        cluster.start()
        (workdir / "tapd.toml").write_text("")
        config = load_config(workdir / "tapd.toml", environ={})
        prepare_database(cluster.dsn, config, rows)
        with running_tapd(workdir, cluster.dsn, settings or {}) as service:
            yield service.url, cluster.dsn
    finally:
        with contextlib.suppress(Exception):
            cluster.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


class Client:
    """One keep-alive HTTP/1.1 connection to the service (``http.client``: little
    work per request, so the client is not what is measured)."""

    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.base_path = parts.path
        self.connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body); ``path`` relative to the service or absolute."""
        target = urllib.parse.urlsplit(path)
        url = target.path if target.scheme else self.base_path + path
        if target.query:
            url += "?" + target.query
        headers = {}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, url, body, headers)
        response = self.connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()

    def close(self) -> None:
        self.connection.close()


@contextlib.contextmanager
def canned_server() -> Iterator[str]:
    """URL of a bare socket that answers every request with the same short response."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                pending = b""
                while chunk := conn.recv(65536):
                    pending += chunk
                    while b"\r\n\r\n" in pending:  # the floor requests have no body
                        _, pending = pending.split(b"\r\n\r\n", 1)
                        conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listener.close()


def measure(url: str, dsn: str, runs: int) -> dict[str, float]:
    client = Client(url)
    data = {"LANG": "ADQL", "QUERY": QUERY}

    def sync_http() -> None:
        status, _, body = client.request("POST", "/sync", data)
        assert status == 200, body

    def http_floor() -> None:
        assert client.request("GET", "/")[0] == 200

    def async_http() -> None:
        status, headers, _ = client.request("POST", "/async", {**data, "PHASE": "RUN"})
        assert status == 303, status
        job_url = headers.get("location") or headers["Location"]
        while True:
            _, _, body = client.request("GET", job_url + "?WAIT=-1")
            phase = etree.fromstring(body).findtext(f"{UWS}phase")
            if phase not in ("PENDING", "QUEUED", "EXECUTING"):
                break
        assert phase == "COMPLETED", phase

    direct = psycopg.connect(dsn, autocommit=True)

    def sync_direct() -> None:
        direct.execute(BASELINE_SQL).fetchall()

    config = load_config(None, environ={"TAPD_DSN": dsn})
    request = tap_request({"LANG": ["ADQL"], "QUERY": [QUERY]}, config)
    runner_conn = psycopg.connect(config.query_conninfo, autocommit=True)  # as /sync's
    catalog = load_catalog(runner_conn)

    def sync_runner() -> None:
        run_sync(runner_conn, request, io.BytesIO(), config=config, catalog=catalog)

    store = JobStore(psycopg.connect(dsn, autocommit=True))
    listener = psycopg.connect(dsn, autocommit=True)
    listener.execute(f'LISTEN "{phase_channel("tapd")}"')

    def async_store() -> None:
        job = store.create_job(data, execution_duration=60, destruction=None, queue=True)
        for notify in listener.notifies():
            message = json.loads(notify.payload)
            if message["job_id"] == job.job_id and message["phase"] == "COMPLETED":
                break

    with canned_server() as canned_url:
        canned = Client(canned_url)
        client_floor = median_ms(lambda: canned.request("GET", "/"), runs)
        canned.close()

    results = {
        "client_floor": client_floor,
        "http_floor": median_ms(http_floor, runs),
        "sync_http": median_ms(sync_http, runs),
        "sync_runner": median_ms(sync_runner, runs),
        "sync_direct": median_ms(sync_direct, runs),
        "async_http": median_ms(async_http, runs, pause=ASYNC_PAUSE),
        "async_store": median_ms(async_store, runs, pause=ASYNC_PAUSE),
    }
    client.close()
    direct.close()
    runner_conn.close()
    store.conn.close()
    listener.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with running_service(args.rows) as (url, dsn):
        r = measure(url, dsn, args.runs)
    rows = [
        ("sync  SELECT TOP 1 over HTTP", r["sync_http"], "target < 5 ms"),
        (
            "      run_sync in-process, no HTTP",
            r["sync_runner"],
            ratio(r, "sync_http", "sync_runner"),
        ),
        (
            "      same query, direct psycopg",
            r["sync_direct"],
            ratio(r, "sync_http", "sync_direct"),
        ),
        ("      GET /, no database", r["http_floor"], "tapd's HTTP round trip alone"),
        ("      client floor (canned answer)", r["client_floor"], "the client and loopback"),
        ("async submit -> COMPLETED (WAIT)", r["async_http"], "target < 20 ms"),
        (
            "      via the job store, no HTTP",
            r["async_store"],
            ratio(r, "async_http", "async_store"),
        ),
    ]
    from tapd.http.server import event_loop, http_parser

    print(f"tapd HTTP latency, median of {args.runs} runs ({args.rows:,}-row demo catalog)")
    print(
        f"  tapd serve ran on the {event_loop()[1]} event loop with uvicorn's {http_parser()},"
        f" psycopg's {psycopg.pq.__impl__} implementation"
    )
    for label, value, note in rows:
        print(f"  {label:<36} {value:8.2f} ms   {note}")


def ratio(results: dict[str, float], measured: str, baseline: str) -> str:
    return f"HTTP is {results[measured] / results[baseline]:.1f}x this"


if __name__ == "__main__":
    main()
