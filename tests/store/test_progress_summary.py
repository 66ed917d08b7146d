"""How far a running job has got, in words (``tapd show``, the web job page)."""

from __future__ import annotations

import datetime as dt

import pytest

from tapd.store import Job, JobPhase, Progress
from tapd.store.jobs import progress_summary

STARTED = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
NOW = STARTED + dt.timedelta(seconds=34)


def job(phase: JobPhase, progress: Progress | None = None, started: bool = True) -> Job:
    return Job(
        job_id="j",
        phase=phase,
        creation_time=STARTED,
        execution_duration=600,
        start_time=STARTED if started else None,
        progress=progress,
    )


@pytest.mark.parametrize(
    ("running", "expected"),
    [
        (job(JobPhase.EXECUTING), "nothing written yet, running 34 s"),
        (
            job(JobPhase.EXECUTING, Progress(12000, 1_500_000, NOW - dt.timedelta(seconds=2))),
            "12,000 rows, 1.5 MB written, running 34 s (as of 2 s ago)",
        ),
        (
            job(JobPhase.EXECUTING, Progress(12000, 1_500_000, NOW, expected_rows=400_000)),
            "12,000 rows of about 400,000 rows, 1.5 MB written, running 34 s (as of 0 s ago)",
        ),
        (
            job(JobPhase.EXECUTING, Progress(0, 0, NOW, expected_rows=1)),
            "nothing written yet, about 1 row expected, running 34 s",
        ),
        (job(JobPhase.EXECUTING, Progress(0, 0, NOW)), "nothing written yet, running 34 s"),
        (job(JobPhase.EXECUTING, started=False), None),
        (job(JobPhase.QUEUED, started=False), None),
        (job(JobPhase.COMPLETED, Progress(5, 50, NOW)), None),  # the results say it
    ],
)
def test_a_running_jobs_progress_in_words(running: Job, expected: str | None) -> None:
    assert progress_summary(running, NOW) == expected
