"""Attempts and fencing: each run of a job is an attempt that owns the job's
ending and its files; an attempt that lost the job (requeued, taken over,
ended by someone else) changes nothing, in the database or the job directory."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tapd.daemon.recovery import process_alive
from tapd.store import JobPhase
from tapd.store.jobdir import TEMP_PREFIX
from tests.daemon.test_failures import running
from tests.sites import DaemonProcess, Site, refusing_trigger, wait_for


def files_of(site: Site, job_id: str) -> list[str]:
    return sorted(p.name for p in (site.jobs_dir / job_id).iterdir())


def writing(site: Site, job_id: str) -> Path:
    """Wait until the job's child is writing its result; the temporary file."""

    def started() -> Path | None:
        return next((site.jobs_dir / job_id).glob(f"{TEMP_PREFIX}result*"), None)

    return wait_for(started, 30, f"job {job_id} to start writing its result")


class PhaseLog:
    """Every phase change of the site's jobs, in order, as the trigger announced it."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute('LISTEN "tapd.phase"')
        self.changes: list[dict[str, str]] = []

    def phases(self, job_id: str) -> list[str]:
        pgconn = self.conn.pgconn
        pgconn.consume_input()
        while (notify := pgconn.notifies()) is not None:
            self.changes.append(json.loads(notify.extra))
        return [c["phase"] for c in self.changes if c["job_id"] == job_id]

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def phase_log(site: Site) -> Iterator[PhaseLog]:
    log = PhaseLog(site.dsn)
    yield log
    log.close()


def test_stop_with_requeue_puts_a_job_back_only_once_its_child_is_gone(
    site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    """(issue 10 item 1) A child slow to stop keeps its job until it is gone."""
    site.write_config(runner={"shutdown_policy": "requeue"})
    first = daemons()
    job_id = site.submit("SELECT x FROM public.sleepy")
    pid = running(site, job_id)
    os.kill(pid, signal.SIGSTOP)  # it cannot react to being asked to stop
    first.signal(signal.SIGTERM)
    site.wait_phase(job_id, JobPhase.QUEUED, timeout=30)
    assert not process_alive(pid), "the job was requeued while its child still ran"
    assert first.wait() == 0
    assert not site.sessions(job_id)


def test_a_requeued_job_shows_nothing_of_its_earlier_attempt(
    site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    """(issue 10 item 1) No result, temporary file or error document of the
    stopped attempt is left for the next one."""
    site.write_config(runner={"shutdown_policy": "requeue"})
    first = daemons()
    job_id = site.submit("SELECT x FROM public.trickle", MAXREC="300", RESPONSEFORMAT="csv")
    writing(site, job_id)
    assert first.stop() == 0
    assert site.job(job_id).phase == JobPhase.QUEUED
    assert files_of(site, job_id) == []
    daemons()
    job = site.wait_phase(job_id, timeout=30)
    assert (job.phase, job.attempts) == (JobPhase.COMPLETED, 2)
    assert files_of(site, job_id) == ["result.csv"]


def test_a_stopped_child_removes_only_the_files_it_created(
    site: Site, daemon: DaemonProcess
) -> None:
    """(issue 10 item 1) Another attempt's temporary file survives this one's clean-up."""
    job_id = site.submit("SELECT x FROM public.trickle", MAXREC="3000", RESPONSEFORMAT="csv")
    writing(site, job_id)
    pid = site.job(job_id).runner_pid
    assert pid is not None
    other = site.jobs_dir / job_id / f"{TEMP_PREFIX}result.csv.another-attempt"
    other.write_bytes(b"x\n1\n")
    with site.store() as store:
        store.abort_job(job_id)
    wait_for(lambda: not process_alive(pid), 10, "the child to exit")
    assert other.exists()
    assert not [n for n in files_of(site, job_id) if n.startswith(TEMP_PREFIX) and n != other.name]


#: Makes every ending in ERROR fail, as a broken trigger or a full disk on the
#: server would, while requeues still work.
REFUSE_ERROR_ENDINGS = refusing_trigger(
    "refuse_error_endings", "NEW.phase = 'ERROR'", "the test refuses endings in ERROR"
)


def status_count(daemon: DaemonProcess) -> int:
    return sum(1 for m in daemon.read_notifications() if "STATUS=" in m)


def test_an_ending_that_could_not_be_written_is_kept_for_its_own_attempt_only(
    site: Site, daemon: DaemonProcess, phase_log: PhaseLog
) -> None:
    """(issue 10 item 2) A job whose child died while its ending could not be
    written is not requeued as 'never started', and its ending lands once the
    database takes it."""
    job_id = site.submit("SELECT x FROM public.sleepy")
    pid = running(site, job_id)
    with site.store() as store:
        store.conn.execute(REFUSE_ERROR_ENDINGS)
        os.kill(pid, signal.SIGKILL)
        seen = status_count(daemon)
        # Several heartbeats, polls and reconciliations pass while the ending fails.
        wait_for(lambda: status_count(daemon) >= seen + 3, 30, "three more heartbeats")
        assert site.job(job_id).phase == JobPhase.EXECUTING
        store.conn.execute("DROP TRIGGER refuse_error_endings ON tapd.jobs")
    job = site.wait_phase(job_id, timeout=30)
    assert (job.phase, job.attempts) == (JobPhase.ERROR, 1)
    assert job.error is not None
    assert job.error.message == "The runner process was killed by signal 9 (SIGKILL)."
    assert phase_log.phases(job_id) == ["QUEUED", "EXECUTING", "ERROR"]
    assert "never started" not in daemon.log()


def test_a_child_resuming_after_its_job_was_taken_over_writes_nothing(
    site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    """(issue 10 item 6) Daemon and child paused past the heartbeat timeout;
    another daemon ends the job; the resumed child leaves the job directory
    and the recorded error as they were."""
    first = daemons()
    job_id = site.submit("SELECT x FROM public.sleepy")
    pid = running(site, job_id)
    before = files_of(site, job_id)
    instance = site.job(job_id).runner_instance
    os.kill(pid, signal.SIGSTOP)
    first.signal(signal.SIGSTOP)
    try:
        daemons()
        taken = site.wait_phase(job_id, timeout=30)
        assert taken.phase == JobPhase.ERROR and taken.error is not None
    finally:
        first.signal(signal.SIGCONT)
    # The resumed daemon finds the job ended by someone else and signals its
    # child (it registers again right after): the child wakes to that signal.
    with site.store() as store:
        wait_for(
            lambda: any(r.instance == instance for r in store.list_runners()),
            30,
            "the resumed daemon to register again",
        )
    os.kill(pid, signal.SIGCONT)
    wait_for(lambda: not process_alive(pid), 10, "the resumed child to exit")
    assert set(files_of(site, job_id)) <= set(before)  # at most its own temporary file went
    assert site.job(job_id).error == taken.error


def test_a_claim_whose_answer_was_lost_is_requeued_as_never_started(
    site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    """(issue 10 item 2, the other way round) A claim in the daemon's name that
    named one of its waiting spares, but whose answer never reached the daemon
    (its connection broke), is put back as what it is: never started."""
    site.write_config(log={"format": "json"})
    daemon = daemons()
    with site.store() as store:
        (runner,) = store.list_runners()

        def spare() -> tuple[int, int] | None:
            rows = store.conn.execute(
                "SELECT application_name, pid FROM pg_stat_activity"
                " WHERE application_name LIKE 'tapd spare %'"
            ).fetchall()
            return (int(rows[0][0].split()[-1]), rows[0][1]) if rows else None

        pid, backend_pid = wait_for(spare, 30, "a waiting spare")
        job_id = site.submit("SELECT x FROM public.numbers", run=False)
        with store.conn.transaction():  # the daemon hears of the job only once it is claimed
            store.queue_job(job_id)
            store.claim_jobs(runner.instance, runner.host, 1, runners=[(pid, backend_pid)])
    job = site.wait_phase(job_id, timeout=30)
    assert (job.phase, job.attempts) == (JobPhase.COMPLETED, 2)
    lines = [line for line in daemon.log().splitlines() if line.startswith("{")]
    reasons = [
        event.get("reason")
        for event in map(json.loads, lines)
        if event.get("job_id") == job_id and event.get("phase") == "QUEUED"
    ]
    assert reasons == ["claimed but never started"]
