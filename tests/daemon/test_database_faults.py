"""The database refuses the daemon's statements (not a lost connection): the
daemon backs off, says why (log, STATUS=, its runners row) and resumes by itself."""

from __future__ import annotations

import os
import signal
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from tapd.store import JobPhase
from tests.sites import DaemonProcess, Site, refusing_trigger, wait_for

#: A trigger that refuses every claim, as a broken trigger or a revoked
#: privilege would: the claim statement fails every time it is tried.
REFUSE_CLAIMS = refusing_trigger(
    "refuse_claims",
    "OLD.phase = 'QUEUED' AND NEW.phase = 'EXECUTING'",
    "jobs cannot start today (a test trigger)",
)


@pytest.fixture
def faulty_site(site: Site) -> Site:
    """A site whose daemons log JSON events and back off to at most 2 s."""
    site.write_config(runner={"retry_backoff_max": 2.0}, log={"format": "json"})
    return site


def problems(daemon: DaemonProcess) -> list[dict[str, Any]]:
    """Warnings and errors the daemon logged."""
    return [e for e in daemon.events() if e.get("level") in ("warning", "error")]


def own_row(site: Site, daemon: DaemonProcess) -> dict[str, Any]:
    return next(r for r in site.runners() if r["pid"] == daemon.pid)


def test_refused_claims_back_off_with_one_warning_per_step_and_resume_when_fixed(
    faulty_site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    site = faulty_site
    daemon = daemons()
    with site.store() as store:
        store.conn.execute(REFUSE_CLAIMS)
    job_id = site.submit("SELECT x FROM public.numbers")

    steps = daemon.wait_events("daemon.degraded", count=4)
    assert [s["operation"] for s in steps] == ["claim"] * 4
    assert {s["sqlstate"] for s in steps} == {"P0001"}
    assert all("jobs cannot start today" in s["error"] for s in steps)
    assert [s["retry_in_s"] for s in steps] == [0.5, 1.0, 2.0, 2.0]  # doubling up to the cap
    # One line per step: before the fix the loop retried (and logged) ~600 times a second.
    assert {p["event"] for p in problems(daemon)} == {"daemon.degraded"}

    status = daemon.wait_status(lambda s: "P0001" in s)
    assert status.startswith("degraded:") and "claim" in status
    row = wait_for(lambda: own_row(site, daemon)["degraded"], 10, "the runners row to say why")
    assert "claim" in row and "P0001" in row and "jobs cannot start today" in row
    assert own_row(site, daemon)["degraded_since"] is not None
    job = site.job(job_id)
    assert (job.phase, job.attempts) == (JobPhase.QUEUED, 0)

    with site.store() as store:
        store.conn.execute("DROP TRIGGER refuse_claims ON tapd.jobs")
    job = site.wait_phase(job_id, timeout=30)
    assert (job.phase, job.attempts) == (JobPhase.COMPLETED, 1)  # run once, after the fix
    [recovered] = daemon.wait_events("daemon.recovered")
    assert recovered["operation"] == "claim"
    wait_for(lambda: own_row(site, daemon)["degraded"] is None, 10, "the row to be clear again")
    wait_for(lambda: not daemon.statuses()[-1].startswith("degraded"), 10, "a normal STATUS=")


def test_a_locked_runners_table_makes_the_daemon_wait_out_the_lock_not_hang(
    faulty_site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    """An administrator's LOCK TABLE: the daemon's statements give up after its
    lock_timeout instead of blocking its main loop until systemd's watchdog."""
    site = faulty_site
    daemon = daemons()

    def heartbeat_steps() -> list[dict[str, Any]]:
        return [e for e in daemon.events("daemon.degraded") if e["operation"] == "heartbeat"]

    with psycopg.connect(site.dsn) as locker:
        locker.execute("LOCK TABLE tapd.runners IN EXCLUSIVE MODE")  # the heartbeat waits
        [step] = wait_for(heartbeat_steps, 60, "the heartbeat to fail")
        assert step["sqlstate"] == "55P03" and "lock timeout" in step["error"]
        # No claim while the heartbeat cannot be written: other daemons would
        # soon take this one for dead and end the jobs it runs.
        job_id = site.submit("SELECT x FROM public.numbers")
        wait_for(lambda: len(heartbeat_steps()) >= 2, 60, "the heartbeat to fail again")
        daemon.wait_status(lambda s: "55P03" in s and "heartbeat" in s)
        assert site.job(job_id).phase == JobPhase.QUEUED
    job = site.wait_phase(job_id, timeout=60)
    assert (job.phase, job.attempts) == (JobPhase.COMPLETED, 1)
    recovered = daemon.wait_events("daemon.recovered")
    assert "heartbeat" in {e["operation"] for e in recovered}


@pytest.fixture
def spare_role(site: Site) -> Iterator[str]:
    """A role of its own for the spares' query sessions (roles are cluster-wide:
    a unique name, dropped afterwards), with the query role's privileges."""
    name = f"tapd_spare_{uuid.uuid4().hex[:8]}"
    with site.store() as store:
        store.conn.execute(f"CREATE ROLE {name} LOGIN IN ROLE tapd_query")
    yield name
    with site.store() as store:
        store.conn.execute(f"DROP ROLE {name}")


@pytest.mark.parametrize(
    ("broken", "server_says", "fixed"),
    [
        ("CONNECTION LIMIT 0", "too many connections for role", "CONNECTION LIMIT -1"),
        ("NOLOGIN", "is not permitted to log in", "LOGIN"),
    ],
    ids=["too_many_connections", "authentication"],
)
def test_spares_that_cannot_connect_are_reported_and_their_slots_unusable_until_fixed(
    faulty_site: Site,
    daemons: Callable[..., DaemonProcess],
    spare_role: str,
    broken: str,
    server_says: str,
    fixed: str,
) -> None:
    site = faulty_site
    # the spares' query sessions log in as spare_role, which is then the query role
    site.write_config(
        database={"query_dsn": f"{site.dsn} user={spare_role}", "query_role": spare_role}
    )
    with site.store() as store:
        store.conn.execute(f"ALTER ROLE {spare_role} {broken}")
    daemon = daemons()  # its own connection works: it starts, and says what is wrong
    job_id = site.submit("SELECT x FROM public.numbers")

    steps = daemon.wait_events("daemon.degraded", count=3)
    assert [s["operation"] for s in steps] == ["spares"] * 3
    assert all(server_says in s["error"] and spare_role in s["error"] for s in steps)
    assert [s["retry_in_s"] for s in steps] == [0.5, 1.0, 2.0]

    def row() -> dict[str, Any] | None:
        found = own_row(site, daemon)
        return found if found["degraded"] else None

    degraded = wait_for(row, 10, "the runners row to say why")
    assert degraded["usable_slots"] == 0 and server_says in degraded["degraded"]
    assert server_says in daemon.wait_status(lambda s: s.startswith("degraded: spares"))
    assert site.job(job_id).phase == JobPhase.QUEUED

    with site.store() as store:
        store.conn.execute(f"ALTER ROLE {spare_role} {fixed}")
    job = site.wait_phase(job_id, timeout=30)
    assert (job.phase, job.attempts) == (JobPhase.COMPLETED, 1)
    [recovered] = daemon.wait_events("daemon.recovered")
    assert recovered["operation"] == "spares"
    healthy = wait_for(lambda: own_row(site, daemon)["degraded"] is None, 10, "a healthy row")
    assert healthy
    assert own_row(site, daemon)["usable_slots"] == 4


def test_a_spare_that_never_becomes_ready_is_killed_and_replaced(
    faulty_site: Site, daemons: Callable[..., DaemonProcess]
) -> None:
    """A spare stuck connecting (here: a server that accepts TCP connections and
    never answers) must not hold its slot for ever."""
    site = faulty_site
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # the kernel completes handshakes; nobody ever answers
        port = silent.getsockname()[1]
        site.write_config(
            database={"query_dsn": f"host=127.0.0.1 port={port} dbname=x connect_timeout=600"},
            runner={"spare_ready_timeout": 1.0, "max_jobs": 1},
        )
        daemon = daemons()
        first, second = daemon.wait_events("daemon.spare_not_ready", count=2)
        assert first["runner_pid"] != second["runner_pid"]  # replaced, and that one too
        assert first["waited_s"] >= 1.0
        with pytest.raises(ProcessLookupError):
            os.kill(first["runner_pid"], 0)  # killed and reaped
        step = next(e for e in daemon.events("daemon.degraded") if e["operation"] == "spares")
        assert "did not become ready within 1 s" in step["error"]
        # Fixed by a reload: the next spare connects and runs the queued job.
        job_id = site.submit("SELECT x FROM public.numbers")
        site.write_config(database={"query_dsn": ""})
        daemon.signal(signal.SIGHUP)
        job = site.wait_phase(job_id, timeout=30)
        assert (job.phase, job.attempts) == (JobPhase.COMPLETED, 1)


#: Views whose query fails with a given SQLSTATE while the connection stays up.
FAILING_VIEWS = """
CREATE FUNCTION public.fail_with(code text) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'raised by a test (SQLSTATE %)', code USING ERRCODE = code;
END $$;
CREATE VIEW public.server_shutting_down AS SELECT public.fail_with('57P01') AS x;
CREATE VIEW public.division_by_zero AS SELECT public.fail_with('22012') AS x;
"""


@pytest.mark.parametrize(
    ("view", "phase", "attempts", "message"),
    [
        # not the job's fault (tapd.store.faults: REQUEUE): it runs again, up to 3 times
        ("server_shutting_down", JobPhase.ERROR, 3, "The database connection was lost 3 times"),
        # the job's own query (FAIL_JOB): it fails at once with the server's reason
        ("division_by_zero", JobPhase.ERROR, 1, "The query failed in the database: raised"),
    ],
)
def test_a_job_s_database_error_is_answered_by_its_sqlstate_class(
    site: Site,
    daemon: DaemonProcess,
    view: str,
    phase: JobPhase,
    attempts: int,
    message: str,
) -> None:
    from tapd.catalog import publish_table

    with site.store() as store:
        store.conn.execute(FAILING_VIEWS)
        publish_table(store.conn, f"public.{view}", None, "tapd_query")
    job = site.wait_phase(site.submit(f"SELECT x FROM public.{view}"), timeout=60)
    assert (job.phase, job.attempts) == (phase, attempts)
    assert job.error is not None and job.error.message.startswith(message)
