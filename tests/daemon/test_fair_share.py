"""Fair share across several daemons: one owner's long queue does not make the
others wait behind it, and ``limits.running_per_owner`` holds fleet-wide."""

from __future__ import annotations

from collections.abc import Callable

from tapd.store import JobPhase
from tests.sites import DaemonProcess, Site, wait_for

SLEEPY = "SELECT x FROM public.sleepy"  # runs until aborted


def submit_as(site: Site, owner: str, query: str = SLEEPY) -> str:
    with site.store() as store:
        return store.create_job(
            {"LANG": "ADQL", "QUERY": query},
            execution_duration=600,
            destruction=None,
            owner=owner,
            queue=True,
        ).job_id


def executing(site: Site, owner: str) -> list[str]:
    with site.store() as store:
        return [j.job_id for j in store.list_jobs(owner=owner, phases=[JobPhase.EXECUTING])]


def test_another_owner_starts_at_the_next_free_slot(
    site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    """Owner A queues 50 long jobs, filling both daemons' slots; B's one job,
    queued after them, takes the first slot that frees."""
    site.write_config(runner={"max_jobs": 2}, limits={"running_per_owner": 4})
    daemons(), daemons()
    many = [submit_as(site, "alice") for _ in range(50)]
    wait_for(lambda: len(executing(site, "alice")) == 4, 60, "alice's jobs to fill 4 slots")
    bobs = submit_as(site, "bob")
    with site.store() as store:
        store.abort_job(executing(site, "alice")[0])  # a slot frees
    site.wait_phase(bobs, JobPhase.EXECUTING, timeout=60)
    assert len(executing(site, "alice")) == 3
    with site.store() as store:
        assert sum(store.get_job(j).phase == JobPhase.QUEUED for j in many) == 46


def test_an_owner_runs_no_more_than_its_limit_on_all_daemons(
    site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    site.write_config(runner={"max_jobs": 2}, limits={"running_per_owner": 1})
    daemons(), daemons()
    alices = [submit_as(site, "alice") for _ in range(3)]
    site.wait_phase(alices[0], JobPhase.EXECUTING, timeout=60)
    bobs = submit_as(site, "bob")
    site.wait_phase(bobs, JobPhase.EXECUTING, timeout=60)  # free slots: bob runs at once
    assert executing(site, "alice") == alices[:1]  # 3 slots were free, alice got 1
