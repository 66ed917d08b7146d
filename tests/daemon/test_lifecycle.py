"""The daemon under systemd: sd_notify, reload, graceful stop, journald fields."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from pathlib import Path

from tapd.journal import parse_datagram
from tapd.store import JobPhase
from tests.daemon.test_failures import running
from tests.sites import DaemonProcess, Site, wait_for


def test_ready_and_status_are_sent_once_connected(site: Site, daemon: DaemonProcess) -> None:
    ready = daemon.wait_notification("READY=1")
    assert "STATUS=0 running, 0 queued, 4 slots" in ready.splitlines()
    job_id = site.submit("SELECT x FROM public.sleepy")
    running(site, job_id)
    daemon.wait_notification("STATUS=1 running, 0 queued, 4 slots")


def test_watchdog_pings_when_watchdog_usec_is_set(
    site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    daemon = daemons(WATCHDOG_USEC="400000")  # WATCHDOG_PID unset: meant for us
    daemon.wait_notification("WATCHDOG=1")
    count = len([m for m in daemon.read_notifications() if m == "WATCHDOG=1"])
    wait_for(
        lambda: len([m for m in daemon.read_notifications(0.1) if m == "WATCHDOG=1"]) > count,
        5,
        "another watchdog ping",
    )


def test_sighup_reloads_the_configuration_without_dropping_jobs(
    site: Site, daemon: DaemonProcess
) -> None:
    job_id = site.submit("SELECT x FROM public.sleepy")
    pid = running(site, job_id)
    site.write_config(runner={"max_jobs": 2})
    daemon.signal(signal.SIGHUP)
    reloading = daemon.wait_notification("RELOADING=1")
    assert any(line.startswith("MONOTONIC_USEC=") for line in reloading.splitlines())
    daemon.wait_notification("STATUS=1 running, 0 queued, 2 slots")
    job = site.job(job_id)
    assert (job.phase, job.runner_pid) == (JobPhase.EXECUTING, pid)


def test_sighup_with_a_broken_configuration_keeps_the_old_one(
    site: Site, daemon: DaemonProcess
) -> None:
    site.config_path.write_text("[runner]\nmax_jobs = 'many'\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_notification("RELOADING=1")
    wait_for(lambda: "daemon.reload_failed" in daemon.log(), 5, "the reload to be refused")
    assert "runner.max_jobs must be int" in daemon.log()
    job = site.wait_phase(site.submit("SELECT x FROM public.numbers"))
    assert job.phase == JobPhase.COMPLETED


def test_sigterm_lets_running_jobs_finish_within_the_grace_period(
    site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    """(D-10)"""
    site.write_config(runner={"shutdown_grace": 30.0})
    daemon = daemons()
    job_id = site.submit("SELECT x FROM public.trickle", MAXREC="150")  # about 1.5 s
    running(site, job_id)
    queued = site.submit("SELECT x FROM public.numbers")
    daemon.signal(signal.SIGTERM)
    daemon.wait_notification("STOPPING=1")
    assert daemon.wait() == 0
    assert site.job(job_id).phase == JobPhase.COMPLETED
    assert site.job(queued).phase in (JobPhase.QUEUED, JobPhase.COMPLETED)


def test_sigterm_aborts_jobs_still_running_after_the_grace_period(
    site: Site, daemon: DaemonProcess
) -> None:
    """(D-10)"""
    job_id = site.submit("SELECT x FROM public.sleepy")
    running(site, job_id)
    assert daemon.stop() == 0  # grace is 1 s
    job = site.job(job_id)
    assert job.phase == JobPhase.ABORTED
    assert job.error is not None and "runner daemon was stopped" in job.error.message
    assert not site.sessions(job_id)
    with site.store() as store:
        assert store.list_runners() == []


def test_sigterm_with_requeue_policy_puts_running_jobs_back_in_the_queue(
    site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    site.write_config(runner={"shutdown_policy": "requeue"})
    first = daemons()
    job_id = site.submit("SELECT x FROM public.sleepy")
    running(site, job_id)
    assert first.stop() == 0
    job = site.job(job_id)
    assert job.phase == JobPhase.QUEUED and job.runner_pid is None
    assert not site.sessions(job_id)
    daemons()  # the next daemon runs it again
    running(site, job_id)
    assert site.job(job_id).attempts == 2


def test_phase_changes_reach_journald_with_queryable_fields(
    site: Site, daemons: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    path = tmp_path / "journal.socket"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as journal:
        journal.bind(str(path))
        journal.settimeout(10)
        daemons(JOURNAL_STREAM="8:12345", TAPD_JOURNAL_SOCKET=str(path))
        job_id = site.submit("SELECT x FROM public.numbers")
        site.wait_phase(job_id)
        events = []
        while not any(e.get("PHASE") == "COMPLETED" for e in events):
            events.append(parse_datagram(journal.recv(65536)))
    phases = [e for e in events if e.get("TAPD_EVENT") == "job.phase"]
    assert [e["PHASE"] for e in phases] == ["EXECUTING", "COMPLETED"]
    completed = phases[-1]
    assert completed["JOB_ID"] == job_id
    assert completed["ROWS"] == "100"
    assert int(completed["DURATION_MS"]) >= 0
    assert int(completed["RUNNER_PID"]) == site.job(job_id).runner_pid
    assert completed["SYSLOG_IDENTIFIER"] == "tapd"
    assert completed["PRIORITY"] == "6"
    assert completed["MESSAGE"].startswith("job.phase ")
