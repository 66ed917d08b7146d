"""The floor under the daemon's throughput: what its design costs per job, and nothing else.

    .venv/bin/python bench/daemon_floor.py DSN --jobs 1000 [--slots 4] [--schema floor]

Issue 2 fixes the shape of a job's life: a child process forked from the warm
daemon per job and a new PostgreSQL backend per child, a claim statement and a
final-phase statement. This script does exactly that and nothing more: it warms
up like ``tapd run`` (``tapd.daemon.loop.warm_up_for_children``), then keeps
``--slots`` children alive; each connects, claims one job of ``--schema`` (a
copy of the job tables filled with queued jobs by ``fill_floor_queue``), ends it
COMPLETED with its own connection and exits. No parameters, ADQL, query or
result file. Prints the jobs/s it reached and the milliseconds of CPU its
process tree used per job after the warm-up (the server's share is measured by
the caller). ``--fork-only``: the children exit at once (fork and exit alone).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import psycopg

from tapd.store import JobStore, initialise_schema
from tapd.store.queries import schema_queries


def fill_floor_queue(dsn: str, jobs: int, schema: str = "floor") -> None:
    """A job table of its own in ``schema`` holding ``jobs`` queued jobs."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        initialise_schema(conn, schema)
        conn.execute(
            f'INSERT INTO "{schema}".jobs (job_id, phase, execution_duration, parameters)'
            " SELECT 'f' || g, 'QUEUED', 60, '{\"QUERY\": [\"SELECT 1\"]}'::jsonb"
            " FROM generate_series(1, %s) g",
            (jobs,),
        )


def child(dsn: str, queries: dict[str, bytes], schema: str) -> int:
    """One job's unavoidable database work, on a new connection."""
    from tapd.store.connection import connect

    conn = connect(dsn, application_name=f"tapd floor {os.getpid()}")
    # The daemon's claim (the claims' turn, then the fair claim), one job for this child.
    claimed = JobStore(conn, schema).claim_jobs(
        "floor", "floor", 1, runners=[(os.getpid(), conn.info.backend_pid)]
    )
    row = claimed[0] if claimed else None
    if row is not None:
        params: dict[str, Any] = {
            "job_id": row.job_id,
            "attempt": row.attempts,
            "instance": "floor",
            "phase": "COMPLETED",
            "results": psycopg.types.json.Jsonb([]),
            "error_type": None,
            "error_message": None,
            "error_has_detail": False,
        }
        conn.execute(queries["finish_job"], params)
    conn.close()
    return 0 if row is not None else 1


def _cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def run(
    dsn: str, jobs: int, slots: int, schema: str, fork_only: bool = False
) -> tuple[float, float]:
    """Fork a child per job, ``slots`` at a time; jobs/s and ms of CPU per job
    (this process and its children, after the warm-up). ``fork_only``: the
    children exit at once."""
    from tapd.daemon.loop import warm_up_for_children

    warm_up_for_children()
    queries = schema_queries(schema)
    started = time.perf_counter()
    cpu = _cpu()
    running = done = forked = 0
    while done < jobs:
        while running < slots and forked < jobs:
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                status = 70
                try:
                    status = 0 if fork_only else child(dsn, queries, schema)
                finally:
                    os._exit(status)
            forked += 1
            running += 1
        _, status = os.wait()
        running -= 1
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"a floor child failed (status {status})")
        done += 1
    return jobs / (time.perf_counter() - started), 1000 * (_cpu() - cpu) / jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dsn")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--schema", default="floor")
    parser.add_argument("--fork-only", action="store_true", help="children exit at once")
    args = parser.parse_args()
    rate, cpu_ms = run(args.dsn, args.jobs, args.slots, args.schema, args.fork_only)
    print(f"{rate:.1f} {cpu_ms:.3f}")


if __name__ == "__main__":
    main()
