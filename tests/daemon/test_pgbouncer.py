"""Runner children connecting through pgbouncer in session mode (issue 14, item 5).

pgbouncer hands each client a server connection for the whole session and
reports a made-up backend pid of its own; a job's real backend is found with
pg_backend_pid() and by the session name pgbouncer passes on.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable, Iterator

import psycopg
import pytest

from tapd.devcluster import DevCluster, DevPgBouncer
from tapd.store import JobPhase
from tests.sites import DaemonProcess, Site, wait_for


@pytest.fixture
def pooler(pg_cluster: DevCluster) -> Iterator[DevPgBouncer]:
    if shutil.which("pgbouncer") is None and not os.path.exists("/usr/sbin/pgbouncer"):
        if os.environ.get("CI") == "true":
            pytest.fail("pgbouncer is missing: scripts/bootstrap installs it as root")
        pytest.skip("pgbouncer is not installed (Debian package pgbouncer)")
    with DevPgBouncer(pg_cluster, port=6400 + os.getpid() % 500) as bouncer:
        yield bouncer


@pytest.fixture
def pooled_site(site: Site, pooler: DevPgBouncer) -> Site:
    dbname = psycopg.conninfo.conninfo_to_dict(site.dsn)["dbname"]
    site.write_config(database={"dsn": pooler.dsn(str(dbname))})
    return site


def running_query(site: Site, job_id: str) -> list[dict[str, object]]:
    """The job's sessions (by name, straight on the server) running its query."""
    return [s for s in site.sessions(job_id) if s["state"] == "active"]


def test_a_job_through_pgbouncer_records_its_real_backend_and_can_be_aborted(
    pooled_site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    site = pooled_site
    daemons()
    assert site.job(site.submit("SELECT TOP 3 x FROM public.numbers")).phase  # warm
    job_id = site.submit("SELECT x FROM public.sleepy")
    sessions = wait_for(lambda: running_query(site, job_id), 30, "the job's query")
    job = site.job(job_id)
    assert job.runner_backend_pid in {s["pid"] for s in sessions}

    with site.store() as store:
        store.abort_job(job_id)

    assert site.wait_phase(job_id).phase == JobPhase.ABORTED
    wait_for(lambda: not running_query(site, job_id), 30, "the query to stop")


def test_a_killed_child_behind_pgbouncer_has_its_server_session_ended(
    pooled_site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    site = pooled_site
    daemons()
    job_id = site.submit("SELECT x FROM public.sleepy")
    wait_for(lambda: running_query(site, job_id), 30, "the job's query")
    child = site.job(job_id).runner_pid
    assert child is not None

    os.kill(child, signal.SIGKILL)

    job = site.wait_phase(job_id)
    assert job.phase == JobPhase.ERROR
    assert "SIGKILL" in (job.error.message if job.error else "")
    wait_for(lambda: not running_query(site, job_id), 30, "the server session to end")


def test_many_jobs_through_pgbouncer_all_complete(
    pooled_site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    site = pooled_site
    daemons()
    ids = [site.submit("SELECT TOP 5 x FROM public.numbers") for _ in range(40)]
    for job_id in ids:
        assert site.wait_phase(job_id, timeout=120).phase == JobPhase.COMPLETED
