"""The primary dies while jobs are queued and running (issue 14, item 3).

Patroni runs in synchronous_mode: every commit the primary acknowledged is on
the standby, which takes over about ten seconds after the kill. Every daemon
and HTTP service finds the new primary through its multi-host DSN; every job
ends exactly once, COMPLETED, including those whose query the failover cut
(jobs with uploads run their query on the primary).
"""

from __future__ import annotations

import io
import time

import httpx
import pytest

from tests.fleet.cluster import PatroniNode, wait_until
from tests.fleet.test_any_host import UPLOAD
from tests.fleet.topology import Fleet, on_primary
from tests.fleet.uws import submit

pytestmark = pytest.mark.fleet

JOBS = 300


def restore(fleet: Fleet, node: PatroniNode) -> None:
    """Start Patroni on the killed node again: it rewinds and follows the new primary."""
    node.host.processes.clear()
    node.start()
    fleet.cluster.wait_ready(180)


def test_killing_the_primary_loses_no_job_and_ends_each_once(fleet: Fleet, audited: None) -> None:
    apps = list(fleet.apps.values())
    old = fleet.cluster.leader()
    assert old is not None
    ids = []
    for n in range(JOBS):
        app = apps[n % len(apps)]
        if n % 10 == 0:  # runs its query on the primary: the failover cuts it
            ids.append(
                submit(
                    app.url,
                    "SELECT u.id FROM TAP_UPLOAD.mine AS u, public.pause AS p ORDER BY u.id",
                    FORMAT="csv",
                    UPLOAD="mine,param:t",
                    files={"t": ("t.xml", io.BytesIO(UPLOAD), "application/x-votable+xml")},
                )
            )
        else:
            ids.append(submit(app.url, "SELECT x FROM public.pause", FORMAT="csv"))

    def finished() -> int:
        rows = on_primary(
            fleet,
            "SELECT count(*) FROM tapd.jobs WHERE job_id = ANY(%s)"
            " AND phase IN ('COMPLETED', 'ERROR', 'ABORTED')",
            (ids,),
        )
        return int(rows[0][0])  # type: ignore[call-overload]

    wait_until(lambda: finished() >= JOBS // 4, 180, "a quarter of the jobs to end")
    old.kill()
    killed = time.monotonic()
    try:
        new = wait_until(
            lambda: (
                (leader := fleet.cluster.leader()) is not None
                and leader.name != old.name
                and leader
            ),
            60,
            "the standby to take over",
        )
        print(f"failover: {new.name} primary {time.monotonic() - killed:.1f} s after the kill")
        wait_until(lambda: finished() == JOBS, 300, "every job to end")
        print(f"all {JOBS} jobs ended {time.monotonic() - killed:.1f} s after the kill")

        # The database's account: each job ended exactly once, COMPLETED.
        phases = dict(
            on_primary(
                fleet,
                "SELECT phase, count(*) FROM tapd.jobs WHERE job_id = ANY(%s) GROUP BY phase",
                (ids,),
            )
        )
        assert phases == {"COMPLETED": JOBS}
        endings = on_primary(
            fleet,
            "SELECT job_id, count(*) FROM public.fleet_audit WHERE job_id = ANY(%s)"
            " AND new_phase IN ('COMPLETED', 'ERROR', 'ABORTED') GROUP BY job_id",
            (ids,),
        )
        assert len(endings) == JOBS
        assert all(count == 1 for _, count in endings)
        requeued = on_primary(
            fleet,
            "SELECT count(*) FROM public.fleet_audit WHERE job_id = ANY(%s)"
            " AND old_phase = 'EXECUTING' AND new_phase = 'QUEUED'",
            (ids,),
        )[0][0]
        print(f"attempts requeued by the failover: {requeued}")

        # A client's account, through both hosts: phases and results.
        for n, job_id in enumerate(ids):
            app = apps[(n + 1) % len(apps)]
            answer = httpx.get(f"{app.url}/async/{job_id}/results/result", timeout=30)
            assert answer.status_code == 200, (job_id, answer.text)
            expected = ["id", "7", "8"] if n % 10 == 0 else ["x", "1"]
            assert answer.text.split() == expected, job_id
        for app in apps:
            assert httpx.get(f"{app.url}/availability", timeout=30).status_code == 200
        runners = on_primary(
            fleet,
            "SELECT host FROM tapd.runners WHERE heartbeat > now() - interval '5 seconds'",
        )
        assert {host for (host,) in runners} == set(fleet.apps)
    finally:
        restore(fleet, old)
