"""Abort (by signal, by phase change, by CLI) and executionDuration stop the query."""

from __future__ import annotations

import os
import signal

import pytest

from tapd.daemon.recovery import process_alive
from tapd.store import JobPhase
from tapd.store.jobdir import TEMP_PREFIX
from tests.daemon.test_failures import running
from tests.sites import DaemonProcess, Site, wait_for


def abort_by_signal(site: Site, job_id: str, pid: int) -> None:
    os.kill(pid, signal.SIGTERM)  # what a UWS layer on the same host does


def abort_by_phase_change(site: Site, job_id: str, pid: int) -> None:
    with site.store() as store:
        store.abort_job(job_id)


def abort_by_cli(site: Site, job_id: str, pid: int) -> None:
    done = site.tapd("abort", job_id)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{job_id} ABORTED"


@pytest.mark.parametrize("abort", [abort_by_signal, abort_by_phase_change, abort_by_cli])
def test_abort_ends_the_job_aborted_and_its_query_gone(
    site: Site, daemon: DaemonProcess, abort
) -> None:
    """(UWS-42, D-03)"""
    job_id = site.submit("SELECT x FROM public.sleepy")
    pid = running(site, job_id)
    abort(site, job_id, pid)
    job = site.wait_phase(job_id, timeout=5)
    assert job.phase == JobPhase.ABORTED
    assert job.end_time is not None
    wait_for(lambda: not site.sessions(job_id), 5, "the job's query to leave pg_stat_activity")
    wait_for(lambda: not process_alive(pid), 5, "the runner process to exit")


def test_abort_signal_missed_by_notify_is_caught_by_the_poll(
    site: Site, daemon: DaemonProcess
) -> None:
    job_id = site.submit("SELECT x FROM public.sleepy")
    running(site, job_id)
    with site.store() as store, store.conn.transaction():
        store.conn.execute("SET LOCAL session_replication_role = replica")  # no trigger, no NOTIFY
        store.conn.execute(
            "UPDATE tapd.jobs SET phase = 'ABORTED', end_time = now() WHERE job_id = %s", (job_id,)
        )
    poll = site.settings["runner"]["poll_interval"]
    wait_for(lambda: not site.sessions(job_id), poll + 5, "the job's query to be stopped")


def test_execution_duration_exceeded_in_the_query(site: Site, daemon: DaemonProcess) -> None:
    """(UWS-60, D-04)"""
    job_id = site.submit("SELECT x FROM public.sleepy", duration=1)
    job = site.wait_phase(job_id, timeout=10)
    assert job.phase == JobPhase.ABORTED
    assert job.error is not None
    assert "executionDuration of 1 s" in job.error.message
    wait_for(lambda: not site.sessions(job_id), 5, "the job's query to be stopped")
    assert (site.jobs_dir / job_id / "error.xml").exists()


def test_execution_duration_exceeded_while_writing_the_result(
    site: Site, daemon: DaemonProcess
) -> None:
    """(UWS-60, D-02, D-04)"""
    # Rows arrive slowly, so the result file is being written when time runs out.
    job_id = site.submit("SELECT x FROM public.trickle", duration=2, RESPONSEFORMAT="csv")
    wait_for(
        lambda: any((site.jobs_dir / job_id).glob(f"{TEMP_PREFIX}result*")),
        10,
        "the result file to be started",
    )
    job = site.wait_phase(job_id, timeout=10)
    assert job.phase == JobPhase.ABORTED
    assert job.error is not None and "executionDuration of 2 s" in job.error.message
    assert job.results == ()
    assert not any((site.jobs_dir / job_id).glob(f"{TEMP_PREFIX}*"))  # no half-written file left


def test_an_administrators_cancel_is_told_apart_from_the_time_limit(
    site: Site, daemon: DaemonProcess
) -> None:
    """(issue 10 item 8) SQLSTATE 57014 from pg_cancel_backend is not executionDuration."""
    job_id = site.submit("SELECT x FROM public.sleepy", duration=600)
    running(site, job_id)
    wait_for(
        lambda: any(s["query"].startswith("COPY") for s in site.sessions(job_id)),
        10,
        "the job's query to run",
    )
    with site.store() as store:
        assert store.cancel_job_queries(job_id) == 1  # pg_cancel_backend, as a DBA would
    job = site.wait_phase(job_id, timeout=10)
    assert job.phase == JobPhase.ERROR and job.error is not None
    assert "executionDuration" not in job.error.message
    assert "cancelled in the database" in job.error.message
    assert "canceling statement due to user request" in job.error.message
