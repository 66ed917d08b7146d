"""The claim with a long queue: time of one claim with 100,000 queued jobs, and its plan.

    .venv/bin/python bench/claim_queue.py [--jobs 100000] [--repeat 200]

Starts a throwaway PostgreSQL, fills tapd's job table with ``--jobs`` QUEUED
jobs (plus 10,000 ended ones and 4 running) spread over a number of owners,
and times ``JobStore.claim_jobs`` taking 4 jobs, the way a daemon with 4 idle
spares does (its own transaction on an autocommit connection; with fair share,
``running_per_owner = 4`` so that one owner may take all four), ``--repeat``
times, putting the jobs back in the queue after each (not timed): median and
p95, client side, round trips included.
Owner mixes: all jobs from one owner; 100 owners with 1,000 each; 10,000
anonymous client addresses with 10 each; one owner's 99,000 jobs in front of
1,000 other owners' one each (the claim then asks every account). Beside
them, same run: ``SELECT 1`` (a round trip on the same connection). Prints the claim's plan (EXPLAIN
ANALYZE) for the 100-owner mix. Works with older tapd versions too (run it
with PYTHONPATH pointing at another checkout to compare).
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).parent))

from tapd.devcluster import DevCluster
from tapd.store import JobStore, initialise_schema
from tapd.store.queries import schema_queries

#: Owner mixes: name -> (column, SQL giving job g of the queue its owner or address).
MIXES = {
    "1 owner": ("owner", "'u0'"),
    "100 owners": ("owner", "'u' || (g %% 100)"),
    "10,000 anonymous addresses": ("client_address", "'u' || (g %% 10000)"),
    "1 owner's 99,000 in front of 1,000 owners": (
        "owner",
        "CASE WHEN g <= 99000 THEN 'u0' ELSE 'v' || (g %% 1000) END",
    ),
}


def fill(conn: psycopg.Connection[Any], jobs: int, column: str, identity: str) -> None:
    """``jobs`` queued jobs (``identity``: SQL of job g's owner or address, %% for %),
    4 running and 10,000 ended."""
    conn.execute("TRUNCATE tapd.jobs")
    conn.execute(
        f"INSERT INTO tapd.jobs (job_id, {column}, phase, execution_duration, parameters)"
        f" SELECT 'q' || g, {identity}, 'QUEUED', 60, '{{\"QUERY\": [\"SELECT 1\"]}}'::jsonb"
        " FROM generate_series(1, %s) g",
        (jobs,),
    )
    conn.execute(
        "INSERT INTO tapd.jobs (job_id, owner, phase, execution_duration)"
        " SELECT 'e' || g, 'u' || (g % 7), 'QUEUED', 60 FROM generate_series(1, 10004) g"
    )
    conn.execute(
        "UPDATE tapd.jobs SET phase = 'EXECUTING', runner_instance = 'other' WHERE job_id LIKE 'e%'"
    )
    conn.execute(
        "UPDATE tapd.jobs SET phase = 'COMPLETED'"
        " WHERE job_id LIKE 'e%' AND job_id NOT IN ('e1', 'e2', 'e3', 'e4')"
    )
    conn.execute("VACUUM ANALYZE tapd.jobs")


def claim_call(store: JobStore) -> Callable[[], list[str]]:
    """One claim of 4 jobs as a daemon with 4 idle spares makes it (any tapd version)."""
    runners = [(10_000 + i, 20_000 + i) for i in range(4)]
    extra: dict[str, Any] = {}
    if "running_per_owner" in inspect.signature(store.claim_jobs).parameters:
        extra = {"running_per_owner": 4, "heartbeat_timeout": 30.0}

    def claim() -> list[str]:
        jobs = store.claim_jobs("bench", "bench-host", 4, runners=runners, **extra)
        return [job.job_id for job in jobs]

    return claim


def timed(action: Callable[[], Any], conn: psycopg.Connection[Any], repeat: int) -> list[float]:
    """Milliseconds of each of ``repeat`` runs; claimed jobs go back to the queue."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        claimed = action()
        times.append(1000 * (time.perf_counter() - started))
        if isinstance(claimed, list) and claimed:
            conn.execute(
                "UPDATE tapd.jobs SET phase = 'QUEUED' WHERE job_id = ANY (%s)", (claimed,)
            )
    return sorted(times)


def explain(conn: psycopg.Connection[Any]) -> str:
    queries = schema_queries("tapd")
    params = {
        "instance": "bench",
        "host": "bench-host",
        "limit": 4,
        "pids": [1, 2, 3, 4],
        "backend_pids": [5, 6, 7, 8],
        "running_per_owner": 4,
        "heartbeat_timeout": 30.0,
    }
    with conn.transaction(force_rollback=True):
        rows = conn.execute(
            b"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + queries["claim_jobs"], params
        ).fetchall()
    return "\n".join(r[0] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tapd-bench-"))
    root.chmod(0o755)
    cluster = DevCluster(base_dir=root / "pg")
    cluster.start()
    try:
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            initialise_schema(conn)
            store = JobStore(conn)
            claim = claim_call(store)
            print(f"claim of 4 jobs with {args.jobs:,} queued, {args.repeat} runs (ms):")
            plan = ""
            for name, (column, identity) in MIXES.items():
                fill(conn, args.jobs, column, identity)
                timed(claim, conn, 5)  # warm up
                times = timed(claim, conn, args.repeat)
                floor = timed(lambda: conn.execute("SELECT 1"), conn, args.repeat)
                p95 = times[int(0.95 * (len(times) - 1))]
                print(
                    f"  {name:>42}: median {statistics.median(times):.2f}, p95 {p95:.2f},"
                    f" min {times[0]:.2f}; SELECT 1 {statistics.median(floor):.2f}"
                )
                if name == "100 owners":
                    plan = explain(conn)
            print("plan, 100 owners:")
            print(plan)
    finally:
        cluster.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
