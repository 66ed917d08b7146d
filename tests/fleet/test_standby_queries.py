"""The job store on the primary, user queries on the standbys (issue 14, item 2).

The application hosts' ``database.query_dsn`` names both nodes with
``target_session_attrs=prefer-standby load_balance_hosts=random``: queries
go to the standby, jobs with TAP_UPLOAD to the primary (a standby refuses
their temporary tables). A query cancelled by a recovery conflict runs once
more; a table the standby has not replayed yet is a clear error.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.fleet.cluster import PatroniNode, wait_until
from tests.fleet.test_any_host import UPLOAD
from tests.fleet.topology import Fleet
from tests.fleet.uws import error_summary, submit, wait_phase

pytestmark = pytest.mark.fleet


def active_queries(fleet: Fleet, node: PatroniNode, application_name: str) -> list[str]:
    """Statements running on ``node`` in sessions named ``application_name``."""
    with psycopg.connect(fleet.node_dsn(node), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT query FROM pg_stat_activity WHERE application_name = %s AND state = 'active'",
            (application_name,),
        ).fetchall()
    return [query for (query,) in rows]


def test_async_queries_run_on_the_standby(fleet: Fleet) -> None:
    app = fleet.apps["app1"]
    primary, standby = fleet.cluster.leader(), fleet.standby()
    assert primary is not None
    job_id = submit(app.url, "SELECT x FROM public.sleepy")
    try:
        name = f"tapd job {job_id}"
        wait_until(  # past the statements before it (settings, estimate, describe)
            lambda: [q for q in active_queries(fleet, standby, name) if "sleepy" in q],
            60,
            "the query",
        )
        assert not any("sleepy" in q for q in active_queries(fleet, primary, name))
    finally:
        httpx.post(f"{app.url}/async/{job_id}/phase", data={"PHASE": "ABORT"}, timeout=30)
    assert wait_phase(app.url, job_id) == "ABORTED"
    wait_until(lambda: not active_queries(fleet, standby, name), 30, "the query to stop")


def test_sync_queries_run_on_the_standby(fleet: Fleet) -> None:
    app = fleet.apps["app2"]
    standby = fleet.standby()
    answers: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: answers.append(
            httpx.post(
                f"{app.url}/sync",
                data={"LANG": "ADQL", "QUERY": "SELECT x FROM public.sleepy"},
                timeout=120,
            )
        )
    )
    request.start()
    # the request's session runs a few statements before the query itself (catalog,
    # settings, describe), each on its own: wait for the query
    wait_until(
        lambda: [q for q in active_queries(fleet, standby, "tapd http sync") if "sleepy" in q],
        60,
        "the /sync query",
    )
    with psycopg.connect(fleet.node_dsn(standby), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'tapd http sync' AND state = 'active'"
        )
    request.join(60)
    assert answers and answers[0].status_code >= 400


def test_upload_jobs_run_on_the_primary(fleet: Fleet) -> None:
    """A standby refuses the upload's temporary table: the job's query runs on the primary."""
    app = fleet.apps["app1"]
    primary, standby = fleet.cluster.leader(), fleet.standby()
    assert primary is not None
    job_id = submit(
        app.url,
        "SELECT u.id FROM TAP_UPLOAD.mine AS u, public.numbers_slowly AS n"
        " WHERE n.x = u.id ORDER BY u.id",
        FORMAT="csv",
        UPLOAD="mine,param:table1",
        files={"table1": ("mine.xml", io.BytesIO(UPLOAD), "application/x-votable+xml")},
    )
    name = f"tapd job {job_id}"
    running = wait_until(lambda: active_queries(fleet, primary, name), 60, "the query")
    assert any("numbers_slowly" in query for query in running)
    assert not active_queries(fleet, standby, name)
    assert wait_phase(app.url, job_id) == "COMPLETED", error_summary(app.url, job_id)
    result = httpx.get(f"{app.url}/async/{job_id}/results/result", timeout=30)
    assert result.text.split() == ["id", "7", "8"]


@contextlib.contextmanager
def locking_on_primary(
    fleet: Fleet, times: int | None, application: str = "tapd job %"
) -> Iterator[threading.Event]:
    """Take an ACCESS EXCLUSIVE lock on public.numbers on the primary (replayed on
    the standby, where it conflicts with queries reading the table) once for each
    run of a query reading public.numbers_slowly on the standby: ``times`` times,
    or for every run until the block ends."""
    standby = fleet.standby()
    stop = threading.Event()
    took = threading.Event()

    def lock() -> None:
        seen: set[tuple[Any, ...]] = set()
        with psycopg.connect(fleet.dsn(), autocommit=True) as conn:
            while not stop.is_set() and (times is None or len(seen) < times):
                runs = set(reading_runs(fleet, standby, application)) - seen
                if not runs:
                    time.sleep(0.05)
                    continue
                with conn.transaction():
                    conn.execute("LOCK TABLE public.numbers IN ACCESS EXCLUSIVE MODE")
                seen |= runs
                took.set()

    thread = threading.Thread(target=lock)
    thread.start()
    try:
        yield took
    finally:
        stop.set()
        thread.join(60)


def reading_runs(fleet: Fleet, node: PatroniNode, application: str) -> list[tuple[Any, ...]]:
    """(backend pid, start) of each query reading public.numbers_slowly on ``node``
    in a session whose name is LIKE ``application``."""
    with psycopg.connect(fleet.node_dsn(node), autocommit=True) as conn:
        return conn.execute(
            "SELECT pid, query_start FROM pg_stat_activity WHERE state = 'active'"
            " AND application_name LIKE %s AND query LIKE '%%numbers_slowly%%'",
            (application,),
        ).fetchall()


def lock_conflicts(fleet: Fleet) -> int:
    with psycopg.connect(fleet.node_dsn(fleet.standby()), autocommit=True) as conn:
        row = conn.execute(
            "SELECT confl_lock FROM pg_stat_database_conflicts WHERE datname = 'tapd'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def retries_logged(fleet: Fleet, job_id: str) -> list[dict[str, Any]]:
    return [
        record
        for app in fleet.apps.values()
        for record in app.events("run", "job.query_retried")
        if record.get("job_id") == job_id
    ]


def test_a_query_cancelled_by_a_recovery_conflict_runs_again(fleet: Fleet) -> None:
    app = fleet.apps["app1"]
    conflicts = lock_conflicts(fleet)
    with locking_on_primary(fleet, times=1) as took:
        job_id = submit(app.url, "SELECT x FROM public.numbers_slowly", FORMAT="csv")
        assert wait_phase(app.url, job_id) == "COMPLETED", error_summary(app.url, job_id)
        assert took.is_set()
    result = httpx.get(f"{app.url}/async/{job_id}/results/result", timeout=30)
    assert len(result.text.split()) == 101
    assert lock_conflicts(fleet) > conflicts
    assert retries_logged(fleet, job_id)


def test_a_sync_query_cancelled_by_a_recovery_conflict_runs_again(fleet: Fleet) -> None:
    app = fleet.apps["app2"]
    with locking_on_primary(fleet, times=1, application="tapd http sync") as took:
        answer = httpx.post(
            f"{app.url}/sync",
            data={"LANG": "ADQL", "QUERY": "SELECT x FROM public.numbers_slowly", "FORMAT": "csv"},
            timeout=120,
        )
        assert took.is_set()
    assert answer.status_code == 200, answer.text
    assert len(answer.text.split()) == 101


def test_a_query_cancelled_by_recovery_conflicts_twice_fails_saying_so(fleet: Fleet) -> None:
    app = fleet.apps["app2"]
    with locking_on_primary(fleet, times=None):
        job_id = submit(app.url, "SELECT x FROM public.numbers_slowly", FORMAT="csv")
        assert wait_phase(app.url, job_id) == "ERROR"
    message = error_summary(app.url, job_id)
    assert "recovery conflict" in message
    assert "standby" in message
    assert len(retries_logged(fleet, job_id)) == 1


def test_a_table_not_yet_replayed_on_the_standby_is_a_clear_error(fleet: Fleet) -> None:
    from tapd.catalog import publish_table

    app = fleet.apps["app1"]
    standby = fleet.standby()
    # (Patroni would resume the paused replay at once.)
    with fleet.cluster.maintenance(), psycopg.connect(fleet.node_dsn(standby)) as replica:
        replica.autocommit = True
        replica.execute("SELECT pg_wal_replay_pause()")
        try:
            wait_until(
                lambda: (
                    replica.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()
                    == ("paused",)
                ),
                30,
                "replay to pause",
            )
            with psycopg.connect(fleet.dsn(), autocommit=True) as primary:
                primary.execute("CREATE TABLE public.fresh AS SELECT 1 AS y")
                publish_table(primary, "public.fresh", None, "tapd_query")
            job_id = submit(app.url, "SELECT y FROM public.fresh")
            assert wait_phase(app.url, job_id) == "ERROR"
        finally:
            replica.execute("SELECT pg_wal_replay_resume()")
    message = error_summary(app.url, job_id)
    assert "standby" in message
    assert "again" in message

    again = submit(app.url, "SELECT y FROM public.fresh", FORMAT="csv")
    assert wait_phase(app.url, again) == "COMPLETED", error_summary(app.url, again)
