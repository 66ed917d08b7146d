"""Catalog-scale query shapes through tapd beside the same queries written by hand in SQL.

    nice -n 15 .venv/bin/python bench/catalog_scale.py [--stars 20000000] [--cache DIR]
        [--repeat 3] [--only SHAPE ...] [--build-only]

Builds, once, a private PostgreSQL cluster under ``--cache`` (default
``/var/tmp/tapd-bench``) holding the synthetic catalog ``demo.stars``
(``tapd.sample_catalog``: ``--stars`` rows, dense along the galactic plane)
and a schema ``wide`` of 200 published tables with 5,000 columns; later runs
reuse it (the recipe is recorded with the data: a changed recipe or row count
rebuilds). Then it starts ``tapd run`` and ``tapd serve`` on it and runs each
query shape (issue 15) as ADQL through tapd, async (UWS job, from submission
to COMPLETED and the result read) and sync (POST /sync, the whole response
read), beside the hand-written SQL (``COPY (...) TO STDOUT`` over libpq, the
rows read) in the same run, alternating, the median of ``--repeat`` runs
after a warm-up. The plans PostgreSQL ran for both (``auto_explain``) are
printed, and one table:

    shape | tapd async s | tapd sync s | SQL s | ratio | rows | plan summary

with the runners' peak RSS (the daemon's child for async jobs, sampled from
/proc; the HTTP service process for sync). Upload shapes include the upload's
ingestion on both sides (hand-written: CREATE TEMP TABLE, COPY the CSV,
ANALYZE). Target: ratio <= 1.2 for every shape.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import catalog_shapes
import psycopg
from catalog_shapes import Shape
from psycopg import sql
from tapd_services import Service, running_tapd

from tapd import sample_catalog
from tapd.catalog import ensure_tap_schema, load_catalog, publish_table
from tapd.config import load_config
from tapd.devcluster import DevCluster
from tapd.pgsphere import install_pgsphere
from tapd.query_login import grant_query_login
from tapd.store import initialise_schema

DEFAULT_CACHE = Path("/var/tmp/tapd-bench")
DEFAULT_STARS = 20_000_000
QUERY_ROLE = "tapd_query"

#: The wide schema of shape 6: tables x columns.
WIDE_TABLES = 200
WIDE_COLUMNS = 25

#: Server settings of the benchmark cluster. wal_level=minimal: a table created and
#: filled in one transaction, and its indexes, are written without WAL.
CLUSTER_SETTINGS = (
    "-c wal_level=minimal",
    "-c max_wal_senders=0",
    "-c shared_buffers=512MB",
    "-c effective_cache_size=8GB",
    # the plans of the statements tapd and psql actually ran, COPY included
    "-c shared_preload_libraries=auto_explain",
    "-c auto_explain.log_min_duration=200ms",
    "-c logging_collector=off",
)


def recipe() -> str:
    """What the cached data was built from: a rebuild happens when it changes."""
    text = "\n".join(
        (
            sample_catalog.CREATE_TABLE,
            sample_catalog.FILL_TABLE,
            *sample_catalog.INDEXES,
            f"wide {WIDE_TABLES}x{WIDE_COLUMNS}",
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def bench_cluster(cache: Path) -> DevCluster:
    cache.mkdir(parents=True, exist_ok=True)
    cache.chmod(0o755)
    return DevCluster(base_dir=cache / "postgresql", dbname="tapd", log_settings=CLUSTER_SETTINGS)


@contextlib.contextmanager
def running_cluster(cache: Path) -> Iterator[DevCluster]:
    """The cached cluster, started; stopped (not removed) afterwards."""
    cluster = bench_cluster(cache)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def build_state(conn: psycopg.Connection[Any]) -> tuple[str, int, float] | None:
    """(recipe, stars, build seconds) of the cached data, if it was built completely."""
    if not conn.execute("SELECT to_regclass('public.tapd_bench_build')").fetchone()[0]:  # type: ignore[index]
        return None
    row = conn.execute("SELECT recipe, stars, seconds FROM public.tapd_bench_build").fetchone()
    return (row[0], int(row[1]), float(row[2])) if row else None


def ensure_data(cluster: DevCluster, stars: int) -> dict[str, float]:
    """Build the catalog and the wide schema unless the cache holds them; build times."""
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        state = build_state(conn)
        if state is not None and state[:2] == (recipe(), stars):
            # tapd's own tables follow the checkout (migrations), the catalog stays
            initialise_schema(conn, load_config(None, environ={}).schema)
            ensure_tap_schema(conn, QUERY_ROLE)
            grant_query_login(conn, QUERY_ROLE)  # a cache from before queries logged in as it
            times = conn.execute("SELECT step, seconds FROM public.tapd_bench_steps").fetchall()
            return {step: float(seconds) for step, seconds in times}
        print(f"Building the {stars:,}-star catalog in {cluster.base_dir} ...", flush=True)
        times = build(conn, stars)
        conn.execute("DROP TABLE IF EXISTS public.tapd_bench_build, public.tapd_bench_steps")
        conn.execute("CREATE TABLE public.tapd_bench_steps (step text, seconds float8)")
        for step, seconds in times.items():
            conn.execute("INSERT INTO public.tapd_bench_steps VALUES (%s, %s)", (step, seconds))
        conn.execute(
            "CREATE TABLE public.tapd_bench_build (recipe text, stars bigint, seconds float8)"
        )
        conn.execute(
            "INSERT INTO public.tapd_bench_build VALUES (%s, %s, %s)",
            (recipe(), stars, times["total"]),
        )
        return times


def build(conn: psycopg.Connection[Any], stars: int) -> dict[str, float]:
    """tapd's tables, TAP_SCHEMA, the catalog (step by step, timed) and the wide schema."""
    times: dict[str, float] = {}
    started = time.perf_counter()

    def step(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        times[name] = now - started
        print(f"  {name}: {times[name]:.1f} s", flush=True)
        started = now

    config = load_config(None, environ={})
    install_pgsphere(conn)
    initialise_schema(conn, config.schema)
    ensure_tap_schema(conn, QUERY_ROLE)
    conn.execute("SET maintenance_work_mem = '1GB'")
    with conn.transaction():
        conn.execute("CREATE SCHEMA IF NOT EXISTS demo")
        conn.execute("DROP TABLE IF EXISTS demo.stars")
        conn.execute(sample_catalog.CREATE_TABLE)
        conn.execute("SELECT setseed(0.42)")
        fill = sample_catalog.FILL_TABLE.format(rows="{}")
        conn.execute(sql.SQL(fill).format(sql.Literal(stars)))  # type: ignore[arg-type]
    step("fill")
    for statement in sample_catalog.INDEXES:
        conn.execute(statement)
        step(statement.split(" ON ")[0].replace("ALTER TABLE demo.stars ", ""))
    conn.execute("VACUUM (ANALYZE) demo.stars")
    step("vacuum analyze")
    publish_table(conn, sample_catalog.SAMPLE_TABLE, sample_catalog.SAMPLE_METADATA, QUERY_ROLE)
    step("publish")
    build_wide_schema(conn)
    step("wide schema")
    times["total"] = sum(times.values())
    return times


#: Column types of the wide tables, cycled.
WIDE_TYPES = ("double precision", "real", "integer", "bigint", "smallint", "text", "boolean")


def build_wide_schema(conn: psycopg.Connection[Any]) -> None:
    """WIDE_TABLES small published tables of WIDE_COLUMNS described columns each."""
    conn.execute("DROP SCHEMA IF EXISTS wide CASCADE")
    conn.execute("CREATE SCHEMA wide")
    conn.execute("COMMENT ON SCHEMA wide IS 'Many tables with many columns (tapd benchmark)'")
    for t in range(WIDE_TABLES):
        name = f"t{t:03d}"
        columns = [
            sql.SQL("{} {}").format(
                sql.Identifier(f"c{c:02d}"), sql.SQL(WIDE_TYPES[(t + c) % len(WIDE_TYPES)])
            )
            for c in range(WIDE_COLUMNS)
        ]
        conn.execute(
            sql.SQL("CREATE TABLE wide.{} ({})").format(
                sql.Identifier(name), sql.SQL(", ").join(columns)
            )
        )
        metadata = {
            "description": f"Wide table number {t} of the tapd benchmark",
            "columns": {
                f"c{c:02d}": {
                    "description": f"Column {c} of table {t}: a quantity measured somehow",
                    "unit": "mag" if c % 3 == 0 else "deg",
                    "ucd": "phot.mag" if c % 3 == 0 else "pos.eq.ra",
                }
                for c in range(WIDE_COLUMNS)
            },
        }
        publish_table(conn, f"wide.{name}", metadata, QUERY_ROLE)


# ---- tapd as a service: ``tapd run`` and ``tapd serve`` on the cached cluster


@contextlib.contextmanager
def running_tapd_for(cluster: DevCluster, cache: Path) -> Iterator[Service]:
    """The runner daemon and the HTTP service, with limits a 5-million-row result fits in."""
    workdir = cache / "tapd"
    shutil.rmtree(workdir, ignore_errors=True)
    settings = {
        "TAPD_SYNC_EXECUTION_DURATION": "3600",
        "TAPD_EXECUTION_DURATION_DEFAULT": "3600",
        "TAPD_MAX_JOBS": "1",
    }
    with running_tapd(workdir, cluster.dsn, settings) as service:
        yield service


def request(
    url: str,
    method: str,
    form: dict[str, str] | None = None,
    upload: bytes | None = None,
    sink: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of one HTTP request; ``sink``: the body is read and
    counted (its newlines, as ``b"%d" % n``) instead of kept."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=3600)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers: dict[str, str] = {}
    body: bytes | None = None
    if upload is not None:
        boundary = uuid.uuid4().hex
        chunks = []
        for name, value in (form or {}).items():
            chunks.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="pts"; filename="pts.xml"'
            "\r\nContent-Type: application/x-votable+xml\r\n\r\n".encode()
            + upload
            + b"\r\n"
        )
        chunks.append(f"--{boundary}--\r\n".encode())
        body = b"".join(chunks)
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    elif form is not None:
        body = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        connection.request(method, target, body, headers)
        response = connection.getresponse()
        if not sink:
            return response.status, dict(response.getheaders()), response.read()
        lines = 0
        while chunk := response.read(1 << 20):
            lines += chunk.count(b"\n")
        return response.status, dict(response.getheaders()), b"%d" % lines
    finally:
        connection.close()


# ---- peak memory of the runners


def vm_hwm_kb(pid: int) -> int:
    """Peak resident set size (VmHWM) of ``pid`` in KiB, 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_hwm(pid: int) -> None:
    """Start ``pid``'s peak RSS afresh (proc(5): clear_refs, value 5)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in task.read_text().split()]
    return found


class ChildPeak:
    """The largest VmHWM any child of the daemon reached while it is sampled."""

    def __init__(self, daemon: int) -> None:
        self.daemon = daemon
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            for child in children(self.daemon):
                self.peak = max(self.peak, vm_hwm_kb(child))

    def __enter__(self) -> ChildPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---- one shape, three ways


class ShapeFailed(Exception):
    """One shape could not be measured (the run goes on with the next)."""


UWS_PHASE = re.compile(rb"<uws:phase>(\w+)</uws:phase>")
FINAL = {b"COMPLETED", b"ERROR", b"ABORTED"}


def tapd_form(shape: Shape) -> dict[str, str]:
    form = {
        "LANG": "ADQL",
        "QUERY": shape.adql,
        "RESPONSEFORMAT": shape.response_format,
        "MAXREC": "10000000",
    }
    if shape.upload_rows:
        form["UPLOAD"] = "pts,param:pts"
    return form


def run_sync(service: Service, shape: Shape, upload: bytes | None) -> tuple[float, int, int]:
    """(seconds, result lines, peak RSS KiB of the HTTP service) of POST /sync."""
    reset_hwm(service.server.pid)
    started = time.perf_counter()
    status, _, lines = request(service.url + "/sync", "POST", tapd_form(shape), upload, sink=True)
    seconds = time.perf_counter() - started
    if status != 200:
        raise ShapeFailed(f"/sync answered {status}")
    return seconds, int(lines), vm_hwm_kb(service.server.pid)


def run_async(service: Service, shape: Shape, upload: bytes | None) -> tuple[float, int, int]:
    """(seconds, result lines, peak RSS KiB of the job's runner) of an async job:
    submission with PHASE=RUN, waiting (WAIT) until it ends, the result read."""
    form = {**tapd_form(shape), "PHASE": "RUN"}
    with ChildPeak(service.daemon.pid) as peak:
        started = time.perf_counter()
        status, headers, _ = request(service.url + "/async", "POST", form, upload)
        if status != 303:
            raise ShapeFailed(f"/async answered {status}")
        job = headers.get("location") or headers["Location"]
        while True:
            _, _, body = request(job + "?WAIT=5", "GET")
            phase = UWS_PHASE.search(body)
            if phase and phase.group(1) in FINAL:
                break
        if phase.group(1) != b"COMPLETED":
            raise ShapeFailed(f"the async job ended {phase.group(1)!r}: {body[-600:]!r}")
        status, _, lines = request(job + "/results/result", "GET", sink=True)
        seconds = time.perf_counter() - started
    request(job, "DELETE")
    return seconds, int(lines), peak.peak


def psql_command() -> str:
    for candidate in ("/usr/lib/postgresql/15/bin/psql", shutil.which("psql")):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit("psql not found: install postgresql-client")


def hand_script(shape: Shape, csv_path: Path | None) -> str:
    """What a person runs in psql for the shape: the upload loaded by hand, then the query."""
    lines = ["\\set ON_ERROR_STOP on"]
    if shape.upload_rows:
        create, _, analyze = catalog_shapes.HAND_UPLOAD
        lines += [
            create + ";",
            f"\\copy pg_temp.hand_pts FROM '{csv_path}' (FORMAT csv)",
            analyze + ";",
        ]
    binary = shape.response_format in BINARY_FORMATS
    lines.append(
        f"COPY (/* hand */ {shape.sql}) TO STDOUT (FORMAT {'binary' if binary else 'csv'});"
    )
    return "\n".join(lines) + "\n"


#: tapd formats whose hand-written counterpart is a binary COPY.
BINARY_FORMATS = ("votable", "fits", "votable/b2")


def run_hand(dsn: str, shape: Shape, csv_path: Path | None, workdir: Path) -> tuple[float, int]:
    """(seconds, output lines) of the hand-written SQL in psql, output read and discarded."""
    script = workdir / "hand.sql"
    script.write_text(hand_script(shape, csv_path))
    started = time.perf_counter()
    process = subprocess.Popen(
        [psql_command(), "-X", "-q", "-d", dsn, "-f", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    lines = 0
    while chunk := process.stdout.read(1 << 20):
        lines += chunk.count(b"\n")
    error = process.stderr.read() if process.stderr else b""
    if process.wait() != 0:
        raise ShapeFailed(f"psql failed: {error.decode(errors='replace')}")
    return time.perf_counter() - started, lines


# ---- plans


def plan_summary(plan: list[dict[str, Any]]) -> str:
    """The scans and parallel nodes of an EXPLAIN (FORMAT JSON) plan, in one short line."""
    parts: list[str] = []
    stack = [plan[0]["Plan"]]
    while stack:
        node = stack.pop(0)
        kind = node["Node Type"]
        if "Index Name" in node:
            parts.append(f"{kind.replace(' Scan', '')} {node['Index Name']}")
        elif kind in ("Seq Scan", "Function Scan") and "Relation Name" in node:
            parts.append(f"Seq {node['Relation Name']}")
        elif kind in ("Gather", "Gather Merge"):
            parts.append(f"{kind}({node.get('Workers Planned', 0)})")
        stack.extend(node.get("Plans", ()))
    unique = list(dict.fromkeys(parts))
    return ", ".join(unique) or "no scan"


def explain(
    conn: psycopg.Connection[Any], statement: str, params: Any = (), restricted: bool = False
) -> tuple[str, str]:
    """(summary, text) of the plan of ``statement``; ``restricted``: with the settings
    of tapd's query transaction (read-only, the planner settings, the bare
    search_path) as the query role, which the uploads on ``conn`` were granted to
    (tapd's queries log in as that role; a plan does not depend on how)."""
    from tapd.runner import query_search_path, query_settings_sql

    def run(prefix: str) -> Any:
        return conn.execute(prefix + statement, params).fetchall()

    if restricted:
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute(f'SET LOCAL ROLE "{QUERY_ROLE}"')
            conn.execute(query_settings_sql(600_000, query_search_path(conn)))
            summary = plan_summary(run("EXPLAIN (FORMAT JSON) ")[0][0])
            text = "\n".join(r[0] for r in run("EXPLAIN (COSTS OFF) "))
    else:
        summary = plan_summary(run("EXPLAIN (FORMAT JSON) ")[0][0])
        text = "\n".join(r[0] for r in run("EXPLAIN (COSTS OFF) "))
    return summary, text


def explain_both(
    dsn: str, shape: Shape, positions: Any, upload_path: Path | None
) -> tuple[tuple[str, str], tuple[str, str]]:
    """Plans of tapd's translation (uploads loaded by tapd's own code) and of the SQL."""
    from tapd.adql import translate_adql
    from tapd.uploads import UploadLimits, drop_uploads, load_uploads

    with psycopg.connect(dsn, autocommit=True) as conn:
        tables: tuple[Any, ...] = ()
        if shape.upload_rows:
            assert upload_path is not None
            with conn.transaction():
                tables = load_uploads(
                    conn,
                    ["pts,param:pts"],
                    resolve_part=lambda part: upload_path,
                    limits=UploadLimits(max_bytes=10**9, max_rows=10**7),
                    query_role=QUERY_ROLE,
                )
            create, copy, analyze = catalog_shapes.HAND_UPLOAD
            conn.execute(create)
            with conn.cursor().copy(copy) as writer:
                writer.write(catalog_shapes.csv_bytes(positions))
            conn.execute(analyze)
        catalog = load_catalog(conn).with_uploads(tables)
        translation = translate_adql(shape.adql, catalog, limit=10_000_001)
        mine = explain(conn, translation.sql, translation.params, restricted=True)
        theirs = explain(conn, shape.sql)
        drop_uploads(conn, tables)
    return mine, theirs


# ---- the run


@dataclass
class Figures:
    shape: str
    sql_s: list[float] = field(default_factory=list)
    sync_s: list[float] = field(default_factory=list)
    async_s: list[float] = field(default_factory=list)
    rows: int = 0
    rss_sync_kb: int = 0
    rss_async_kb: int = 0
    plan_tapd: str = ""
    plan_sql: str = ""

    def median(self, which: str) -> float:
        values: list[float] = getattr(self, which)
        return statistics.median(values) if values else float("nan")


def measure_shape(
    service: Service,
    dsn: str,
    shape: Shape,
    upload: tuple[Any, bytes, Path, Path] | None,
    repeat: int,
    workdir: Path,
    ways: tuple[str, ...],
) -> Figures:
    figures = Figures(shape.name)
    positions, votable, votable_path, csv_path = upload or (None, None, None, None)
    steps: dict[str, Callable[[], None]] = {}

    def hand() -> None:
        seconds, lines = run_hand(dsn, shape, csv_path, workdir)
        figures.sql_s.append(seconds)
        if shape.response_format not in BINARY_FORMATS:
            figures.rows = lines

    def sync() -> None:
        seconds, lines, rss = run_sync(service, shape, votable)
        figures.sync_s.append(seconds)
        figures.rss_sync_kb = max(figures.rss_sync_kb, rss)
        if shape.response_format == "csv":
            figures.rows = lines - 1

    def job() -> None:
        seconds, _, rss = run_async(service, shape, votable)
        figures.async_s.append(seconds)
        figures.rss_async_kb = max(figures.rss_async_kb, rss)

    steps = {"sql": hand, "sync": sync, "async": job}
    for name in ways:  # warm-up: caches, the first job of a fresh spare
        steps[name]()
    figures.sql_s.clear()
    figures.sync_s.clear()
    figures.async_s.clear()
    for _ in range(repeat):
        for name in ways:
            steps[name]()
    (figures.plan_tapd, tapd_text), (figures.plan_sql, sql_text) = explain_both(
        dsn, shape, positions, votable_path
    )
    print(f"\n== {shape.name}\n-- ADQL:\n{shape.adql}\n-- tapd's plan:\n{tapd_text}")
    print(f"-- hand-written SQL:\n{shape.sql}\n-- its plan:\n{sql_text}", flush=True)
    return figures


def measure_tables(service: Service, dsn: str, repeat: int, workdir: Path) -> Figures:
    """VOSI /tables (tapd's document) beside the same columns read from TAP_SCHEMA by psql."""
    figures = Figures(f"VOSI /tables ({WIDE_TABLES} + {WIDE_COLUMNS * WIDE_TABLES:,} columns)")
    shape = Shape(
        name="tables",
        adql="",
        sql=(
            "SELECT t.schema_name, t.table_name, t.table_type, t.description, c.*"
            " FROM tap_schema.tables AS t JOIN tap_schema.columns AS c USING (table_name)"
            " ORDER BY t.schema_name, t.table_name, c.column_index"
        ),
    )
    for attempt in range(repeat + 1):
        reset_hwm(service.server.pid)
        started = time.perf_counter()
        status, _, _ = request(service.url + "/tables", "GET", sink=True)
        seconds = time.perf_counter() - started
        assert status == 200, status
        sql_seconds, lines = run_hand(dsn, shape, None, workdir)
        if attempt:
            figures.sync_s.append(seconds)
            figures.sql_s.append(sql_seconds)
        figures.rows = lines
        figures.rss_sync_kb = max(figures.rss_sync_kb, vm_hwm_kb(service.server.pid))
    figures.plan_tapd = "tapd.catalog (TAP_SCHEMA)"
    figures.plan_sql = explain_plain(dsn, shape.sql)
    return figures


def explain_plain(dsn: str, statement: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return explain(conn, statement)[0]


def measure_publish(service: Service, dsn: str, workdir: Path) -> Figures:
    """``tapd publish demo.stars`` beside one full scan of it (what a count(*) costs)."""
    figures = Figures("tapd publish demo.stars")
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tapd", "publish", sample_catalog.SAMPLE_TABLE],
        env=service.env,
        check=True,
        capture_output=True,
    )
    figures.async_s.append(time.perf_counter() - started)
    scan = Shape(name="count", adql="", sql="SELECT count(*) FROM demo.stars")
    figures.sql_s.append(run_hand(dsn, scan, None, workdir)[0])
    figures.plan_tapd = "catalog statistics"
    figures.plan_sql = explain_plain(dsn, scan.sql)
    with psycopg.connect(dsn) as conn:
        figures.rows = int(conn.execute("SELECT count(*) FROM tap_schema.columns").fetchone()[0])  # type: ignore[index]
    return figures


def ratio(value: float, baseline: float) -> str:
    if value != value or baseline != baseline or baseline <= 0:
        return "-"
    return f"{value / baseline:.2f}"


TABLE_HEADER = (
    f"{'shape':<34} {'async s':>8} {'sync s':>8} {'SQL s':>8} {'async/SQL':>9}"
    f" {'sync/SQL':>8} {'rows':>10} {'RSS async':>9} {'RSS sync':>8}  plan tapd | plan SQL"
)


def table_line(f: Figures) -> str:
    a, s, q = f.median("async_s"), f.median("sync_s"), f.median("sql_s")

    def fmt(v: float) -> str:
        return "-" if v != v else f"{v:.3f}"

    def mb(kb: int) -> str:
        return f"{kb / 1024:.0f} MB" if kb else "-"

    return (
        f"{f.shape:<34} {fmt(a):>8} {fmt(s):>8} {fmt(q):>8} {ratio(a, q):>9}"
        f" {ratio(s, q):>8} {f.rows:>10,} {mb(f.rss_async_kb):>9} {mb(f.rss_sync_kb):>8}"
        f"  {f.plan_tapd} | {f.plan_sql}"
    )


def print_table(results: list[Figures]) -> None:
    print("\n" + TABLE_HEADER)
    print("-" * len(TABLE_HEADER))
    for f in results:
        print(table_line(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stars", type=int, default=DEFAULT_STARS)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="shapes whose name contains one of these")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()
    with running_cluster(args.cache) as cluster:
        times = ensure_data(cluster, args.stars)
        print(
            "catalog build (cached): "
            + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in times.items()),
            flush=True,
        )
        if args.build_only:
            return
        scale = args.stars / DEFAULT_STARS
        shapes = catalog_shapes.shapes(
            top=max(1, round(1_000_000 * scale)),
            big=max(1, round(5_000_000 * scale)),
            uploads=(1_000, max(1, round(100_000 * min(1, scale * 10)))),
        )
        if args.only:
            shapes = [s for s in shapes if any(o in s.name for o in args.only)]
        workdir = args.cache / "work"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        uploads = make_uploads(cluster.dsn, shapes, args.stars, workdir)
        results = []
        with running_tapd_for(cluster, args.cache) as service:
            for shape in shapes:
                ways = ("sql", "sync", "async")
                try:
                    figures = measure_shape(
                        service,
                        cluster.dsn,
                        shape,
                        uploads.get(shape.upload_rows),
                        args.repeat,
                        workdir,
                        ways,
                    )
                except ShapeFailed as exc:
                    print(f"!! {shape.name}: {exc}", flush=True)
                    continue
                results.append(figures)
                print(f"-- figures: {table_line(figures)}", flush=True)
            measured = {f.shape: f for f in results}
            for shape in shapes:  # binary output has no lines to count: take the CSV twin's
                if shape.response_format in BINARY_FORMATS and shape.name in measured:
                    twins = [measured[t.name] for t in shapes if t.sql == shape.sql]
                    measured[shape.name].rows = max(t.rows for t in twins)
            if not args.only or any("tables" in o for o in args.only):
                results.append(measure_tables(service, cluster.dsn, args.repeat, workdir))
            if not args.only or any("publish" in o for o in args.only):
                results.append(measure_publish(service, cluster.dsn, workdir))
    print(
        f"\n{args.stars:,} stars; median of {args.repeat} runs after a warm-up;"
        " async = submit -> COMPLETED -> result read; sync = POST /sync, response read;"
        " SQL = psql COPY (...) TO STDOUT (binary for BINARY2), upload shapes with"
        " CREATE TEMP TABLE + \\copy + ANALYZE; RSS = peak of the job's runner process"
        " (async) and of the HTTP service (sync)"
    )
    print_table(results)


def make_uploads(
    dsn: str, shapes: list[Shape], stars: int, workdir: Path
) -> dict[int, tuple[Any, bytes, Path, Path]]:
    """Per upload size: positions, their VOTable (bytes and file) and CSV file."""
    made = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for rows in sorted({s.upload_rows for s in shapes if s.upload_rows}):
            positions = catalog_shapes.upload_positions(conn, rows, stars)
            votable = catalog_shapes.votable_bytes(positions)
            votable_path = workdir / f"pts-{rows}.xml"
            votable_path.write_bytes(votable)
            csv_path = workdir / f"pts-{rows}.csv"
            csv_path.write_bytes(catalog_shapes.csv_bytes(positions))
            made[rows] = (positions, votable, votable_path, csv_path)
    return made


if __name__ == "__main__":
    main()
