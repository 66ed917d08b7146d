"""Queued jobs run in forked children and end with their result or error."""

from __future__ import annotations

import json

import psycopg

from tapd.store import JobPhase
from tests.sites import DaemonProcess, Site, publish_whoami


def test_queued_job_completes_with_its_result_file(site: Site, daemon: DaemonProcess) -> None:
    """(D-01, D-02)"""
    job_id = site.submit("SELECT x FROM public.numbers", RESPONSEFORMAT="csv")
    job = site.wait_phase(job_id)
    assert job.phase == JobPhase.COMPLETED, job.error
    (result,) = job.results
    assert (result.result_id, result.rows, result.overflow) == ("result", 100, False)
    path = site.jobs_dir / job_id / result.filename
    lines = path.read_text().splitlines()
    assert lines[0] == "x" and lines[1:] == [str(i) for i in range(1, 101)]
    assert result.size == path.stat().st_size
    assert job.start_time is not None and job.end_time is not None
    assert job.runner_pid is not None and job.runner_pid != daemon.pid


def test_maxrec_truncates_and_flags_overflow(site: Site, daemon: DaemonProcess) -> None:
    job = site.wait_phase(site.submit("SELECT x FROM public.numbers", MAXREC="7"))
    assert (job.results[0].rows, job.results[0].overflow) == (7, True)


def test_bad_query_ends_in_error_with_an_error_document(site: Site, daemon: DaemonProcess) -> None:
    job = site.wait_phase(site.submit("SELECT bogus FROM nowhere WHERE"))
    assert job.phase == JobPhase.ERROR
    assert job.error is not None and job.error.has_detail
    document = (site.jobs_dir / job.job_id / "error.xml").read_text()
    assert 'name="QUERY_STATUS" value="ERROR"' in document
    assert job.results == ()


def test_bad_parameters_are_reported_when_the_job_runs(site: Site, daemon: DaemonProcess) -> None:
    """(DALI-04, TAP-10)"""
    job = site.wait_phase(site.submit("SELECT x FROM public.numbers", LANG="SQL"))
    assert job.phase == JobPhase.ERROR
    assert job.error is not None and "unknown query language 'SQL'" in job.error.message


def test_job_inserted_without_notify_runs_within_the_poll_interval(
    site: Site, daemon: DaemonProcess
) -> None:
    # A writer that bypasses the trigger (replica mode) sends no NOTIFY at all.
    with psycopg.connect(site.dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            "INSERT INTO tapd.jobs (job_id, phase, queued_time, execution_duration, parameters)"
            " VALUES ('silent', 'QUEUED', now(), 60, %s::jsonb)",
            (json.dumps({"LANG": ["ADQL"], "QUERY": ["SELECT x FROM public.numbers"]}),),
        )
    poll = site.settings["runner"]["poll_interval"]
    job = site.wait_phase("silent", timeout=poll + 2)
    assert job.phase == JobPhase.COMPLETED


def test_jobs_beyond_the_slots_wait_and_run_as_slots_free(
    site: Site, daemon: DaemonProcess
) -> None:
    ids = [site.submit("SELECT x FROM public.numbers") for _ in range(12)]
    jobs = [site.wait_phase(job_id) for job_id in ids]
    assert {j.phase for j in jobs} == {JobPhase.COMPLETED}
    assert {j.attempts for j in jobs} == {1}


def test_the_query_runs_in_a_session_logged_in_as_the_query_role(
    site: Site, daemon: DaemonProcess
) -> None:
    """Not SET ROLE in a session of the tables' owner, which RESET ROLE would return to."""
    publish_whoami(site.dsn)
    job = site.wait_phase(site.submit("SELECT login, who FROM public.whoami", RESPONSEFORMAT="csv"))
    assert job.phase == JobPhase.COMPLETED, job.error
    lines = (site.jobs_dir / job.job_id / job.results[0].filename).read_text().splitlines()
    assert lines == ["login,who", "tapd_query,tapd_query"]
