"""Jobs as HTTP and the CLI see them: create, parameters, run, abort, list, delete."""

from __future__ import annotations

import datetime as dt
import json
import re

import psycopg
import pytest

from tapd.store import (
    JobNotFound,
    JobPhase,
    JobStore,
    PhaseConflict,
    phase_channel,
    queue_channel,
)


def new_job(store: JobStore, **parameters: str) -> str:
    return store.create_job(parameters, execution_duration=60, destruction=None).job_id


def notifications(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Notifications already delivered to ``conn`` (a round trip collects them)."""
    received: list[tuple[str, str]] = []
    conn.add_notify_handler(lambda n: received.append((n.channel, n.payload)))
    conn.execute("SELECT 1")
    return received


def test_new_job_is_pending_with_a_random_url_safe_id(store: JobStore) -> None:
    """(UWS-02, UWS-30)"""
    ids = {new_job(store) for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[a-z2-7]{26}", i) for i in ids)  # 130 random bits
    assert store.get_job(ids.pop()).phase == JobPhase.PENDING


def test_creation_sets_times_quote_and_run_id(store: JobStore) -> None:
    """(D-08, UWS-15, UWS-20)"""
    destruction = dt.datetime(2040, 1, 1, tzinfo=dt.UTC)
    job = store.create_job(
        {"runid": "mine", "QUERY": "SELECT 1"}, execution_duration=30, destruction=destruction
    )
    assert job.run_id == "mine"
    assert job.destruction == destruction
    assert job.quote is not None and job.quote - job.creation_time == dt.timedelta(seconds=30)
    assert job.start_time is None and job.end_time is None


def test_parameter_names_are_case_insensitive_and_a_later_post_replaces(store: JobStore) -> None:
    """(DALI-01, TAP-18)"""
    job_id = new_job(store, query="SELECT 1", lang="ADQL")
    job = store.set_parameters(job_id, [("Query", "SELECT 2"), ("runId", "r2"), ("FOO", "x")])
    assert job.parameters == {
        "QUERY": ("SELECT 2",),
        "LANG": ("ADQL",),
        "RUNID": ("r2",),
        "FOO": ("x",),
    }
    assert job.run_id == "r2"


def test_repeated_parameter_in_one_post_keeps_every_value_for_the_runner_to_refuse(
    store: JobStore,
) -> None:
    """(DALI-02)"""
    job = store.create_job([("QUERY", "a"), ("query", "b")], execution_duration=1, destruction=None)
    assert job.parameters["QUERY"] == ("a", "b")


def test_upload_values_accumulate_across_posts(store: JobStore) -> None:
    job_id = store.create_job(
        {"UPLOAD": "t1,http://x/1"}, execution_duration=60, destruction=None
    ).job_id
    job = store.set_parameters(job_id, {"upload": ["t2,param:p2", "t3,param:p3"]})
    assert job.parameters["UPLOAD"] == ("t1,http://x/1", "t2,param:p2", "t3,param:p3")


def test_parameters_are_frozen_once_the_job_leaves_pending(store: JobStore) -> None:
    """(D-09, UWS-47)"""
    job_id = new_job(store, QUERY="SELECT 1")
    store.queue_job(job_id)
    with pytest.raises(PhaseConflict, match="QUEUED: its parameters can only change while PENDING"):
        store.set_parameters(job_id, {"QUERY": "SELECT 2"})
    assert store.get_job(job_id).parameters["QUERY"] == ("SELECT 1",)


def test_unknown_job_id_is_job_not_found(store: JobStore) -> None:
    for action in (
        lambda: store.get_job("nosuchjob"),
        lambda: store.queue_job("nosuchjob"),
        lambda: store.abort_job("nosuchjob"),
        lambda: store.delete_job("nosuchjob"),
        lambda: store.set_parameters("nosuchjob", {"A": "1"}),
        lambda: store.set_destruction("nosuchjob", dt.datetime.now(dt.UTC)),
    ):
        with pytest.raises(JobNotFound, match="no job with id 'nosuchjob'"):
            action()


def test_run_queues_the_job_and_wakes_runners_in_the_same_transaction(
    store: JobStore, dsn: str
) -> None:
    """(UWS-32, D-07)"""
    job_id = new_job(store)
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute(f'LISTEN "{queue_channel("tapd")}"')
        listener.execute(f'LISTEN "{phase_channel("tapd")}"')
        job = store.queue_job(job_id)
        received = notifications(listener)
    assert job.phase == JobPhase.QUEUED and job.queued_time is not None
    assert ("tapd.queue", "") in received
    phase_events = [json.loads(p) for c, p in received if c == "tapd.phase"]
    assert phase_events == [
        {"job_id": job_id, "phase": "QUEUED", "old_phase": "PENDING", "runner": None}
    ]


def test_run_of_a_finished_job_is_refused_and_changes_nothing(store: JobStore) -> None:
    """(UWS-31)"""
    job_id = new_job(store)
    store.abort_job(job_id)
    with pytest.raises(PhaseConflict, match="ABORTED: it cannot be run again"):
        store.queue_job(job_id)
    assert store.get_job(job_id).phase == JobPhase.ABORTED


def test_abort_sets_aborted_with_end_time_and_a_message(store: JobStore) -> None:
    job_id = new_job(store)
    store.queue_job(job_id)
    job = store.abort_job(job_id)
    assert job.phase == JobPhase.ABORTED
    assert job.end_time is not None
    assert job.error is not None and "aborted" in job.error.message
    assert store.abort_job(job_id).phase == JobPhase.ABORTED  # again: no-op


def test_a_completed_job_cannot_be_aborted(store: JobStore) -> None:
    """(UWS-31)"""
    job_id = new_job(store)
    store.queue_job(job_id)
    (claimed,) = store.claim_jobs("runner-1", "host", 1)
    store.finish_job(claimed.attempt, JobPhase.COMPLETED)
    with pytest.raises(PhaseConflict, match="COMPLETED: there is nothing to abort"):
        store.abort_job(job_id)


def test_job_list_filters_by_phase_after_last_and_owner(store: JobStore) -> None:
    """(UWS-23, UWS-24)"""
    a = store.create_job({}, execution_duration=1, destruction=None, owner="alice").job_id
    b = store.create_job({}, execution_duration=1, destruction=None, owner="bob").job_id
    c = store.create_job({}, execution_duration=1, destruction=None).job_id
    store.queue_job(b)
    ids = lambda jobs: [j.job_id for j in jobs]  # noqa: E731
    assert ids(store.list_jobs()) == [c, b, a]  # newest first
    assert ids(store.list_jobs(phases=["QUEUED"])) == [b]
    assert ids(store.list_jobs(phases=[JobPhase.PENDING, JobPhase.QUEUED])) == [c, b, a]
    assert ids(store.list_jobs(last=2)) == [c, b]
    assert ids(store.list_jobs(owner="alice")) == [a]
    assert ids(store.list_jobs(owner=None)) == [c]
    after = store.get_job(a).creation_time
    assert ids(store.list_jobs(after=after)) == [c, b]


def test_archived_jobs_are_listed_only_when_asked_for(store: JobStore) -> None:
    """(UWS-22, UWS-23)"""
    job_id = new_job(store)
    store.abort_job(job_id)
    store.conn.execute("UPDATE tapd.jobs SET phase = 'ARCHIVED' WHERE job_id = %s", (job_id,))
    assert store.list_jobs() == []
    assert [j.job_id for j in store.list_jobs(phases=["ARCHIVED"])] == [job_id]


def test_delete_aborts_a_running_job_then_forgets_it(store: JobStore, dsn: str) -> None:
    """(UWS-43)"""
    job_id = new_job(store)
    store.queue_job(job_id)
    store.claim_jobs("runner-1", "host", 1)
    with psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute('LISTEN "tapd.phase"')
        last = store.delete_job(job_id)
        received = [json.loads(p) for _, p in notifications(listener)]
    assert last.phase == JobPhase.ABORTED
    (change,) = received
    assert change.pop("seconds") >= 0  # how long it ran
    assert change == {
        "job_id": job_id,
        "phase": "ABORTED",
        "old_phase": "EXECUTING",
        "runner": "runner-1",
        "bytes": None,
    }
    with pytest.raises(JobNotFound):
        store.get_job(job_id)


def test_execution_duration_changes_only_before_the_job_runs(store: JobStore) -> None:
    job_id = new_job(store)
    assert store.set_execution_duration(job_id, 120).execution_duration == 120
    store.queue_job(job_id)
    store.claim_jobs("runner-1", "host", 1)
    with pytest.raises(PhaseConflict, match="EXECUTING"):
        store.set_execution_duration(job_id, 5)


def test_phase_counts(store: JobStore) -> None:
    for _ in range(3):
        new_job(store)
    store.queue_job(new_job(store))
    assert store.phase_counts() == {JobPhase.PENDING: 3, JobPhase.QUEUED: 1}
