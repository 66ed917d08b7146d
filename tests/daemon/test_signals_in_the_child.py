"""Signals reaching a child between its result and its ending: a result that
was written and renamed into place is COMPLETED, or it is gone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tapd.store import JobPhase
from tests.sites import DaemonProcess, Site

FAULTS = Path(__file__).parent / "faults"


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGALRM"])
def test_a_signal_right_after_the_result_is_renamed_never_leaves_it_unaccounted(
    site: Site, daemons: Callable[..., DaemonProcess], signal_name: str
) -> None:
    """(issue 10 item 9) An abort or the time limit arriving as the result is
    put in place: either the job is COMPLETED with that result, or the job
    ended otherwise and no result file is left."""
    daemons(PYTHONPATH=str(FAULTS), TAPD_TEST_SIGNAL_AFTER_RESULT=signal_name)
    job_id = site.submit("SELECT x FROM public.numbers", RESPONSEFORMAT="csv")
    job = site.wait_phase(job_id, timeout=30)
    results = sorted(p.name for p in (site.jobs_dir / job_id).glob("result*"))
    if job.phase == JobPhase.COMPLETED:
        assert [r.filename for r in job.results] == results == ["result.csv"]
    else:
        assert results == [], f"{job.phase} ({job.error}) but the result file is there"
