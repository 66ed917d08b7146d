"""The store as runner daemons use it: claim, start, finish, requeue, heartbeats, sweeping."""

from __future__ import annotations

import datetime as dt
import json
import threading

import psycopg
import pytest

from tapd.errors import DatabaseUnavailable
from tapd.store import Attempt, ErrorSummary, JobPhase, JobStore, ResultEntry
from tapd.store.connection import connect_direct


def queued_jobs(store: JobStore, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        ids.append(store.create_job({}, execution_duration=60, destruction=None, queue=True).job_id)
    return ids


def test_claim_takes_the_oldest_queued_jobs_up_to_the_limit(store: JobStore) -> None:
    """(D-01)"""
    ids = queued_jobs(store, 5)
    first = store.claim_jobs("r1", "host-a", 2)
    second = store.claim_jobs("r1", "host-a", 10)
    assert [j.job_id for j in first] == ids[:2]
    assert [j.job_id for j in second] == ids[2:]
    assert store.claim_jobs("r1", "host-a", 10) == []
    job = first[0]
    assert job.phase == JobPhase.EXECUTING
    assert (job.runner_instance, job.runner_host, job.attempts) == ("r1", "host-a", 1)
    assert job.start_time is not None


def test_claims_from_many_connections_never_take_a_job_twice(store: JobStore, dsn: str) -> None:
    """(D-01)"""
    ids = set(queued_jobs(store, 300))
    claimed: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def claimer(name: str) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                mine = JobStore(conn)
                got: list[str] = []
                while batch := mine.claim_jobs(name, "host", 3):
                    got += [j.job_id for j in batch]
                claimed[name] = got
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(f"r{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    every_claim = [job_id for got in claimed.values() for job_id in got]
    assert len(every_claim) == len(ids)
    assert set(every_claim) == ids


def test_start_records_the_child_and_returns_the_job(store: JobStore) -> None:
    (job_id,) = queued_jobs(store, 1)
    store.claim_jobs("r1", "host", 1)
    job = store.start_job(job_id, "r1", pid=4242, backend_pid=77)
    assert job is not None and (job.runner_pid, job.runner_backend_pid) == (4242, 77)
    assert store.start_job(job_id, "other-runner", pid=1, backend_pid=1) is None


def test_start_of_a_job_aborted_meanwhile_tells_the_child_to_stop(store: JobStore) -> None:
    (job_id,) = queued_jobs(store, 1)
    store.claim_jobs("r1", "host", 1)
    store.abort_job(job_id)
    assert store.start_job(job_id, "r1", pid=4242, backend_pid=None) is None


def test_finish_stores_results_or_error_and_only_the_owner_may_finish(store: JobStore) -> None:
    done, failed = queued_jobs(store, 2)
    first, second = store.claim_jobs("r1", "host", 2)
    result = ResultEntry("result", "result.vot", "application/x-votable+xml", 1234, 10, True)
    other_daemon = Attempt(done, first.attempts, "r2")
    assert not store.finish_job(other_daemon, JobPhase.COMPLETED, results=[result])
    assert store.finish_job(first.attempt, JobPhase.COMPLETED, results=[result])
    assert store.finish_job(second.attempt, JobPhase.ERROR, error=ErrorSummary("bad table"))
    assert not store.finish_job(first.attempt, JobPhase.ERROR)  # already ended
    job = store.get_job(done)
    assert job.phase == JobPhase.COMPLETED and job.results == (result,)
    assert job.result("result") == result and job.end_time is not None
    error = store.get_job(failed).error
    assert error == ErrorSummary("bad table", "fatal", True)


def test_requeued_job_goes_back_to_the_head_of_the_queue(store: JobStore) -> None:
    first, second = queued_jobs(store, 2)
    (claimed,) = store.claim_jobs("r1", "host", 1)
    store.start_job(first, "r1", pid=1, backend_pid=2)
    never_claimed = Attempt(second, 1, "r1")
    assert store.requeue_jobs([claimed.attempt, never_claimed]) == [first]
    job = store.get_job(first)
    assert job.phase == JobPhase.QUEUED
    assert (job.runner_instance, job.runner_pid, job.start_time) == (None, None, None)
    again = store.claim_jobs("r2", "host", 1)
    assert [j.job_id for j in again] == [first] and again[0].attempts == 2


def test_each_claim_starts_an_attempt_and_only_that_attempt_may_end_or_requeue_it(
    store: JobStore,
) -> None:
    """(issue 10 item 2) An ending or requeue of an earlier attempt, even by the
    same daemon, is refused once the job was claimed again."""
    (job_id,) = queued_jobs(store, 1)
    (first,) = store.claim_jobs("r1", "host", 1)
    assert store.requeue_jobs([first.attempt]) == [job_id]
    (second,) = store.claim_jobs("r1", "host", 1)
    assert (first.attempt.number, second.attempt.number) == (1, 2)
    assert first.attempt.instance == second.attempt.instance == "r1"
    assert not store.finish_job(first.attempt, JobPhase.ERROR, error=ErrorSummary("late"))
    assert store.requeue_jobs([first.attempt]) == []
    with store.ending(first.attempt, JobPhase.ERROR, error=ErrorSummary("late")) as ours:
        assert not ours
    job = store.get_job(job_id)
    assert (job.phase, job.attempt) == (JobPhase.EXECUTING, second.attempt)
    result = ResultEntry("result", "result.csv", "text/csv", 10, 1, False)
    with store.ending(second.attempt, JobPhase.COMPLETED, results=[result]) as ours:
        assert ours
    job = store.get_job(job_id)
    assert (job.phase, job.results, job.attempts) == (JobPhase.COMPLETED, (result,), 2)


def test_an_ending_holds_the_job_until_its_block_is_done_and_rolls_back_on_error(
    store: JobStore, dsn: str
) -> None:
    """What a runner does inside its ending (putting files in place) is fenced:
    nobody can change the job meanwhile; a failure there undoes the ending."""
    (job_id,) = queued_jobs(store, 1)
    (claimed,) = store.claim_jobs("r1", "host", 1)
    with pytest.raises(OSError), store.ending(claimed.attempt, JobPhase.COMPLETED) as ours:
        assert ours
        raise OSError("disk full")
    assert store.get_job(job_id).phase == JobPhase.EXECUTING
    with psycopg.connect(dsn, autocommit=True) as other:
        with store.ending(claimed.attempt, JobPhase.COMPLETED) as ours:
            assert ours
            other.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                JobStore(other).abort_job(job_id)
        assert JobStore(other).get_job(job_id).phase == JobPhase.COMPLETED


def test_runner_jobs_reports_both_directions_of_disagreement(store: JobStore) -> None:
    mine, aborted = queued_jobs(store, 2)
    store.claim_jobs("r1", "host", 2)
    store.abort_job(aborted)
    seen = store.runner_jobs("r1", [aborted])
    assert seen[mine]["phase"] == "EXECUTING"
    assert seen[aborted]["phase"] == "ABORTED"


def test_heartbeats_registry_and_expiry(store: JobStore) -> None:
    """(D-10)"""
    store.register_runner("r1", host="h", boot_id="b", pid=10, max_jobs=4)
    store.register_runner("r2", host="h", boot_id="b", pid=11, max_jobs=4)
    queued_jobs(store, 3)
    assert store.heartbeat("r1", running=2, max_jobs=4) == 3
    assert store.heartbeat("nobody", running=0, max_jobs=4) is None
    store.conn.execute(
        "UPDATE tapd.runners SET heartbeat = now() - interval '1 hour' WHERE instance = 'r2'"
    )
    assert store.expire_runners(timeout=30) == ["r2"]
    (runner,) = store.list_runners()
    assert (runner.instance, runner.running, runner.max_jobs) == ("r1", 2, 4)
    assert runner.heartbeat_age < 30
    assert runner.is_live(30) and not runner.is_live(0)


def test_heartbeat_reports_the_daemons_reconnects(store: JobStore) -> None:
    store.register_runner("r1", host="h", boot_id="b", pid=10, max_jobs=4)
    assert store.list_runners()[0].reconnects == 0
    store.heartbeat("r1", running=0, max_jobs=4, reconnects=3)
    assert store.list_runners()[0].reconnects == 3


def test_oldest_queued_age_is_the_wait_of_the_head_of_the_queue(store: JobStore) -> None:
    assert store.oldest_queued_age() is None
    first, _ = queued_jobs(store, 2)
    store.conn.execute(
        "UPDATE tapd.jobs SET queued_time = now() - interval '90 seconds' WHERE job_id = %s",
        (first,),
    )
    assert 90 <= (store.oldest_queued_age() or 0) < 120
    store.claim_jobs("r1", "h", 2)
    assert store.oldest_queued_age() is None


def test_an_ending_is_announced_with_the_jobs_figures(store: JobStore, dsn: str) -> None:
    """The phase NOTIFY of an ended job says how long it ran and how large its
    results are (the metrics of tapd serve count from it)."""
    done, failed, never_ran = queued_jobs(store, 3)
    attempts = {job.job_id: job.attempt for job in store.claim_jobs("r1", "h", 2)}
    store.conn.execute(
        "UPDATE tapd.jobs SET start_time = now() - interval '2 seconds' WHERE job_id = %s",
        (done,),
    )
    result = ResultEntry("result", "result.csv", "text/csv", 1234, 10, False)
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute('LISTEN "tapd.phase"')
        store.finish_job(attempts[done], JobPhase.COMPLETED, results=[result])
        store.finish_job(attempts[failed], JobPhase.ERROR, error=ErrorSummary("no"))
        store.abort_job(never_ran)
        notifies = listener.notifies()
        payloads = {p["job_id"]: p for p in (json.loads(next(notifies).payload) for _ in "123")}
        notifies.close()
    assert payloads[done]["phase"] == "COMPLETED" and payloads[done]["bytes"] == 1234
    assert 2 <= payloads[done]["seconds"] < 10
    assert payloads[failed]["bytes"] is None and payloads[failed]["seconds"] >= 0
    assert (payloads[never_ran]["seconds"], payloads[never_ran]["bytes"]) == (None, None)


def test_heartbeat_records_usable_slots_and_why_the_daemon_is_degraded(store: JobStore) -> None:
    store.register_runner("r1", host="h", boot_id="b", pid=10, max_jobs=4)
    (fresh,) = store.list_runners()
    assert (fresh.usable_slots, fresh.degraded, fresh.degraded_since) == (4, None, None)
    reason = "spares: cannot connect to the database (no SQLSTATE): too many clients"
    store.heartbeat("r1", running=1, max_jobs=4, usable_slots=1, degraded=reason)
    (degraded,) = store.list_runners()
    assert (degraded.usable_slots, degraded.degraded) == (1, reason)
    assert degraded.degraded_since is not None
    store.heartbeat("r1", running=1, max_jobs=4, usable_slots=0, degraded=reason + " (still)")
    (still,) = store.list_runners()
    assert still.degraded_since == degraded.degraded_since  # since the first time
    store.heartbeat("r1", running=0, max_jobs=4, usable_slots=4)
    (healthy,) = store.list_runners()
    assert (healthy.usable_slots, healthy.degraded, healthy.degraded_since) == (4, None, None)


def test_jobs_of_unregistered_runners_are_orphans(store: JobStore) -> None:
    store.register_runner("alive", host="h", boot_id="b", pid=10, max_jobs=4)
    ids = queued_jobs(store, 2)
    store.claim_jobs("alive", "h", 1)
    store.claim_jobs("dead", "h", 1)
    assert [j.job_id for j in store.orphaned_jobs()] == [ids[1]]


def test_job_backends_are_found_by_application_name(store: JobStore, dsn: str) -> None:
    (job_id,) = queued_jobs(store, 1)
    with psycopg.connect(dsn, application_name=f"tapd job {job_id}") as runner:
        assert len(store.job_sessions(job_id)) == 1
        assert store.terminate_job_backends(job_id) == 1
        with pytest.raises(psycopg.OperationalError):
            runner.execute("SELECT 1")
    assert store.job_sessions(job_id) == []


def test_sweeper_aborts_then_forgets_jobs_past_destruction(store: JobStore) -> None:
    """(UWS-61, D-05)"""
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=10)
    running = store.create_job({}, execution_duration=60, destruction=past, queue=True).job_id
    store.claim_jobs("r1", "h", 1)
    ended = store.create_job({}, execution_duration=60, destruction=past).job_id
    store.abort_job(ended)
    store.conn.execute(
        "UPDATE tapd.jobs SET end_time = now() - interval '1 minute' WHERE job_id = %s", (ended,)
    )
    kept = store.create_job({}, execution_duration=60, destruction=None).job_id
    assert store.abort_expired_jobs() == [running]
    assert store.delete_expired_jobs() == [ended]  # the just-aborted one waits a sweep
    store.conn.execute(
        "UPDATE tapd.jobs SET end_time = now() - interval '1 minute' WHERE job_id = %s", (running,)
    )
    assert store.delete_expired_jobs() == [running]
    assert [j.job_id for j in store.list_jobs()] == [kept]


def test_a_rehearsed_job_leaves_no_trace(store: JobStore, dsn: str) -> None:
    """A spare's rehearsal of a job's life is rolled back: no row, no NOTIFY,
    and a real job afterwards still goes QUEUED -> EXECUTING -> COMPLETED."""
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute('LISTEN "tapd.phase"')
        listener.execute('LISTEN "tapd.queue"')
        store.rehearse_job("r1")
        assert store.list_jobs() == []
        (job_id,) = queued_jobs(store, 1)
        notifies = listener.notifies()
        first = next(notifies)  # the real job's, not one of the rehearsal's
        notifies.close()
    assert first.channel == "tapd.phase" and json.loads(first.payload)["job_id"] == job_id
    (claimed,) = store.claim_jobs("r1", "host-a", 1)
    assert store.finish_job(claimed.attempt, JobPhase.COMPLETED)
    assert claimed.job_id == job_id and store.get_job(job_id).phase == JobPhase.COMPLETED


def test_direct_connections_carry_their_name_and_fail_in_one_line(dsn: str) -> None:
    conn = connect_direct(dsn, application_name="tapd spare 42")
    try:
        assert conn.autocommit
        assert conn.execute("SHOW application_name").fetchone() == ("tapd spare 42",)
    finally:
        conn.close()
    with pytest.raises(DatabaseUnavailable) as info:
        connect_direct(dsn + " port=1", application_name="x")
    assert "cannot connect to PostgreSQL" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(DatabaseUnavailable, match="malformed database connection string"):
        connect_direct("host='unclosed", application_name="x")
