"""Result writers beside PostgreSQL's own COPY, on a 1,000,000-row table.

    .venv/bin/python bench/formats.py [--rows 1000000] [--repeat 3] [--formats votable,csv,...]
        [--progress]

Starts a throwaway PostgreSQL (``tapd.devcluster``), creates ``stars(id bigint,
ra double precision, dec double precision, mag real, name text)`` and measures,
median of ``--repeat`` runs:

* baselines: ``psql -c "COPY (SELECT ...) TO STDOUT (FORMAT csv)"`` and the
  same ``(FORMAT binary)``, each into a file;
* each format: ``tapd.formats.write_result`` into a file, in a fresh process
  per run that has imported the writer (as the daemon does before forking),
  timed around the call; the process's peak RSS and its CPU time (user +
  system, the client's share of the 2 cores) are reported;
* for reference, the same COPY read row by row through psycopg's ``Copy.read()``.

With ``--progress``, each format also runs reporting its progress after every
batch as a daemon's child does (``tapd.daemon.progress``), right after the
plain run, and the median of the time ratios is printed.

Prints seconds, the ratios to both baselines (median of the ratios of each run
to the baseline runs made just before it, so that load from other processes
cancels), the target, the writer's CPU seconds, peak RSS and output size. The
fair baseline of a text format is COPY csv; of a binary one (BINARY2, BINARY,
FITS, Parquet) COPY binary, which like them sends values without formatting
them as text. Targets: CSV/TSV <= 1.5x COPY csv; BINARY2 and BINARY <= 1.2x
COPY binary (issue 15); FITS/Parquet <= 2x; TABLEDATA/JSON <= 4x; peak RSS <
150 MB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from tapd.devcluster import DevCluster
from tapd.formats import available_formats

SELECT = "SELECT id, ra, dec, mag, name FROM stars"
#: Formats whose target is set against COPY binary (the rest: COPY csv).
BINARY_BASELINE = ("votable", "votable/b", "fits", "parquet")
TARGETS = {
    "csv": 1.5,
    "tsv": 1.5,
    "votable": 1.2,
    "votable/b": 1.2,
    "fits": 2.0,
    "parquet": 2.0,
    "votable/td": 4.0,
    "json": 4.0,
}

#: One measured run in a fresh process: prints {"seconds", "rss_kib", "bytes", "rows"}.
CHILD = """
import json, os, resource, sys, time, psycopg
from tapd.columns import ColumnMeta
from tapd.formats import resolve_format, write_result
from tapd.formats.results import import_writers
dsn, fmt, path = sys.argv[1], sys.argv[2], sys.argv[3]
import_writers([fmt])  # as the daemon's warm-up does before forking a job's child
columns = [ColumnMeta("id", "long"), ColumnMeta("ra", "double", unit="deg"),
           ColumnMeta("dec", "double", unit="deg"), ColumnMeta("mag", "float", unit="mag"),
           ColumnMeta("name", "char", "*")]
with psycopg.connect(dsn) as conn, open(path, "wb") as out:
    conn.execute("SET TRANSACTION READ ONLY")
    started, cpu = time.perf_counter(), os.times()
    progress = None
    if sys.argv[5] == "progress":  # as the daemon's children report it
        from tapd.daemon.progress import ProgressSlot
        progress = ProgressSlot().report
    summary = write_result(conn, sys.argv[4], None, columns, resolve_format(fmt), out,
                           maxrec=None, progress=progress)
    seconds, ended = time.perf_counter() - started, os.times()
    size = out.tell()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cpu_seconds = ended.user + ended.system - cpu.user - cpu.system
print(json.dumps({"seconds": seconds, "cpu": cpu_seconds, "rss_kib": rss, "bytes": size,
                  "rows": summary.rows}))
"""


def create_table(dsn: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE stars AS SELECT i::bigint AS id, random() * 360 AS ra,"
            " random() * 180 - 90 AS dec, (random() * 20)::real AS mag, 'star ' || i AS name"
            " FROM generate_series(1, %s) AS i",
            (rows,),
        )
        conn.execute("VACUUM ANALYZE stars")


def copy_baseline(cluster: DevCluster, path: Path, copy_format: str = "csv") -> float:
    started = time.perf_counter()
    with open(path, "wb") as out:
        statement = f"COPY ({SELECT}) TO STDOUT (FORMAT {copy_format})"
        subprocess.run(
            ["psql", "-X", "-q", cluster.dsn, "-c", statement],
            stdout=out,
            check=True,
        )
    return time.perf_counter() - started


def psycopg_copy(dsn: str) -> float:
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        with conn.cursor().copy(f"COPY ({SELECT}) TO STDOUT (FORMAT csv)") as copy:
            for _ in copy:
                pass
        return time.perf_counter() - started


def run_format(dsn: str, fmt: str, path: Path, progress: bool = False) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, dsn, fmt, str(path), SELECT, "progress" if progress else ""],
        capture_output=True,
        text=True,
        check=True,
    )
    measured: dict[str, float] = json.loads(done.stdout)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", default=",".join(fmt.key for fmt in available_formats()))
    parser.add_argument(
        "--progress",
        action="store_true",
        help="also run each format reporting its progress as a daemon's child does, and"
        " print what that costs",
    )
    args = parser.parse_args()
    formats = [name for name in args.formats.split(",") if name]

    with DevCluster(dbname="bench") as cluster, tempfile.TemporaryDirectory() as scratch:
        create_table(cluster.dsn, args.rows)
        output = Path(scratch) / "out"
        copy_baseline(cluster, output)  # warm the cache
        baseline_runs: dict[str, list[float]] = {"csv": [], "binary": []}
        results: dict[str, list[dict[str, float]]] = {}
        ratios: dict[tuple[str, str], list[float]] = {}
        overheads: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            for fmt in formats:
                # each run beside baseline runs just before it: load changes cancel out
                for copy_format, runs in baseline_runs.items():
                    runs.append(copy_baseline(cluster, output, copy_format))
                run = run_format(cluster.dsn, fmt, output)
                results.setdefault(fmt, []).append(run)
                for copy_format, runs in baseline_runs.items():
                    ratios.setdefault((fmt, copy_format), []).append(run["seconds"] / runs[-1])
                if args.progress:  # the same again, reporting progress, right after
                    followed = run_format(cluster.dsn, fmt, output, progress=True)
                    overheads.setdefault(fmt, []).append(followed["seconds"] / run["seconds"])
        baseline = {name: statistics.median(runs) for name, runs in baseline_runs.items()}
        reference = statistics.median(psycopg_copy(cluster.dsn) for _ in range(args.repeat))

    print(
        f"{args.rows:,} rows (id bigint, ra, dec double, mag real, name text);"
        f" median of {args.repeat} runs"
    )
    print(
        f"{'':24} {'seconds':>8} {'x csv':>6} {'x bin':>6} {'target':>11}"
        f" {'CPU s':>6} {'peak RSS':>9} {'output':>9}"
    )
    csv_s, binary_s = baseline["csv"], baseline["binary"]
    print(f"{'COPY csv (psql)':24} {csv_s:8.2f} {1:6.2f} {csv_s / binary_s:6.2f}")
    print(f"{'COPY binary (psql)':24} {binary_s:8.2f} {binary_s / csv_s:6.2f} {1:6.2f}")
    print(f"{'COPY csv (psycopg read)':24} {reference:8.2f} {reference / csv_s:6.2f}")
    for fmt in formats:
        seconds = statistics.median(run["seconds"] for run in results[fmt])
        cpu = statistics.median(run["cpu"] for run in results[fmt])
        rss = max(run["rss_kib"] for run in results[fmt]) / 1024
        size = results[fmt][0]["bytes"] / 1e6
        target = TARGETS.get(fmt)
        against = "binary" if fmt in BINARY_BASELINE else "csv"
        limit = f"<={target:.1f} {against[:3]}" if target else "-"
        by_csv = statistics.median(ratios[fmt, "csv"])
        by_binary = statistics.median(ratios[fmt, "binary"])
        print(
            f"{fmt:24} {seconds:8.2f} {by_csv:6.2f} {by_binary:6.2f} {limit:>11}"
            f" {cpu:6.2f} {rss:7.0f}MB {size:7.1f}MB"
        )
    if overheads:
        print("progress reported after each batch, time with/without (median of pairs):")
        for fmt in formats:
            print(f"  {fmt:22} {statistics.median(overheads[fmt]):7.3f}")


if __name__ == "__main__":
    main()
