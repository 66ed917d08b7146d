"""The ``tapd`` command as an operator feels it: start-up and abort latency.

    .venv/bin/python bench/cli_latency.py [--runs 30] [--aborts 20]
        [--python /usr/bin/python3 --path .venv-debian/lib/python3.11/site-packages]

Start-up: ``PY -m tapd jobs --help`` and the yardstick ``PY -c pass`` run in
turn (A B A B ...), ``--runs`` pairs, each timed from start to exit (wall
clock, and the CPU the kernel accounts to the finished child); the ratio is
taken pair by pair, so the machine's drift during the run cancels out. PY is
``--python`` (default: this interpreter), with the checkout and any ``--path``
entries on PYTHONPATH, e.g. Debian's own python3 over the Debian versions of
the dependencies, as the Debian package runs. Target: median ratio <= 4.

Abort: a throwaway PostgreSQL, one ``tapd run`` daemon (4 slots), and
``--aborts`` times: a job running ``SELECT x FROM public.sleepy`` (a
``pg_sleep(600)`` view) is aborted with ``PY -m tapd abort JOBID``; the clock
runs from just before the command starts until the job is ABORTED (the phase
NOTIFY) and its query's backend has exited (its process is gone). Beside it,
same run: the same abort made by ``JobStore.abort_job`` on a connection that
is already open (what is left when the command's start-up and connection
cost nothing). Target: median under 150 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))

from daemon_site import PhaseListener, Site, bench_site

from tapd.catalog import publish_table
from tapd.store import JobPhase, JobStore

CHECKOUT = Path(__file__).resolve().parents[1]
SLEEPY_VIEW = "CREATE VIEW public.sleepy AS SELECT 1 AS x FROM pg_sleep(600)"


def timed_run(command: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s) of one run of ``command``, its output thrown away."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited with {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def command_env(paths: Sequence[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAPD_", "PYTHON"))}
    env["PYTHONPATH"] = os.pathsep.join([str(CHECKOUT), *paths])
    return env


def startup(python: str, paths: Sequence[str], runs: int) -> None:
    env = command_env(paths)
    subject = [python, "-m", "tapd", "jobs", "--help"]
    yardstick = [python, "-c", "pass"]
    for _ in range(2):  # warm the page cache and the .pyc files
        timed_run(subject, env)
        timed_run(yardstick, env)
    pairs = [(timed_run(subject, env), timed_run(yardstick, env)) for _ in range(runs)]
    wall_a = statistics.median(a[0] for a, _ in pairs)
    wall_b = statistics.median(b[0] for _, b in pairs)
    ratio_wall = statistics.median(a[0] / b[0] for a, b in pairs)
    ratio_cpu = statistics.median(a[1] / b[1] for a, b in pairs if b[1] > 0)
    print(f"start-up, {runs} pairs, {python}:")
    print(
        f"  tapd jobs --help: median {1000 * wall_a:.1f} ms; python -c pass: {1000 * wall_b:.1f} ms"
    )
    print(
        f"  ratio, median of pairs: wall {ratio_wall:.2f}x, CPU {ratio_cpu:.2f}x;"
        f" target <= 4x: {'met' if ratio_wall <= 4 else 'NOT met'}"
    )


def backend_gone(pid: int) -> bool:
    """Whether the backend process has exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def running_sleepy_job(site: Site, store: JobStore, listener: PhaseListener) -> tuple[str, int]:
    """A job whose query is running in PostgreSQL: (job id, its backend pid)."""
    job_id = site.submit(store, "SELECT x FROM public.sleepy")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listener.changes(0.05)
        job = store.get_job(job_id)
        pid = job.runner_backend_pid
        if job.phase == JobPhase.EXECUTING and pid is not None:
            row = store.conn.execute(
                "SELECT wait_event FROM pg_stat_activity WHERE pid = %s AND state = 'active'",
                (pid,),
            ).fetchone()
            if row and row[0] == "PgSleep":
                return job_id, pid
    raise SystemExit(f"job {job_id} did not start its query within 30 s")


def wait_aborted(listener: PhaseListener, job_id: str, backend_pid: int) -> None:
    aborted = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for change in listener.changes(0.001):
            if change["job_id"] == job_id and change["phase"] == JobPhase.ABORTED:
                aborted = True
        if aborted and backend_gone(backend_pid):
            return
    raise SystemExit(f"job {job_id}: not ABORTED with its backend gone within 30 s")


def aborts(site: Site, python: str, paths: Sequence[str], count: int) -> None:
    env = command_env(paths)
    listener = PhaseListener(site.dsn)
    by_command: list[float] = []
    command_exit: list[float] = []
    in_process: list[float] = []
    with psycopg.connect(site.dsn, autocommit=True) as conn:
        store = JobStore(conn)
        for i in range(2 * count + 2):
            job_id, backend_pid = running_sleepy_job(site, store, listener)
            listener.changes(0)
            started = time.perf_counter()
            if i % 2:
                store.abort_job(job_id)
                wait_aborted(listener, job_id, backend_pid)
                if i >= 2:
                    in_process.append(time.perf_counter() - started)
            else:
                command = [python, "-m", "tapd", "--config", str(site.config), "abort", job_id]
                process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
                wait_aborted(listener, job_id, backend_pid)
                done = time.perf_counter() - started
                if process.wait(30) != 0:
                    raise SystemExit(f"tapd abort {job_id} failed")
                if i >= 2:
                    by_command.append(done)
                    command_exit.append(time.perf_counter() - started)
            time.sleep(0.3)  # the slot's next spare forks and connects (not measured)
    listener.close()
    median = statistics.median(by_command)
    print(f"abort of a running job, {count} runs each:")
    print(
        f"  tapd abort JOBID, start to ABORTED with the backend gone: median"
        f" {1000 * median:.0f} ms (min {1000 * min(by_command):.0f},"
        f" max {1000 * max(by_command):.0f}); the command itself exited after"
        f" {1000 * statistics.median(command_exit):.0f} ms"
    )
    print(
        f"  JobStore.abort_job on an open connection: median"
        f" {1000 * statistics.median(in_process):.0f} ms"
    )
    print(f"  target < 150 ms: {'met' if median < 0.150 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="start-up pairs")
    parser.add_argument("--aborts", type=int, default=20, help="aborts of each kind")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the commands")
    parser.add_argument(
        "--path", action="append", default=[], help="extra PYTHONPATH entry (repeatable)"
    )
    args = parser.parse_args()
    startup(args.python, args.path, args.runs)
    if args.aborts:
        with bench_site(max_jobs=4) as site:
            with psycopg.connect(site.dsn, autocommit=True) as conn:
                conn.execute(SLEEPY_VIEW)
                publish_table(conn, "public.sleepy", None, "tapd_query")
            with site.daemon():
                aborts(site, args.python, args.path, args.aborts)


if __name__ == "__main__":
    main()
