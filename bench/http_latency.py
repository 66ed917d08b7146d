"""Latency of the TAP HTTP service as a client sees it, beside same-run baselines.

    .venv/bin/python bench/http_latency.py [--runs 50] [--rows 100000]

Starts a throwaway PostgreSQL with the demo catalog, one runner daemon (``tapd
run``) and the HTTP service (``tapd serve``) as separate processes, then
measures (median of ``--runs`` after a warm-up, one keep-alive HTTP client):

* sync: ``POST /sync`` with ``SELECT TOP 1 id FROM demo.stars``, the whole
  response read; baselines: ``tapd.runner.run_sync`` in-process (the same
  work without HTTP), the translated query over a direct psycopg connection,
  and ``GET /capabilities`` (an HTTP round trip without the database).
* async: ``POST /async`` with PHASE=RUN, then ``GET job?WAIT=-1`` until the job
  is COMPLETED; baseline: the same job submitted straight to the job store
  (``JobStore.create_job(queue=True)``) and awaited by LISTEN on the phase
  channel, i.e. the daemon's share without HTTP.

Targets (issue 5): sync < 5 ms, async < 20 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
from lxml import etree

from tapd.catalog import load_catalog
from tapd.config import load_config
from tapd.demo import prepare_database
from tapd.devcluster import DevCluster
from tapd.runner import run_sync, tap_request
from tapd.store import JobStore, phase_channel

QUERY = "SELECT TOP 1 id FROM demo.stars"
BASELINE_SQL = "SELECT id FROM demo.stars LIMIT 1"
UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"


def median_ms(function: Callable[[], object], runs: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_service(rows: int) -> Iterator[tuple[str, str]]:
    """(TAP base URL, DSN) of a demo-like setup; everything removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="tapd-bench-"))
    workdir.chmod(0o755)
    cluster = DevCluster(base_dir=workdir / "postgresql", dbname="tapd")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        cluster.start()
        (workdir / "tapd.toml").write_text("")
        config = load_config(workdir / "tapd.toml", environ={})
        prepare_database(cluster.dsn, config, rows)
        port = free_port()
        env = {
            **os.environ,
            "TAPD_CONFIG": str(workdir / "tapd.toml"),
            "TAPD_DSN": cluster.dsn,
            "TAPD_JOBS_DIR": str(workdir / "jobs"),
            "TAPD_PORT": str(port),
            "TAPD_LEVEL": "warning",
        }
        (workdir / "jobs").mkdir()
        for command in ("run", "serve"):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tapd", command],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=(workdir / f"{command}.log").open("wb"),
                )
            )
        url = f"http://127.0.0.1:{port}/tap"
        _wait_for(url + "/availability")
        yield url, cluster.dsn
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        with contextlib.suppress(Exception):
            cluster.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_for(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if b"<avl:available>true" in response.read():
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the service at {url} did not become available")


def measure(url: str, dsn: str, runs: int) -> dict[str, float]:
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
    data = {"LANG": "ADQL", "QUERY": QUERY}

    def sync_http() -> None:
        response = client.post("/sync", data=data)
        assert response.status_code == 200, response.text

    def http_floor() -> None:
        assert client.get("/capabilities").status_code == 200

    def async_http() -> None:
        created = client.post("/async", data={**data, "PHASE": "RUN"})
        job_url = created.headers["location"]
        while True:
            root = etree.fromstring(client.get(job_url, params={"WAIT": "-1"}).content)
            phase = root.findtext(f"{UWS}phase")
            if phase not in ("PENDING", "QUEUED", "EXECUTING"):
                break
        assert phase == "COMPLETED", phase

    direct = psycopg.connect(dsn, autocommit=True)

    def sync_direct() -> None:
        direct.execute(BASELINE_SQL).fetchall()

    config = load_config(None, environ={"TAPD_DSN": dsn})
    request = tap_request({"LANG": ["ADQL"], "QUERY": [QUERY]}, config)
    runner_conn = psycopg.connect(dsn, autocommit=True)
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

    results = {
        "http_floor": median_ms(http_floor, runs),
        "sync_http": median_ms(sync_http, runs),
        "sync_runner": median_ms(sync_runner, runs),
        "sync_direct": median_ms(sync_direct, runs),
        "async_http": median_ms(async_http, runs),
        "async_store": median_ms(async_store, runs),
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
        ("      GET /capabilities, no database", r["http_floor"], "the HTTP round trip alone"),
        ("async submit -> COMPLETED (WAIT)", r["async_http"], "target < 20 ms"),
        (
            "      via the job store, no HTTP",
            r["async_store"],
            ratio(r, "async_http", "async_store"),
        ),
    ]
    print(f"tapd HTTP latency, median of {args.runs} runs ({args.rows:,}-row demo catalog)")
    for label, value, note in rows:
        print(f"  {label:<36} {value:8.2f} ms   {note}")


def ratio(results: dict[str, float], measured: str, baseline: str) -> str:
    return f"HTTP is {results[measured] / results[baseline]:.1f}x this"


if __name__ == "__main__":
    main()
