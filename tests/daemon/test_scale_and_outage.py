"""Several daemons on one database, and PostgreSQL going away under load."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import psycopg
import pytest

from tapd.devcluster import DevCluster
from tapd.store import FINAL_PHASES, JobPhase, JobStore
from tests.sites import DaemonProcess, Site, wait_for

TRIVIAL = {"LANG": "ADQL", "QUERY": "SELECT x FROM public.numbers", "MAXREC": "1"}


def phase_counts(site: Site) -> dict[JobPhase, int]:
    with site.store() as store:
        return store.phase_counts()


@pytest.mark.slow
def test_four_daemons_run_2000_jobs_each_exactly_once(
    site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    """(D-01)"""
    runners = [daemons() for _ in range(4)]
    with psycopg.connect(site.dsn) as conn, conn.transaction():
        store = JobStore(conn)
        for _ in range(2000):
            store.create_job(TRIVIAL, execution_duration=60, destruction=None, queue=True)
    wait_for(
        lambda: phase_counts(site).get(JobPhase.COMPLETED) == 2000,
        600,
        "2000 completed jobs",
        step=0.5,
    )
    with site.store() as store:
        rows = store.conn.execute(
            "SELECT attempts, runner_instance, jsonb_array_length(results) FROM tapd.jobs"
        ).fetchall()
    assert len(rows) == 2000
    assert {attempts for attempts, _, _ in rows} == {1}  # claimed once, run once
    assert {results for _, _, results in rows} == {1}
    assert len({instance for _, instance, _ in rows}) == len(runners)  # all shared the work


@pytest.mark.slow
def test_postgresql_restart_under_load_loses_no_job_and_leaves_none_executing(
    site: Site, daemons: Callable[..., DaemonProcess], pg_cluster: DevCluster
) -> None:
    daemons()
    daemons()
    submitted: list[str] = []
    stop = threading.Event()

    def submit_continuously() -> None:
        while not stop.is_set():
            try:
                submitted.append(site.submit("SELECT x FROM public.trickle", MAXREC="30"))
                submitted.append(site.submit("SELECT x FROM public.numbers"))
            except psycopg.OperationalError:
                time.sleep(0.05)  # the server is down: the client tries again
            time.sleep(0.02)

    submitter = threading.Thread(target=submit_continuously)
    submitter.start()
    try:
        wait_for(lambda: phase_counts(site).get(JobPhase.EXECUTING), 30, "jobs running")
        before = len(submitted)
        pg_cluster.restart()
        wait_for(lambda: len(submitted) > before + 10, 30, "submissions after the restart")
    finally:
        stop.set()
        submitter.join()
    last = submitted[-1]
    site.wait_phase(last, timeout=60)

    def all_final() -> bool:
        counts = phase_counts(site)
        return sum(n for phase, n in counts.items() if phase not in FINAL_PHASES) == 0

    wait_for(all_final, 60, "every job to end", step=0.2)
    with site.store() as store:
        phases = {job_id: store.get_job(job_id).phase for job_id in submitted}
    assert set(phases.values()) == {JobPhase.COMPLETED}
