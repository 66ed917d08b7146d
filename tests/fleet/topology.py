"""The fleet's hosts and services, built in namespaces (for tests/fleet and bench/fleet.py).

Hosts (``tests.fleet.netns``), all on one bridge in a namespace of its own:
``dcs`` (etcd), ``db1`` and ``db2`` (Patroni with PostgreSQL 15 and pgsphere,
synchronous replication), the application hosts (``tapd run`` and ``tapd
serve`` from the working tree, each with its own jobs directory) and
``client``, whose network the calling thread joins while the fleet runs: its
HTTP requests and database connections reach the hosts' addresses only
there. ``running_fleet()`` creates everything and removes it at its end (and
namespaces left by a killed run are removed at the next start).

Needs root, iproute2, util-linux (nsenter, unshare, setpriv), patroni and
etcd-server (``scripts/bootstrap`` installs them as root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from tapd.store import JobStore
from tests.fleet.apphost import PYTHON, AppHost
from tests.fleet.cluster import Etcd, PatroniCluster, PatroniNode
from tests.fleet.netns import Host, Network, network_of, remove_stale_networks

TOOLS = ("ip", "nsenter", "unshare", "setpriv", "patroni", "etcd")

SAMPLE_SQL = """
CREATE TABLE public.numbers AS SELECT x FROM generate_series(1, 100) AS x;
-- Still running after ten minutes.
CREATE VIEW public.sleepy AS SELECT 1 AS x FROM pg_sleep(600);
-- A job that waits rather than computes: half a second.
CREATE VIEW public.pause AS SELECT 1 AS x FROM pg_sleep(0.5);
-- The numbers, after five seconds: a query holding its lock on the table that long.
CREATE VIEW public.numbers_slowly AS
    SELECT n.x FROM public.numbers AS n, (SELECT pg_sleep(5)) AS pause;
"""
PUBLISHED = ("public.numbers", "public.sleepy", "public.pause", "public.numbers_slowly")

#: Settings of both application hosts; short intervals so recovery is quick.
APP_SETTINGS: dict[str, dict[str, Any]] = {
    "runner": {
        "max_jobs": 4,
        "poll_interval": 0.5,
        "heartbeat_interval": 0.5,
        "heartbeat_timeout": 5.0,
        "shutdown_grace": 1.0,
        "sweep_interval": 0.5,
    },
    # The test's one client address submits hundreds of anonymous jobs.
    "limits": {"execution_duration_default": 120, "jobs_per_owner": 100000},
    "log": {"format": "json", "level": "info"},
}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def missing_prerequisite() -> str | None:
    """Why the fleet cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "the fleet test builds network namespaces and needs root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)}: run scripts/bootstrap as root"
    if not PYTHON.exists():
        return f"{PYTHON} is missing: run scripts/bootstrap"
    return None


@dataclass
class Fleet:
    root: Path
    network: Network
    cluster: PatroniCluster
    apps: dict[str, AppHost]
    client: Host

    def dsn(self, **extra: str) -> str:
        """The primary, as the application hosts reach it (multi-host, read-write)."""
        words = {"dbname": "tapd", "user": "postgres", "target_session_attrs": "read-write"}
        return self.cluster.dsn(**{**words, "connect_timeout": "5", **extra})

    def node_dsn(self, node: PatroniNode, dbname: str = "tapd") -> str:
        return f"host={node.host.address} port=5432 dbname={dbname} user=postgres"

    @contextlib.contextmanager
    def store(self) -> Iterator[JobStore]:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            yield JobStore(conn)

    def standby(self) -> PatroniNode:
        leader = self.cluster.leader()
        return next(n for n in self.cluster.nodes if leader is None or n.name != leader.name)

    @contextlib.contextmanager
    def only_runner(self, app: AppHost) -> Iterator[AppHost]:
        """Only ``app``'s daemon runs jobs meanwhile (the others are stopped)."""
        others = [a for a in self.apps.values() if a is not app and a.daemon is not None]
        for other in others:
            other.stop_daemon()
        try:
            yield app
        finally:
            for other in others:
                other.start_daemon()


def initialise_database(fleet_dsn: str, postgres_dsn: str) -> None:
    """The tapd database on the primary, as ``tapd initdb`` and ``tapd publish`` make it."""
    from tapd.catalog import ensure_tap_schema, publish_table
    from tapd.pgsphere import install_pgsphere
    from tapd.store import initialise_schema

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("CREATE DATABASE tapd")
    with psycopg.connect(fleet_dsn, autocommit=True) as conn:
        install_pgsphere(conn)
        initialise_schema(conn)
        ensure_tap_schema(conn, "tapd_query")
        conn.execute("ALTER ROLE tapd_query LOGIN")
        conn.execute(SAMPLE_SQL.encode())
        for table in PUBLISHED:
            publish_table(conn, table, None, "tapd_query")


def app_settings(fleet: Fleet, host: Host) -> dict[str, dict[str, Any]]:
    settings = {section: dict(values) for section, values in APP_SETTINGS.items()}
    settings["database"] = {
        "dsn": fleet.dsn(),
        # User queries on the standbys, spread over them (libpq 15 has no
        # load_balance_hosts of its own: tapd shuffles the hosts itself).
        "query_dsn": fleet.cluster.dsn(
            dbname="tapd",
            user="tapd_query",
            target_session_attrs="prefer-standby",
            load_balance_hosts="random",
            connect_timeout="5",
        ),
    }
    settings["runner"]["jobs_dir"] = str(fleet.root / "jobs")
    settings["http"] = {
        "host": host.address,
        "port": 8080,
        "base_path": "/tap",
        "internal_url": f"http://{host.address}:8080/tap",
    }
    return settings


#: A record of every phase change, kept by the database itself (test only).
AUDIT_SQL = """
CREATE TABLE IF NOT EXISTS public.fleet_audit (
    job_id text, old_phase text, new_phase text, attempt integer, host text,
    at timestamptz DEFAULT clock_timestamp());
CREATE OR REPLACE FUNCTION public.fleet_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.fleet_audit (job_id, old_phase, new_phase, attempt, host)
    VALUES (NEW.job_id, OLD.phase, NEW.phase, NEW.attempts, NEW.runner_host);
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER fleet_audit AFTER UPDATE OF phase ON tapd.jobs
    FOR EACH ROW WHEN (OLD.phase IS DISTINCT FROM NEW.phase) EXECUTE FUNCTION public.fleet_audit();
"""


def on_primary(
    fleet: Fleet, query: str, params: tuple[object, ...] = ()
) -> list[tuple[object, ...]]:
    """``query`` on whichever node is primary now (retried through a failover)."""
    end = time.monotonic() + 120
    while True:
        try:
            with psycopg.connect(fleet.dsn(connect_timeout="3"), autocommit=True) as conn:
                cursor = conn.execute(query.encode(), params or None)
                return cursor.fetchall() if cursor.description else []
        except psycopg.OperationalError:
            if time.monotonic() > end:
                raise
            time.sleep(0.5)


@contextlib.contextmanager
def running_fleet(app_hosts: Sequence[str] = ("app1", "app2")) -> Iterator[Fleet]:
    """The whole fleet, up and serving, with the calling thread in the client's network."""
    remove_stale_networks()
    # A runner stopping the process (SIGTERM) still gets everything removed.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    root = Path(tempfile.mkdtemp(prefix="tapd-fleet-"))
    os.chmod(root, 0o755)
    (root / "jobs").mkdir()
    network = Network()
    try:
        dcs = network.add_host("dcs", 10)
        etcd = Etcd(dcs, root)
        etcd.start()
        nodes = [
            PatroniNode(network.add_host(name, number), root, etcd)
            for name, number in (("db1", 11), ("db2", 12))
        ]
        cluster = PatroniCluster(nodes)
        cluster.start()
        apps: dict[str, AppHost] = {}
        for number, name in enumerate(app_hosts, start=21):
            (root / f"{name}-jobs").mkdir()
            host = network.add_host(name, number, binds={root / f"{name}-jobs": root / "jobs"})
            apps[name] = AppHost(host, root, {})
        client = network.add_host("client", 100)
        fleet = Fleet(root, network, cluster, apps, client)
        with network_of(client.namespace):
            leader = cluster.wait_ready()
            initialise_database(fleet.dsn(), fleet.node_dsn(leader, "postgres"))
            for app in apps.values():
                app.settings = app_settings(fleet, app.host)
                app.write_config()
                app.start()
            yield fleet
            for app in apps.values():
                app.stop()
    finally:
        network.close()
        signal.signal(signal.SIGTERM, previous)
        if os.environ.get("TAPD_FLEET_KEEP"):
            print(f"fleet logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
