"""No job is left EXECUTING without a live process: children and daemons killed."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from tapd.store import FINAL_PHASES, JobPhase
from tests.sites import DaemonProcess, Site, wait_for


def running(site: Site, job_id: str) -> int:
    """Wait until the job's child has started its query; its pid."""

    def started() -> int | None:
        job = site.job(job_id)
        if job.runner_pid is None:
            return None
        # the job's row session and its query session share the job's name, and the query
        # session runs a few statements (settings, estimate, describe) before the query's COPY
        sessions = site.sessions(job_id)
        active = [s for s in sessions if s["state"] == "active" and "COPY" in (s["query"] or "")]
        return job.runner_pid if active else None

    return wait_for(started, 30, f"job {job_id} to run its query")


def test_sigkill_of_child_ends_job_in_error_within_a_second(
    site: Site, daemon: DaemonProcess
) -> None:
    """(D-06)"""
    job_id = site.submit("SELECT x FROM public.sleepy")
    os.kill(running(site, job_id), signal.SIGKILL)
    job = site.wait_phase(job_id, timeout=1.0)
    assert job.phase == JobPhase.ERROR
    assert job.error is not None
    assert job.error.message == "The runner process was killed by signal 9 (SIGKILL)."
    wait_for(lambda: not site.sessions(job_id), 1.0, "the job's backend to be gone")


def test_sigkill_of_daemon_then_restart_ends_every_job_it_held(
    site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    site.write_config(limits={"running_per_owner": 3})  # one owner's 3 jobs run at once
    first = daemons()
    ids = [site.submit("SELECT x FROM public.sleepy") for _ in range(3)]
    for job_id in ids:
        running(site, job_id)
    first.kill()
    daemons()  # the restart
    jobs = [site.wait_phase(job_id, timeout=5.0) for job_id in ids]
    assert all(j.phase in FINAL_PHASES for j in jobs)
    wait_for(lambda: not any(site.sessions(j) for j in ids), 5.0, "the jobs' backends to go")


def test_restart_reconciles_jobs_whose_daemon_and_children_were_all_killed(
    site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    """(D-06)"""
    # As after `systemctl kill -s KILL tapd`: nothing of the old daemon could clean up.
    first = daemons()
    ids = [site.submit("SELECT x FROM public.sleepy") for _ in range(2)]
    pids = [running(site, job_id) for job_id in ids]
    first.signal(signal.SIGSTOP)  # it can neither reap nor reconcile
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    first.kill()
    assert all(site.job(j).phase == JobPhase.EXECUTING for j in ids)
    assert all(site.sessions(j) for j in ids)  # their queries still run in PostgreSQL
    daemons()
    for job_id in ids:
        job = site.wait_phase(job_id, timeout=5.0)
        assert job.phase == JobPhase.ERROR
        assert job.error is not None and "stopped unexpectedly" in job.error.message
    wait_for(lambda: not any(site.sessions(j) for j in ids), 5.0, "the jobs' backends to go")


def test_jobs_of_a_daemon_that_stopped_heartbeating_are_reconciled_by_another(
    site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    """(D-06)"""
    first, second = daemons(), daemons()
    job_id = site.submit("SELECT x FROM public.sleepy")
    running(site, job_id)
    instance = site.job(job_id).runner_instance
    with site.store() as store:
        pid = next(r.pid for r in store.list_runners() if r.instance == instance)
    holder = first if pid == first.pid else second
    holder.signal(signal.SIGSTOP)  # alive but silent: its heartbeat expires
    try:
        job = site.wait_phase(job_id, timeout=15)
        assert job.phase == JobPhase.ERROR
        assert job.error is not None and "stopped unexpectedly" in job.error.message
        wait_for(lambda: not site.sessions(job_id), 5.0, "the job's backend to go")
    finally:
        holder.signal(signal.SIGCONT)
