"""After a database outage no daemon gives up the others for a silence the outage caused.

A primary failover (issue 14, item 3) leaves every daemon without a heartbeat
for as long as it takes; whichever reconnects first must give the others
runner.heartbeat_timeout to come back before it takes their jobs as orphans.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from tapd.devcluster import DevCluster
from tapd.store import Job, JobPhase
from tests.sites import DaemonProcess, Site, wait_for


def test_the_daemon_back_first_lets_the_others_come_back(
    site: Site, daemons: Callable[..., DaemonProcess], pg_cluster: DevCluster
) -> None:
    slow = daemons()
    job_id = site.submit("SELECT x FROM public.sleepy")
    site.wait_phase(job_id, JobPhase.EXECUTING)
    quick = daemons()
    timeout = float(site.settings["runner"]["heartbeat_timeout"])

    slow.signal(signal.SIGSTOP)  # back later than the other: a longer back-off, a busy host
    try:
        pg_cluster.stop()
        time.sleep(timeout + 1)  # an outage longer than the heartbeat timeout
        pg_cluster.start()
        wait_for(lambda: "daemon.database_reconnected" in quick.log(), 60, "the first back")
    finally:
        slow.signal(signal.SIGCONT)
    wait_for(lambda: slow.log().count("daemon.database_reconnected"), 60, "the second back")

    # The outage killed the job's query: the daemon running it puts it back in
    # the queue; the one back first must not have ended it as an orphan.
    def settled() -> Job | None:
        job = site.job(job_id)
        return job if job.phase == JobPhase.ERROR or job.attempts >= 2 else None

    job = wait_for(settled, 60, "the job to be run again or ended")
    assert job.phase != JobPhase.ERROR, job.error
    assert "runner.gone" not in quick.log()
