"""An application host cut off from the network (issue 14, item 4).

app2's link goes down while its children run jobs. Past heartbeat_timeout the
other host ends app2's jobs; app2's own HTTP service, asked on app2 itself,
answers 503 meanwhile. When the link is back, app2 writes nothing over those
jobs (no ending, no result file), its children for them end, and it takes
new jobs again.
"""

from __future__ import annotations

import os

import httpx
import pytest

from tests.fleet.cluster import wait_until
from tests.fleet.netns import network_of
from tests.fleet.topology import Fleet, on_primary
from tests.fleet.uws import error_summary, phase, submit, wait_phase

pytestmark = pytest.mark.fleet


def test_a_host_cut_off_loses_its_jobs_and_writes_nothing_over_them_when_back(
    fleet: Fleet, audited: None
) -> None:
    a, b = fleet.apps["app1"], fleet.apps["app2"]
    with fleet.only_runner(b):
        ids = [submit(a.url, "SELECT x FROM public.sleepy") for _ in range(2)]
        for job_id in ids:
            assert wait_phase(a.url, job_id, ("EXECUTING",)) == "EXECUTING"
    rows = on_primary(
        fleet,
        "SELECT job_id, runner_host, runner_pid FROM tapd.jobs WHERE job_id = ANY(%s)",
        (ids,),
    )
    assert {host for _, host, _ in rows} == {"app2"}
    children = [int(pid) for _, _, pid in rows]  # type: ignore[call-overload]

    b.host.cut()
    try:
        # Asked on app2 itself (its clients cannot reach it): 503, never a 500 or a hang.
        with network_of(b.host.namespace):
            answer = httpx.get(f"{b.url}/async/{ids[0]}", timeout=90)
        assert answer.status_code == 503, answer.text

        # app1 gives app2 up and ends its jobs.
        for job_id in ids:
            assert wait_phase(a.url, job_id, ("ERROR", "COMPLETED", "ABORTED"), 90) == "ERROR"
            assert "runner daemon" in error_summary(a.url, job_id)
        before = on_primary(
            fleet,
            "SELECT job_id, phase, end_time, error_message, results::text FROM tapd.jobs"
            " WHERE job_id = ANY(%s) ORDER BY job_id",
            (ids,),
        )
    finally:
        b.host.reconnect()

    # Back: app2 stops its children for the jobs it lost (or they have died of the
    # lost connection), and writes nothing over what app1 decided.
    for child in children:
        wait_until(lambda c=child: not os.path.exists(f"/proc/{c}"), 90, f"child {child} to end")
    after = on_primary(
        fleet,
        "SELECT job_id, phase, end_time, error_message, results::text FROM tapd.jobs"
        " WHERE job_id = ANY(%s) ORDER BY job_id",
        (ids,),
    )
    assert after == before
    endings = on_primary(
        fleet,
        "SELECT job_id, count(*) FROM public.fleet_audit WHERE job_id = ANY(%s)"
        " AND new_phase IN ('COMPLETED', 'ERROR', 'ABORTED') GROUP BY job_id",
        (ids,),
    )
    assert sorted(count for _, count in endings) == [1, 1]
    for job_id in ids:
        directory = b.jobs_dir / job_id
        assert not (directory.exists() and list(directory.glob("result*")))
        assert phase(b.url, job_id) == "ERROR"

    # And it works again.
    with fleet.only_runner(b):
        job_id = submit(b.url, "SELECT TOP 1 x FROM public.numbers", FORMAT="csv")
        assert wait_phase(b.url, job_id, timeout=120) == "COMPLETED"
    assert on_primary(fleet, "SELECT runner_host FROM tapd.jobs WHERE job_id = %s", (job_id,)) == [
        ("app2",)
    ]
