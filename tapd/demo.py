"""``tapd demo``: a complete TAP service on loopback for someone trying tapd.

A throwaway PostgreSQL with pgsphere (``DevCluster``), tapd's tables and
TAP_SCHEMA, a sample catalog ``demo.stars`` (positions as ra/dec and a
pgsphere ``spoint`` with a GiST index, magnitudes, names), one runner daemon
(``tapd run``, its own process), and the HTTP service in this process. Once
it listens, one example job goes the whole way (HTTP -> job store -> daemon ->
result, ``tapd.demo_client``) and its result is printed. Runs until Ctrl-C
(or SIGTERM), then stops the daemon and PostgreSQL and deletes every file it
made.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from tapd.config import Config, load_config
from tapd.errors import TapdError
from tapd.log import get_logger
from tapd.sample_catalog import SAMPLE_TABLE, create_sample_catalog

__all__ = ["SAMPLE_TABLE", "DemoError", "create_sample_catalog", "prepare_database", "run_demo"]

log = get_logger(component="demo")


class DemoError(TapdError):
    """The demo could not be set up (the message says what is missing)."""


DEMO_DESCRIPTION = (
    "A throwaway TAP service made by tapd demo: synthetic stars in demo.stars"
    " (positions, G/BP/RP magnitudes, parallaxes) on a private PostgreSQL with pgsphere."
)


def prepare_database(dsn: str, config: Config, rows: int) -> None:
    """pgsphere, tapd's tables, TAP_SCHEMA and the sample catalog in the database ``dsn``."""
    from tapd.catalog import ensure_tap_schema
    from tapd.pgsphere import PgSphereMissing, install_pgsphere
    from tapd.store import initialise_schema

    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            install_pgsphere(conn)
        except PgSphereMissing as exc:
            raise DemoError(str(exc)) from None
        initialise_schema(conn, config.schema)
        ensure_tap_schema(conn, config.query_role)
        create_sample_catalog(conn, rows, config.query_role)


def demo_config(base: Config, workdir: Path, dsn: str, port: int) -> Config:
    """Defaults (not /etc/tapd) with the demo's database, jobs directory and port."""
    empty = workdir / "tapd.toml"
    empty.write_text("")
    config = load_config(empty, environ={})
    from tapd.examples import DEMO_EXAMPLES

    return config.replace(
        dsn=dsn,
        jobs_dir=str(workdir / "jobs"),
        host="127.0.0.1",
        port=port,
        level=base.level,
        format=base.format,
        title="tapd demo",
        description=DEMO_DESCRIPTION,
        examples=str(DEMO_EXAMPLES),
        # The crossmatch example's table, as /examples names it for TOPCAT and pyvo.
        upload_url_allow=[f"http://127.0.0.1:{port}/tap/examples/"],
    )


def banner(url: str, rows: int, workdir: Path) -> str:
    query = "SELECT TOP 5 name, ra, dec, gmag FROM demo.stars ORDER BY gmag"
    one_liner = (
        f"python3 -c \"import pyvo; print(pyvo.dal.TAPService('{url}')"
        f".run_sync('{query}').to_table())\""
    )
    return (
        f"\ntapd demo is running.\n\n  TAP service: {url}\n"
        f"  In a browser: {url}/ (query form, tables, examples, your jobs)\n\n"
        f"Try it with pyvo (pip install pyvo):\n\n  {one_liner}\n\n"
        f"or TOPCAT / STILTS: stilts taplint tapurl={url}\n"
        f"Sample catalog: demo.stars ({rows:,} synthetic stars: positions, magnitudes, names).\n"
        f"Its database and files are in {workdir}.\n"
        "Press Ctrl-C to stop; everything the demo created is removed.\n"
    )


def announce(url: str, rows: int, workdir: Path) -> None:
    """Once the service listens: run the example job (in a thread, the server
    must keep serving it), then print how to use the service."""

    def example_then_banner() -> None:
        from tapd.demo_client import describe, run_example_job

        try:
            print("\n" + describe(run_example_job(url)), flush=True)
        except OSError as exc:
            print(f"\nThe example job could not be run: {exc}", flush=True)
        print(banner(url, rows, workdir), flush=True)

    threading.Thread(target=example_then_banner, name="demo-example", daemon=True).start()


def run_demo(base: Config, *, port: int = 8080, rows: int = 100_000) -> int:
    """Start everything, run one example job, serve until interrupted, clean up.
    Returns the exit status."""
    from tapd.devcluster import ClusterError, DevCluster
    from tapd.http.server import run_server

    workdir = Path(tempfile.mkdtemp(prefix="tapd-demo-"))
    # PostgreSQL runs as its own user when we are root: it must reach its directory.
    workdir.chmod(0o755)
    cluster = DevCluster(base_dir=workdir / "postgresql", dbname="tapd")
    daemon: subprocess.Popen[bytes] | None = None
    try:
        print("Starting a private PostgreSQL with pgsphere ...", flush=True)
        try:
            cluster.start()
        except ClusterError as exc:
            raise DemoError(f"cannot start the demo's PostgreSQL: {exc}") from None
        config = demo_config(base, workdir, cluster.dsn, port)
        Path(config.jobs_dir).mkdir()
        print(f"Creating the sample catalog ({rows:,} stars) ...", flush=True)
        prepare_database(cluster.dsn, config, rows)
        print("Starting a runner daemon ...", flush=True)
        daemon = start_daemon(config, workdir)
        run_server(config, on_ready=lambda url: announce(url, rows, workdir))
        print("\nStopping ...", flush=True)
    finally:
        if daemon is not None:
            stop_process(daemon)
        with contextlib.suppress(Exception):
            cluster.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    print("tapd demo stopped and cleaned up.", flush=True)
    return 0


def start_daemon(config: Config, workdir: Path, timeout: float = 120) -> subprocess.Popen[bytes]:
    """``tapd run`` for the demo, in its own session (Ctrl-C is ours to pass on),
    returned once it told us READY=1 on a notify socket, as it tells systemd."""
    notify_path = workdir / "daemon.notify"
    env = {
        **os.environ,
        "TAPD_CONFIG": str(workdir / "tapd.toml"),
        "TAPD_DSN": config.dsn,
        "TAPD_JOBS_DIR": str(config.jobs_dir),
        "TAPD_LEVEL": str(config.level),
        "TAPD_FORMAT": str(config.format),
        "NOTIFY_SOCKET": str(notify_path),
    }
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(1.0)
        process = subprocess.Popen(
            [sys.executable, "-m", "tapd", "run"], env=env, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                if b"READY=1" in notify.recv(4096).split(b"\n"):
                    return process
            if process.poll() is not None:
                raise DemoError(f"the runner daemon exited with status {process.returncode}")
        stop_process(process)
        raise DemoError(f"the runner daemon was not ready within {timeout:g} s")


def stop_process(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
