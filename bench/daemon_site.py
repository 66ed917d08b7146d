"""A throwaway tapd site for the daemon benchmarks: PostgreSQL, tables, a daemon.

Shared by ``bench/daemon_latency.py`` and ``bench/daemon_throughput.py``.
The pgbench floor runs one claim transaction (the daemon's own ``claim_jobs``
statement from ``tapd/store/queries.sql``) against a copy of the job table
filled with queued jobs, so it measures what PostgreSQL alone can do per claim.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from tapd.catalog import ensure_tap_schema, publish_table
from tapd.devcluster import DevCluster
from tapd.pgsphere import install_pgsphere
from tapd.store import JobStore, initialise_schema, phase_channel
from tapd.store.queries import schema_queries

TRIVIAL_QUERY = "SELECT TOP 1 x FROM public.numbers"


@contextlib.contextmanager
def bench_site(max_jobs: int = 4) -> Iterator[Site]:
    root = Path(tempfile.mkdtemp(prefix="tapd-bench-"))
    root.chmod(0o755)  # the server runs as postgres when we are root
    cluster = DevCluster(base_dir=root / "pg")
    cluster.start()
    try:
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            install_pgsphere(conn)
            initialise_schema(conn)
            ensure_tap_schema(conn, "tapd_query")
            conn.execute("CREATE TABLE public.numbers AS SELECT x FROM generate_series(1, 100) x")
            publish_table(conn, "public.numbers", None, "tapd_query")
        yield Site(cluster, root, max_jobs)
    finally:
        cluster.cleanup()
        shutil.rmtree(root, ignore_errors=True)


class Site:
    def __init__(self, cluster: DevCluster, root: Path, max_jobs: int) -> None:
        self.cluster = cluster
        self.dsn = cluster.dsn
        self.root = root
        self.jobs_dir = root / "jobs"
        self.jobs_dir.mkdir()
        self.config = root / "tapd.toml"
        self.config.write_text(
            f'[database]\ndsn = "{self.dsn}"\n'
            f'[runner]\njobs_dir = "{self.jobs_dir}"\nmax_jobs = {max_jobs}\n'
            '[log]\nlevel = "warning"\n'
        )

    @contextlib.contextmanager
    def daemon(self) -> Iterator[subprocess.Popen[bytes]]:
        """``tapd run`` as a subprocess, returned once it said READY=1."""
        notify_path = self.root / f"notify-{time.monotonic_ns()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            notify.settimeout(60)
            env = {k: v for k, v in os.environ.items() if not k.startswith("TAPD_")}
            env["NOTIFY_SOCKET"] = str(notify_path)
            process = subprocess.Popen(
                [sys.executable, "-m", "tapd", "--config", str(self.config), "run"], env=env
            )
            try:
                while b"READY=1" not in notify.recv(4096).split(b"\n"):
                    pass
                time.sleep(0.5)  # let every slot's spare connect
                yield process
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(60)

    def submit(self, store: JobStore, query: str = TRIVIAL_QUERY) -> str:
        job = store.create_job(
            {"LANG": "ADQL", "QUERY": query}, execution_duration=60, destruction=None, queue=True
        )
        return job.job_id


class PhaseListener:
    """Phase-change notifications, read without psycopg's blocking generator."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute(f'LISTEN "{phase_channel("tapd")}"')
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.conn.fileno(), selectors.EVENT_READ)

    def changes(self, timeout: float) -> list[dict[str, Any]]:
        """Notifications that arrived, waiting up to ``timeout`` for the first."""
        found = []
        if self.selector.select(timeout):
            self.conn.pgconn.consume_input()
            while (n := self.conn.pgconn.notifies()) is not None:
                found.append(json.loads(n.extra))
        return found

    def close(self) -> None:
        self.conn.close()


def pgbench_claim_rate(cluster: DevCluster, clients: int, seconds: float = 5.0) -> float:
    """Transactions per second of pgbench running one claim per transaction
    against a job table full of queued jobs, in a database of its own."""
    with psycopg.connect(cluster.admin_dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS pgbench_floor")
        conn.execute("CREATE DATABASE pgbench_floor")
    dsn = cluster.admin_dsn("pgbench_floor")
    with psycopg.connect(dsn, autocommit=True) as conn:
        initialise_schema(conn)
        conn.execute(
            "INSERT INTO tapd.jobs (job_id, phase, execution_duration, parameters)"
            " SELECT 'j' || g, 'QUEUED', 60, '{\"QUERY\": [\"SELECT 1\"]}'::jsonb"
            " FROM generate_series(1, 200000) g"
        )
        conn.execute("VACUUM ANALYZE tapd.jobs")
    claim = schema_queries("tapd")["claim_jobs"].decode()
    claim = re.sub(r"%\((\w+)\)s", lambda m: {"limit": "1"}.get(m[1], "'pgbench'"), claim)
    script = cluster.base_dir / "claim.sql"
    script.write_text(claim + ";\n")
    done = subprocess.run(
        [
            str(cluster.bindir / "pgbench"),
            "-n",
            "-f",
            str(script),
            "-c",
            str(clients),
            "-j",
            str(clients),
            "-T",
            str(int(seconds)),
            "-h",
            str(cluster.socket_dir),
            "-p",
            str(cluster.port),
            "-U",
            cluster.superuser,
            "pgbench_floor",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"tps = ([0-9.]+)", done.stdout)
    assert match, done.stdout
    return float(match.group(1))
