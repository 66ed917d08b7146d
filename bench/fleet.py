"""The fleet of tests/fleet: waiting jobs on one app host versus two, and small queries
on a standby versus the primary, in one run (as root).

    sudo .venv/bin/python bench/fleet.py [--jobs-per-slot 15] [--repeat 3] [--queries 200]

Builds the fleet (network namespaces: etcd, two Patroni nodes with synchronous
replication, two application hosts with 4 slots each; ``tests.fleet.topology``).

Throughput: jobs that wait rather than compute (``SELECT x FROM public.pause``,
a view over 0.5 s of ``pg_sleep``), inserted QUEUED in one transaction, timed
from its commit to the last COMPLETED (phase-change NOTIFYs); first with only
app1's daemon running, then with both. The ideal is 8 jobs/s per host (4
slots / 0.5 s); two hosts should reach 1.8 times one (goal). Jobs that
compute cannot scale like this here: every host of the fleet shares the same
2 cores, so CPU-bound jobs run no faster on two "hosts" than on one.

Latency: /sync of a one-row query through app1, sequentially over one
keep-alive connection, with ``database.query_dsn`` reaching the standby (as
configured), then with it empty (queries on the primary); medians.
"""

from __future__ import annotations

import argparse
import json
import selectors
import statistics
import sys
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tapd.store import JobStore, phase_channel
from tests.fleet.topology import Fleet, missing_prerequisite, running_fleet

WAITING_QUERY = "SELECT x FROM public.pause"
SMALL_QUERY = "SELECT TOP 1 x FROM public.numbers"


def run_waiting_jobs(fleet: Fleet, jobs: int) -> float:
    """jobs/s of ``jobs`` waiting jobs, from their commit to the last COMPLETED."""
    with psycopg.connect(fleet.dsn(), autocommit=True) as listener:
        listener.execute(f'LISTEN "{phase_channel("tapd")}"')
        selector = selectors.DefaultSelector()
        selector.register(listener.fileno(), selectors.EVENT_READ)
        with psycopg.connect(fleet.dsn()) as conn:
            with conn.transaction():
                store = JobStore(conn)
                remaining = {
                    store.create_job(
                        {"LANG": "ADQL", "QUERY": WAITING_QUERY},
                        execution_duration=120,
                        destruction=None,
                        queue=True,
                    ).job_id
                    for _ in range(jobs)
                }
            started = time.perf_counter()
        while remaining:
            if not selector.select(60):
                raise SystemExit(f"{len(remaining)} jobs still running after 60 s of silence")
            listener.pgconn.consume_input()
            while (notify := listener.pgconn.notifies()) is not None:
                change = json.loads(notify.extra)
                if change["job_id"] in remaining and change["phase"] not in ("QUEUED", "EXECUTING"):
                    if change["phase"] != "COMPLETED":
                        raise SystemExit(f"job {change['job_id']} ended {change['phase']}")
                    remaining.discard(change["job_id"])
        return jobs / (time.perf_counter() - started)


def sync_latency(url: str, queries: int) -> float:
    """Median milliseconds of a one-row /sync query."""
    times = []
    with httpx.Client(timeout=30) as client:
        data = {"LANG": "ADQL", "QUERY": SMALL_QUERY, "FORMAT": "csv"}
        for _ in range(20):  # warm the connection, the pools and the plans
            client.post(f"{url}/sync", data=data).raise_for_status()
        for _ in range(queries):
            begin = time.perf_counter()
            client.post(f"{url}/sync", data=data).raise_for_status()
            times.append(1000 * (time.perf_counter() - begin))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs-per-slot", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    reason = missing_prerequisite()
    if reason:
        raise SystemExit(reason)
    with running_fleet() as fleet:
        app1 = fleet.apps["app1"]
        slots = int(app1.settings["runner"]["max_jobs"])
        with fleet.only_runner(app1):
            one = [run_waiting_jobs(fleet, slots * args.jobs_per_slot) for _ in range(args.repeat)]
        two = [run_waiting_jobs(fleet, 2 * slots * args.jobs_per_slot) for _ in range(args.repeat)]
        on_standby = sync_latency(app1.url, args.queries)
        app1.stop_server()
        app1.write_config(database={"query_dsn": ""})
        app1.start_server()
        on_primary = sync_latency(app1.url, args.queries)
    rate_one, rate_two = statistics.median(one), statistics.median(two)
    ideal = slots / 0.5
    print(f"waiting jobs (0.5 s of pg_sleep each), {slots} slots per host, {args.repeat} runs:")
    for label, rate, runs, best in (
        ("one app host: ", rate_one, one, ideal),
        ("two app hosts:", rate_two, two, 2 * ideal),
    ):
        listed = ", ".join(f"{r:.1f}" for r in runs)
        print(f"  {label} median {rate:.1f} jobs/s (runs: {listed}); ideal {best:.0f}")
    ratio = rate_two / rate_one
    print(f"  two/one: {ratio:.2f}x; goal >= 1.8x: {'met' if ratio >= 1.8 else 'NOT met'}")
    print("  (jobs that compute share the same 2 cores on every host here: they cannot scale)")
    print(f"one-row /sync through app1, median of {args.queries}:")
    print(f"  query on the standby: {on_standby:.2f} ms; on the primary: {on_primary:.2f} ms;")
    print(f"  standby/primary: {on_standby / on_primary:.2f}")


if __name__ == "__main__":
    main()
