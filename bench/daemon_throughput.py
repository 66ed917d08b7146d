"""Throughput of 1,000 trivial jobs on one daemon with 4 slots, beside a pgbench floor.

    .venv/bin/python bench/daemon_throughput.py [--jobs 1000] [--repeat 3]

Starts a throwaway PostgreSQL with a 100-row table and one ``tapd run`` daemon
(``runner.max_jobs = 4``) as a subprocess; each run inserts ``--jobs`` QUEUED
jobs (``SELECT TOP 1 x FROM public.numbers``, VOTable results) in one
transaction and times from its commit until the last one is COMPLETED (read
from the phase-change NOTIFYs). Reports the median of ``--repeat`` runs in
jobs/s. Floor, same run and cluster: pgbench running the daemon's claim
statement, one claim per transaction, 4 clients. Target: over 200 jobs/s
(GAVO DaCHS: about 1 job/s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))

from daemon_site import PhaseListener, bench_site, pgbench_claim_rate

from tapd.store import JobStore


def run_once(site, jobs: int) -> float:
    listener = PhaseListener(site.dsn)
    with psycopg.connect(site.dsn) as conn:
        with conn.transaction():
            store = JobStore(conn)
            ids = {site.submit(store) for _ in range(jobs)}
        started = time.perf_counter()
    remaining = set(ids)
    while remaining:
        changes = listener.changes(60)
        if not changes:
            raise SystemExit(f"{len(remaining)} jobs still not done after 60 s of silence")
        for change in changes:
            if change["job_id"] in remaining and change["phase"] not in ("QUEUED", "EXECUTING"):
                if change["phase"] != "COMPLETED":
                    raise SystemExit(f"job {change['job_id']} ended {change['phase']}")
                remaining.discard(change["job_id"])
    elapsed = time.perf_counter() - started
    listener.close()
    return jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with bench_site(max_jobs=4) as site:
        floor = pgbench_claim_rate(site.cluster, clients=4)
        with site.daemon():
            rates = [run_once(site, args.jobs) for _ in range(args.repeat)]
    rate = statistics.median(rates)
    print(f"throughput, {args.jobs} trivial jobs, 4 slots, {args.repeat} runs:")
    print(f"  median {rate:.0f} jobs/s (runs: {', '.join(f'{r:.0f}' for r in rates)})")
    print(f"  floor: pgbench claim transactions, 4 clients: {floor:.0f} tps")
    print(
        f"  ratio median/floor: {rate / floor:.3f}; target > 200 jobs/s:"
        f" {'met' if rate > 200 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
