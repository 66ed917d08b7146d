"""A throwaway tapd site for the daemon benchmarks: PostgreSQL, tables, a daemon.

Shared by ``bench/daemon_latency.py`` and ``bench/daemon_throughput.py``.
The pgbench floor runs one claim transaction (the daemon's own ``claim_jobs``
statement from ``tapd/store/queries.sql``) against a copy of the job table
filled with queued jobs, so it measures what PostgreSQL alone can do per claim.
The design floor (``design_floor``, ``bench/daemon_floor.py``) adds what the
daemon's design costs per job on top: a forked warm child and a new backend.
CPU is counted per process tree (``tree_cpu``): on a shared 2-core machine the
CPU a job costs is steadier than the wall time it takes.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from tapd.catalog import ensure_tap_schema, publish_table
from tapd.devcluster import DevCluster
from tapd.pgsphere import install_pgsphere
from tapd.store import JobStore, initialise_schema, phase_channel
from tapd.store.queries import schema_queries

TRIVIAL_QUERY = "SELECT TOP 1 x FROM public.numbers"
_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid``, its reaped children and its live children."""
    fields = _stat_fields(pid)
    total = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                child = _stat_fields(int(entry.name))
                if int(child[1]) == pid:
                    total += sum(int(x) for x in child[11:15])
    return total / _TICKS


@dataclass(frozen=True)
class CpuPerJob:
    """Milliseconds of CPU per job: tapd's processes (or the floor's) and PostgreSQL's."""

    client: float
    server: float

    @property
    def total(self) -> float:
        return self.client + self.server

    def __str__(self) -> str:
        return (
            f"{self.total:.1f} ms CPU/job ({self.client:.1f} runner processes,"
            f" {self.server:.1f} PostgreSQL)"
        )


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
        self.max_jobs = max_jobs
        self.config = self.write_config(self.dsn)

    def write_config(self, dsn: str) -> Path:
        """A configuration file for a daemon reaching the database at ``dsn``."""
        config = self.root / f"tapd-{time.monotonic_ns()}.toml"
        config.write_text(
            f'[database]\ndsn = "{dsn}"\n'
            f'[runner]\njobs_dir = "{self.jobs_dir}"\nmax_jobs = {self.max_jobs}\n'
            # Every benchmark job is one anonymous client's: let it use every slot
            # (fair share's default limit is half of them).
            f"[limits]\nrunning_per_owner = {self.max_jobs}\n"
            '[log]\nlevel = "warning"\n'
        )
        return config

    @contextlib.contextmanager
    def daemon(self, dsn: str | None = None) -> Iterator[subprocess.Popen[bytes]]:
        """``tapd run`` (reaching the database at ``dsn``, default the site's) as a
        subprocess, returned once it said READY=1."""
        config = self.write_config(dsn) if dsn else self.config
        notify_path = self.root / f"notify-{time.monotonic_ns()}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            notify.settimeout(60)
            env = {k: v for k, v in os.environ.items() if not k.startswith("TAPD_")}
            env["NOTIFY_SOCKET"] = str(notify_path)
            process = subprocess.Popen(
                [sys.executable, "-m", "tapd", "--config", str(config), "run"], env=env
            )
            try:
                while b"READY=1" not in notify.recv(4096).split(b"\n"):
                    pass
                time.sleep(0.5)  # let every slot's spare connect
                yield process
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(60)

    @property
    def postmaster_pid(self) -> int:
        return postmaster_pid(self.cluster)

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


def postmaster_pid(cluster: DevCluster) -> int:
    return int((cluster.data_dir / "postmaster.pid").read_text().split()[0])


def pgbench_claim(
    cluster: DevCluster, clients: int, *, new_connection: bool = False, seconds: float = 5.0
) -> tuple[float, CpuPerJob]:
    """Transactions per second of pgbench running one claim per transaction
    against a job table full of queued jobs, in a database of its own, and the
    CPU per transaction (pgbench's, the server's). ``new_connection``: a new
    connection (backend) per transaction (``pgbench -C``)."""
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
    queries = schema_queries("tapd")
    claim = queries["claim_jobs"].decode()
    values = {"limit": "1", "instance": "'pgbench'", "host": "'pgbench'"}
    claim = re.sub(r"%\((\w+)\)s", lambda m: values.get(m[1], "NULL"), claim)
    script = cluster.base_dir / "claim.sql"
    # As JobStore.claim_jobs: the claims' turn, then the claim, one transaction.
    script.write_text(f"BEGIN;\n{queries['claim_lock'].decode()};\n{claim};\nCOMMIT;\n")
    server_before = tree_cpu(postmaster_pid(cluster))
    before = os.times()
    done = subprocess.run(
        [
            str(cluster.bindir / "pgbench"),
            "-n",
            *(["-C"] if new_connection else []),
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
    after = os.times()
    server = tree_cpu(postmaster_pid(cluster)) - server_before
    client = after.children_user + after.children_system
    client -= before.children_user + before.children_system
    match = re.search(r"tps = ([0-9.]+)", done.stdout)
    count = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
    assert match and count, done.stdout
    transactions = int(count.group(1))
    return float(match.group(1)), CpuPerJob(
        1000 * client / transactions, 1000 * server / transactions
    )


def pgbench_claim_rate(cluster: DevCluster, clients: int, seconds: float = 5.0) -> float:
    """Transactions per second of pgbench running one claim per transaction
    against a job table full of queued jobs, in a database of its own."""
    return pgbench_claim(cluster, clients, seconds=seconds)[0]


def design_floor(
    site: Site, jobs: int, slots: int, *, fork_only: bool = False
) -> tuple[float, CpuPerJob]:
    """jobs/s and CPU per job of ``bench/daemon_floor.py``: per job a child forked
    from a process warmed up like ``tapd run``, a new backend, claim, end, exit
    (``fork_only``: the fork and exit alone)."""
    from daemon_floor import fill_floor_queue

    fill_floor_queue(site.dsn, jobs)
    server_before = tree_cpu(site.postmaster_pid)
    done = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("daemon_floor.py")),
            site.dsn,
            "--jobs",
            str(jobs),
            "--slots",
            str(slots),
            *(["--fork-only"] if fork_only else []),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    server = tree_cpu(site.postmaster_pid) - server_before
    rate, client_ms = (float(x) for x in done.stdout.split()[-2:])
    return rate, CpuPerJob(client_ms, 1000 * server / jobs)
