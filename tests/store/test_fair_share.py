"""Fair share in the claim: the oldest job of the account (owner, or anonymous client
address) running the fewest goes first; an account at ``limits.running_per_owner``
waits; claims of several daemons take turns so the limit holds."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapd.store import JobPhase, JobStore
from tapd.store.queries import schema_queries


@dataclass(frozen=True)
class Who:
    owner: str | None = None
    address: str | None = None


A, B, C = Who("alice"), Who("bob"), Who("carol")


def queue(store: JobStore, who: Who, n: int = 1) -> list[str]:
    return [
        store.create_job(
            {},
            execution_duration=60,
            destruction=None,
            owner=who.owner,
            client_address=who.address,
            queue=True,
        ).job_id
        for _ in range(n)
    ]


def running(store: JobStore, who: Who, n: int) -> None:
    """``who`` runs ``n`` jobs on another daemon (call before queueing anything else)."""
    queue(store, who, n)
    assert len(store.claim_jobs("other", "h", n, running_per_owner=None)) == n


def claim(store: JobStore, n: int, cap: int | None) -> set[str]:
    """The jobs one claim takes."""
    return {j.job_id for j in store.claim_jobs("me", "h", n, running_per_owner=cap)}


def test_the_oldest_job_of_the_account_running_fewest_goes_first(store: JobStore) -> None:
    running(store, A, 2)
    old = queue(store, A, 3)
    new = queue(store, B)
    assert claim(store, 1, cap=10) == set(new)  # B runs nothing: before A's older jobs
    assert claim(store, 1, cap=10) == set(old[:1])
    assert claim(store, 5, cap=10) == set(old[1:])


def test_one_claim_spreads_its_jobs_over_the_accounts(store: JobStore) -> None:
    a = queue(store, A, 5)
    b = queue(store, B, 2)
    c = queue(store, C)
    # first each account's oldest (load 1), then each one's second (load 2)
    assert claim(store, 4, cap=None) == {a[0], b[0], c[0], a[1]}  # a[1] older than b[1]
    assert claim(store, 5, cap=None) == {b[1], a[2], a[3], a[4]}


def test_an_account_at_its_running_limit_waits_while_slots_are_free(store: JobStore) -> None:
    running(store, A, 2)
    waiting = queue(store, A, 3)
    other = queue(store, B)
    assert claim(store, 4, cap=2) == set(other)
    assert claim(store, 4, cap=2) == set()
    assert {store.get_job(j).phase for j in waiting} == {JobPhase.QUEUED}
    assert claim(store, 4, cap=3) == set(waiting[:1])  # a raised limit lets one more start


def test_anonymous_clients_count_per_address(store: JobStore) -> None:
    here, there = Who(address="192.0.2.1"), Who(address="192.0.2.2")
    named_like_address = Who(owner="192.0.2.1")
    running(store, here, 1)
    mine = queue(store, here, 2)
    theirs = queue(store, there)
    named = queue(store, named_like_address)
    assert claim(store, 4, cap=1) == {*theirs, *named}
    assert {store.get_job(j).phase for j in mine} == {JobPhase.QUEUED}


def test_the_default_limit_is_half_the_live_daemons_slots(store: JobStore) -> None:
    queue(store, A, 10)
    assert len(claim(store, 10, cap=0)) == 1  # no daemon alive: at least 1
    store.register_runner("r1", host="h", boot_id="b", pid=1, max_jobs=4)
    store.register_runner("r2", host="h", boot_id="b", pid=2, max_jobs=3)
    store.register_runner("old", host="h", boot_id="b", pid=3, max_jobs=50)
    store.conn.execute(
        "UPDATE tapd.runners SET heartbeat = now() - interval '1 hour' WHERE instance = 'old'"
    )
    store.heartbeat("r2", running=0, max_jobs=3, stopping=True)  # stopping: not counted
    assert len(claim(store, 10, cap=0)) == 1  # 4 // 2 = 2 running in all
    store.heartbeat("r2", running=0, max_jobs=3)
    assert len(claim(store, 10, cap=0)) == 1  # (4 + 3) // 2 = 3


def test_claims_of_several_daemons_take_turns_so_the_limit_holds(store: JobStore, dsn: str) -> None:
    """A claim waits for the one before it to commit, then counts its jobs: two
    daemons woken by the same NOTIFY do not both start an owner's jobs."""
    queue(store, A, 10)
    with psycopg.connect(dsn, autocommit=True) as first_conn:
        first = JobStore(first_conn)
        results: list[set[str]] = []
        with first_conn.transaction():
            assert len(first.claim_jobs("d1", "h", 4, running_per_owner=2)) == 2

            def second_claim() -> None:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    results.append(claim(JobStore(conn), 4, cap=2))

            thread = threading.Thread(target=second_claim)
            thread.start()
            deadline = time.monotonic() + 30
            while not store.conn.execute(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone():
                assert time.monotonic() < deadline, "the second claim did not wait"
                time.sleep(0.01)
        thread.join(30)
    assert results == [set()]
    assert len(store.list_jobs(phases=[JobPhase.EXECUTING])) == 2


# -- the SQL against a plain statement of the rule -------------------------------


def fair_claim(
    queued: list[tuple[str, str]], runs: Counter[str], cap: int | None, limit: int
) -> list[str]:
    """(account, job id) queued oldest first -> the job ids a claim takes, in order."""
    candidates = []
    by_account: dict[str, list[str]] = {}
    for position, (account, job_id) in enumerate(queued):
        by_account.setdefault(account, []).append(f"{position:05}:{job_id}")
    for account, jobs in by_account.items():
        allowed = limit if cap is None else max(0, min(limit, cap - runs[account]))
        for rank, job in enumerate(jobs[:allowed], start=1):
            candidates.append((runs[account] + rank, job))
    return [job.split(":")[1] for _, job in sorted(candidates)[:limit]]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    owners=st.lists(st.sampled_from("abc"), min_size=0, max_size=12),
    runs=st.dictionaries(st.sampled_from("abc"), st.integers(0, 3)),
    cap=st.one_of(st.none(), st.integers(1, 4)),
    limit=st.integers(1, 5),
)
def test_claim_follows_the_fair_share_rule(
    store: JobStore, owners: list[str], runs: dict[str, int], cap: int | None, limit: int
) -> None:
    store.conn.execute("TRUNCATE tapd.jobs")
    for owner, n in runs.items():
        if n:
            running(store, Who(owner), n)
    queued = [(f"owner:{o}", queue(store, Who(o))[0]) for o in owners]
    counts = Counter({f"owner:{o}": n for o, n in runs.items()})
    assert claim(store, limit, cap) == set(fair_claim(queued, counts, cap, limit))


# -- how the claim finds the accounts, and stays cheap ---------------------------------


def test_one_accounts_many_jobs_in_front_do_not_hide_the_others(store: JobStore) -> None:
    """The head of the queue is all alice's (she runs a job already): bob's
    job behind her 40 queued ones is found and goes first."""
    running(store, A, 1)
    queue(store, A, 40)
    bobs = queue(store, B)
    assert claim(store, 1, cap=None) == set(bobs)


def test_an_account_is_read_through_its_own_index_whatever_the_statistics(
    store: JobStore,
) -> None:
    """Statistics taken while alice's 5,000 jobs were the whole queue must not
    make the claim look for bob's job by walking past all of hers."""
    running(store, A, 1)
    store.conn.execute(
        "INSERT INTO tapd.jobs (job_id, owner, phase, execution_duration)"
        " SELECT 'a' || g, 'alice', 'QUEUED', 60 FROM generate_series(1, 5000) AS g"
    )
    store.conn.execute("ANALYZE tapd.jobs")
    bobs = queue(store, B)
    params = {
        "instance": "me",
        "host": "h",
        "limit": 1,
        "pids": None,
        "backend_pids": None,
        "running_per_owner": None,
        "heartbeat_timeout": 30.0,
    }
    with store.conn.transaction(force_rollback=True):
        plan = store.conn.execute(
            b"EXPLAIN (ANALYZE, FORMAT JSON) " + schema_queries("tapd")["claim_jobs"], params
        ).fetchone()[0]
    assert most_rows_read(plan[0]["Plan"]) < 100
    assert claim(store, 1, cap=None) == set(bobs)


def most_rows_read(node: dict[str, Any]) -> float:
    """The most rows any scan of the plan read (returned plus filtered out), per loop."""
    here = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
    here = here if "Scan" in node["Node Type"] else 0
    return max([here, *(most_rows_read(child) for child in node.get("Plans", []))])


def test_a_job_queued_with_triggers_bypassed_runs_in_its_turn(
    store: JobStore,
) -> None:
    with store.conn.transaction():
        store.conn.execute("SET LOCAL session_replication_role = replica")  # no triggers
        store.conn.execute(
            "INSERT INTO tapd.jobs (job_id, owner, phase, queued_time, execution_duration)"
            " VALUES ('silent', 'dave', 'QUEUED', now() - interval '1 minute', 60)"
        )
    later = queue(store, B)
    assert claim(store, 1, cap=None) == {"silent"}  # the oldest job
    assert claim(store, 1, cap=None) == set(later)
