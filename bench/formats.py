"""Result writers beside PostgreSQL's own COPY, on a 1,000,000-row table.

    .venv/bin/python bench/formats.py [--rows 1000000] [--repeat 3] [--formats votable,csv,...]
        [--progress]

Starts a throwaway PostgreSQL (``tapd.devcluster``), creates ``stars(id bigint,
ra double precision, dec double precision, mag real, name text)`` and measures,
median of ``--repeat`` runs:

* baseline: ``psql -c "COPY (SELECT ...) TO STDOUT (FORMAT csv)"`` into a file;
* each format: ``tapd.formats.write_result`` into a file, in a fresh process
  per run that has imported the writer (as the daemon does before forking),
  timed around the call; the process's peak RSS is reported;
* for reference, the same COPY read row by row through psycopg's ``Copy.read()``.

With ``--progress``, each format also runs reporting its progress after every
batch as a daemon's child does (``tapd.daemon.progress``), right after the
plain run, and the median of the time ratios is printed.

Prints seconds, the ratio to the baseline (median of the ratios of each run to
a baseline run made just before it, so that load from other processes
cancels), the issue-4 target, peak RSS and output size. Targets: CSV/TSV <=
1.5x COPY, BINARY2/BINARY/FITS/Parquet <= 2x, TABLEDATA/JSON <= 4x, peak RSS <
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
TARGETS = {
    "csv": 1.5,
    "tsv": 1.5,
    "votable": 2.0,
    "votable/b": 2.0,
    "fits": 2.0,
    "parquet": 2.0,
    "votable/td": 4.0,
    "json": 4.0,
}

#: One measured run in a fresh process: prints {"seconds", "rss_kib", "bytes", "rows"}.
CHILD = """
import json, resource, sys, time, psycopg
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
    started = time.perf_counter()
    progress = None
    if sys.argv[5] == "progress":  # as the daemon's children report it
        from tapd.daemon.progress import ProgressSlot
        progress = ProgressSlot().report
    summary = write_result(conn, sys.argv[4], None, columns, resolve_format(fmt), out,
                           maxrec=None, progress=progress)
    seconds = time.perf_counter() - started
    size = out.tell()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "rss_kib": rss, "bytes": size, "rows": summary.rows}))
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


def copy_baseline(cluster: DevCluster, path: Path) -> float:
    started = time.perf_counter()
    with open(path, "wb") as out:
        subprocess.run(
            ["psql", "-X", "-q", cluster.dsn, "-c", f"COPY ({SELECT}) TO STDOUT (FORMAT csv)"],
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
        baseline_runs: list[float] = []
        results: dict[str, list[dict[str, float]]] = {}
        ratios: dict[str, list[float]] = {}
        overheads: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            for fmt in formats:
                # each run beside a baseline run just before it: load changes cancel out
                baseline_runs.append(copy_baseline(cluster, output))
                run = run_format(cluster.dsn, fmt, output)
                results.setdefault(fmt, []).append(run)
                ratios.setdefault(fmt, []).append(run["seconds"] / baseline_runs[-1])
                if args.progress:  # the same again, reporting progress, right after
                    followed = run_format(cluster.dsn, fmt, output, progress=True)
                    overheads.setdefault(fmt, []).append(followed["seconds"] / run["seconds"])
        baseline = statistics.median(baseline_runs)
        reference = statistics.median(psycopg_copy(cluster.dsn) for _ in range(args.repeat))

    print(
        f"{args.rows:,} rows (id bigint, ra, dec double, mag real, name text);"
        f" median of {args.repeat} runs"
    )
    print(f"{'':24} {'seconds':>8} {'x COPY':>7} {'target':>7} {'peak RSS':>9} {'output':>9}")
    print(f"{'COPY csv (psql)':24} {baseline:8.2f} {1:7.2f} {'':>7} {'':>9} {'':>9}")
    print(f"{'COPY csv (psycopg read)':24} {reference:8.2f} {reference / baseline:7.2f}")
    for fmt in formats:
        seconds = statistics.median(run["seconds"] for run in results[fmt])
        rss = max(run["rss_kib"] for run in results[fmt]) / 1024
        size = results[fmt][0]["bytes"] / 1e6
        target = TARGETS.get(fmt)
        limit = f"<={target:.1f}" if target else "-"
        ratio = statistics.median(ratios[fmt])
        print(f"{fmt:24} {seconds:8.2f} {ratio:7.2f} {limit:>7} {rss:7.0f}MB {size:7.1f}MB")
    if overheads:
        print("progress reported after each batch, time with/without (median of pairs):")
        for fmt in formats:
            print(f"  {fmt:22} {statistics.median(overheads[fmt]):7.3f}")


if __name__ == "__main__":
    main()
