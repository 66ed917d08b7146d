"""Throughput of 1,000 trivial jobs on one daemon with 4 slots, beside its floors.

    .venv/bin/python bench/daemon_throughput.py [--jobs 1000] [--repeat 3]

Starts a throwaway PostgreSQL with a 100-row table and one ``tapd run`` daemon
(``runner.max_jobs = 4``) as a subprocess; each run inserts ``--jobs`` QUEUED
jobs (``SELECT TOP 1 x FROM public.numbers``, VOTable results) in one
transaction and times from its commit until the last one is COMPLETED (read
from the phase-change NOTIFYs). Reports the median of ``--repeat`` runs in
jobs/s and the CPU each job cost (the daemon's process tree and PostgreSQL's).

Then the same through pgbouncer (session pooling, ``tapd.devcluster.DevPgBouncer``)
in front of the same cluster: each child's connection gets a server backend
that already exists instead of a new one (issue 14 item 5; the baseline is
the direct run of the same invocation). CPU per job then adds pgbouncer's.
``--no-pgbouncer`` leaves that pass out.

Floors, same run and cluster:
- pgbench running the daemon's claim statement, one claim per transaction, 4
  clients (what PostgreSQL alone can do per claim);
- the bound of the design: issue 2 asks for a new process forked from the warm
  daemon and a new PostgreSQL backend per job. ``pgbench -C`` runs the claim
  with a new connection per transaction, ``bench/daemon_floor.py --fork-only``
  forks and ends children of a process warmed up like the daemon; their CPU
  per job added up, spread over every core, bounds the jobs/s of any runner of
  this design before it does any of the job's work;
- the design floor (``bench/daemon_floor.py``): that, done from Python with
  psycopg as tapd's children do: per job a forked child, a new connection, the
  claim and the final-phase statement, exit; 4 at a time.
Target: over 200 jobs/s (GAVO DaCHS: about 1 job/s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))

from daemon_site import (
    CpuPerJob,
    PhaseListener,
    Site,
    bench_site,
    design_floor,
    pgbench_claim,
    tree_cpu,
)

from tapd.devcluster import DevPgBouncer
from tapd.store import JobStore


def run_once(
    site: Site, jobs: int, daemon_pid: int, pooler_pid: int | None = None
) -> tuple[float, CpuPerJob]:
    listener = PhaseListener(site.dsn)
    with psycopg.connect(site.dsn) as conn:
        with conn.transaction():
            store = JobStore(conn)
            ids = {site.submit(store) for _ in range(jobs)}
        client_before = tree_cpu(daemon_pid)
        server_before = tree_cpu(site.postmaster_pid)
        pooler_before = tree_cpu(pooler_pid) if pooler_pid else 0.0
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
    pooler = (tree_cpu(pooler_pid) - pooler_before) if pooler_pid else 0.0
    cpu = CpuPerJob(
        1000 * (tree_cpu(daemon_pid) - client_before) / jobs,
        1000 * (tree_cpu(site.postmaster_pid) - server_before + pooler) / jobs,
    )
    listener.close()
    return jobs / elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-pgbouncer", action="store_true", help="leave out the pooled pass")
    args = parser.parse_args()
    pooled: list[tuple[float, CpuPerJob]] = []
    with bench_site(max_jobs=4) as site:
        floor, _ = pgbench_claim(site.cluster, clients=4)
        with site.daemon() as daemon:
            runs = [run_once(site, args.jobs, daemon.pid) for _ in range(args.repeat)]
        if not args.no_pgbouncer:
            with DevPgBouncer(site.cluster) as bouncer, site.daemon(bouncer.dsn()) as daemon:
                assert bouncer.process is not None
                pooled = [
                    run_once(site, args.jobs, daemon.pid, bouncer.process.pid)
                    for _ in range(args.repeat)
                ]
        connect_rate, connect_cpu = pgbench_claim(site.cluster, clients=4, new_connection=True)
        fork_rate, fork_cpu = design_floor(site, args.jobs, slots=4, fork_only=True)
        design_rate, design_cpu = design_floor(site, args.jobs, slots=4)
    cores = os.cpu_count() or 1
    bound = 1000 * cores / (connect_cpu.total + fork_cpu.total)
    rates = [rate for rate, _ in runs]
    rate = statistics.median(rates)
    cpu = CpuPerJob(
        statistics.median(c.client for _, c in runs), statistics.median(c.server for _, c in runs)
    )
    print(f"throughput, {args.jobs} trivial jobs, 4 slots, {args.repeat} runs:")
    print(f"  median {rate:.0f} jobs/s (runs: {', '.join(f'{r:.0f}' for r in rates)}); {cpu}")
    print(f"  floor: pgbench claim transactions, 4 clients: {floor:.0f} tps")
    print(
        f"  pgbench -C (new connection per claim), 4 clients: {connect_rate:.0f} tps; {connect_cpu}"
    )
    print(f"  fork + exit of the warm daemon, 4 at a time: {fork_rate:.0f}/s; {fork_cpu}")
    print(
        f"  bound of the design on {cores} cores (their CPU added up): {bound:.0f} jobs/s;"
        f" median/bound: {rate / bound:.2f}"
    )
    print(
        f"  design floor (fork + new backend + claim + end per job, 4 at a time):"
        f" {design_rate:.0f} jobs/s; {design_cpu}"
    )
    print(
        f"  ratio median/pgbench floor: {rate / floor:.3f}; median/design floor:"
        f" {rate / design_rate:.2f}; CPU per job, tapd/design floor:"
        f" {cpu.total / design_cpu.total:.2f}"
    )
    print(f"  target > 200 jobs/s: {'met' if rate > 200 else 'NOT met'}")
    if pooled:
        pooled_rate = statistics.median(r for r, _ in pooled)
        pooled_cpu = CpuPerJob(
            statistics.median(c.client for _, c in pooled),
            statistics.median(c.server for _, c in pooled),
        )
        print("through pgbouncer (session pooling), same jobs and slots:")
        print(
            f"  median {pooled_rate:.0f} jobs/s (runs: {', '.join(f'{r:.0f}' for r, _ in pooled)});"
            f" {pooled_cpu} (PostgreSQL's includes pgbouncer's)"
        )
        print(
            f"  pgbouncer/direct: {pooled_rate / rate:.2f}x jobs/s,"
            f" server CPU per job {pooled_cpu.server:.1f} vs {cpu.server:.1f} ms;"
            f" goal >= 1.5x the direct rate: {'met' if pooled_rate >= 1.5 * rate else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
