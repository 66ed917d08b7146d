"""Submit-to-COMPLETED latency of one trivial job, beside a pgbench claim floor.

    .venv/bin/python bench/daemon_latency.py [--repeat 50]

Starts a throwaway PostgreSQL with a 100-row table, one ``tapd run`` daemon (4
slots) as a subprocess, and then ``--repeat`` times: inserts one QUEUED job
(``SELECT TOP 1 x FROM public.numbers``, VOTable result) and waits for the
phase-change NOTIFY saying it is COMPLETED; the clock runs from just before the
INSERT to that notification. Floor, same run and cluster: the latency of one
pgbench claim transaction with 1 client (1000 / its tps). Target: median
under 15 ms (GAVO DaCHS: about 1.4 s).
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


def measure(site, repeat: int) -> list[float]:
    listener = PhaseListener(site.dsn)
    latencies = []
    with psycopg.connect(site.dsn, autocommit=True) as conn:
        store = JobStore(conn)
        for _ in range(repeat):
            started = time.perf_counter()
            job_id = site.submit(store)
            while True:
                changes = listener.changes(30)
                if not changes:
                    raise SystemExit(f"job {job_id} did not complete within 30 s")
                done = [
                    c
                    for c in changes
                    if c["job_id"] == job_id
                    and c["phase"] != "EXECUTING"
                    and c["phase"] != "QUEUED"
                ]
                if done:
                    if done[0]["phase"] != "COMPLETED":
                        raise SystemExit(f"job {job_id} ended {done[0]['phase']}")
                    break
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.2)  # the slot's next spare forks and connects (not measured)
    listener.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    with bench_site() as site:
        floor_tps = pgbench_claim_rate(site.cluster, clients=1)
        with site.daemon():
            measure(site, 3)  # warm the cluster's caches
            latencies = sorted(measure(site, args.repeat))
    median = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    floor_ms = 1000 / floor_tps
    print(f"submit-to-COMPLETED latency, trivial job, {args.repeat} runs:")
    print(f"  median {median:.1f} ms, p95 {p95:.1f} ms, min {latencies[0]:.1f} ms")
    print(
        f"  floor: one pgbench claim transaction {floor_ms:.2f} ms ({floor_tps:.0f} tps, 1 client)"
    )
    print(
        f"  ratio median/floor: {median / floor_ms:.1f}x; target median < 15 ms:"
        f" {'met' if median < 15 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
