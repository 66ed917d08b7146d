"""A PostgreSQL crash must not undo a claim or an ending that tapd acted on,
whatever the server's ``synchronous_commit``: no job runs twice because of it."""

from __future__ import annotations

import collections
import json
import selectors
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tapd.devcluster import DevCluster
from tapd.pgsphere import install_pgsphere
from tapd.store import FINAL_PHASES, JobPhase, JobStore
from tests.sites import DaemonProcess, Site, make_site, wait_for

JOBS = 300
CRASH_AFTER = 60


@pytest.fixture
def crash_site(tmp_path: Path) -> Iterator[tuple[DevCluster, Site]]:
    """A cluster of its own (this test crashes it) committing asynchronously, as
    the demo's and many operators' servers do; the WAL writer waits its longest,
    so acknowledged commits stay in memory as long as possible."""
    cluster = DevCluster(log_settings=("-c wal_writer_delay=10s",))
    cluster.start()
    try:
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
            install_pgsphere(conn)
        yield cluster, make_site(cluster.dsn, tmp_path, log={"format": "json"})
    finally:
        cluster.cleanup()


def completed_notifications(dsn: str, wanted: int, timeout: float) -> None:
    """Return as soon as ``wanted`` jobs were announced COMPLETED."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute('LISTEN "tapd.phase"')
        selector = selectors.DefaultSelector()
        selector.register(conn.fileno(), selectors.EVENT_READ)
        seen = 0
        end = time.monotonic() + timeout
        while seen < wanted:
            assert time.monotonic() < end, f"only {seen} jobs completed in {timeout} s"
            if selector.select(1.0):
                conn.pgconn.consume_input()
                while (n := conn.pgconn.notifies()) is not None:
                    seen += json.loads(n.extra)["phase"] == "COMPLETED"


def test_a_server_crash_with_synchronous_commit_off_runs_no_job_twice(
    crash_site: tuple[DevCluster, Site],
) -> None:
    """(issue 10 item 7)"""
    cluster, site = crash_site
    daemon = DaemonProcess(site).start()
    try:
        with psycopg.connect(site.dsn) as conn, conn.transaction():
            store = JobStore(conn)
            ids = [
                store.create_job(
                    {"LANG": "ADQL", "QUERY": "SELECT x FROM public.numbers", "MAXREC": "1"},
                    execution_duration=60,
                    destruction=None,
                    queue=True,
                ).job_id
                for _ in range(JOBS)
            ]
        completed_notifications(site.dsn, CRASH_AFTER, timeout=120)
        cluster.stop("immediate")  # a crash: what was only in memory is gone
        cluster.start()

        def all_final() -> bool:
            with site.store() as store:
                counts = store.phase_counts()
            return sum(n for phase, n in counts.items() if phase not in FINAL_PHASES) == 0

        wait_for(all_final, 180, "every job to end", step=0.2)
    finally:
        daemon.stop()
    with site.store() as store:
        phases = collections.Counter(store.get_job(job_id).phase for job_id in ids)
    assert phases == {JobPhase.COMPLETED: JOBS}
    completions: collections.Counter[str] = collections.Counter()
    for line in daemon.log().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "job.phase" and event.get("phase") == "COMPLETED":
                completions[event["job_id"]] += 1
    twice = sorted(job_id for job_id, n in completions.items() if n > 1)
    assert not twice, f"{len(twice)} jobs completed (and were acknowledged) more than once"
    assert set(completions) == set(ids)
