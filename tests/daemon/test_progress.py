"""While a job runs, its store row says how far it has got (rows and bytes of its
result written, and the rows PostgreSQL expects), refreshed every few seconds;
``tapd show`` and the UWS job document show it."""

from __future__ import annotations

import datetime as dt

from tapd.catalog import publish_table
from tapd.daemon.progress import PROGRESS_INTERVAL
from tapd.http.uws import job_document
from tapd.store import Job, JobPhase
from tests.sites import DaemonProcess, Site, wait_for

#: Five rows a second, each larger than the server's 8 kB send buffer (flushed
#: only when full), so the runner sees them as they come.
SLOW_WIDE = """
CREATE VIEW public.slow_wide AS
    SELECT g AS x, repeat('x', 9000) AS filler FROM generate_series(1, 10000) AS g
    CROSS JOIN LATERAL (SELECT pg_sleep(0.2 + 0 * g)) AS pause
"""


def progress_of(site: Site, job_id: str) -> Job | None:
    job = site.job(job_id)
    assert job.phase in (JobPhase.QUEUED, JobPhase.EXECUTING), job.error
    return job if job.progress is not None and job.progress.rows > 0 else None


def test_a_running_jobs_progress_is_recorded_and_shown(site: Site, daemon: DaemonProcess) -> None:
    with site.store() as store:
        store.conn.execute(SLOW_WIDE)
        publish_table(store.conn, "public.slow_wide", None, "tapd_query")
    job_id = site.submit("SELECT x, filler FROM public.slow_wide", RESPONSEFORMAT="csv")
    first = wait_for(lambda: progress_of(site, job_id), 60, "the job's first progress")
    assert first.progress is not None
    assert first.progress.bytes > 9000 * first.progress.rows  # every row holds 9000 bytes
    assert first.progress.expected_rows == 10000  # the plan's estimate of generate_series

    def moved_on() -> Job | None:
        job = progress_of(site, job_id)
        assert job is not None and job.progress is not None
        return job if job.progress.rows > first.progress.rows else None  # type: ignore[union-attr]

    later = wait_for(moved_on, 60, "the progress to be refreshed")
    assert later.phase == JobPhase.EXECUTING and later.progress is not None
    assert (later.progress.recorded - first.progress.recorded).total_seconds() >= (
        PROGRESS_INTERVAL / 2
    )  # recorded every few seconds, not for every row

    shown = site.tapd("show", job_id)
    progress_line = next(line for line in shown.stdout.splitlines() if line.startswith("progress:"))
    assert " rows of about 10,000 rows, " in progress_line
    assert "MB written, running" in progress_line

    document = job_document(later, f"http://example/tap/async/{job_id}").decode()
    assert "<uws:jobInfo><tapd:progress" in document
    assert f'rows="{later.progress.rows}"' in document
    assert 'expected_rows="10000"' in document

    with site.store() as store:
        store.abort_job(job_id)
    ended = site.wait_phase(job_id)
    now = dt.datetime.now(dt.UTC)
    assert "<uws:jobInfo>" not in job_document(ended, "http://example/x", now).decode()
