"""A tapd site for end-to-end tests: database, sample tables, config file, daemons.

``make_site`` initialises a fresh test database the way ``tapd initdb`` does,
publishes small sample tables and writes a configuration file with short
intervals; ``DaemonProcess`` runs ``python -m tapd run`` as a real subprocess
with a NOTIFY_SOCKET of its own, so tests wait for READY=1 instead of sleeping.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from tapd.store import FINAL_PHASES, Job, JobPhase, JobStore, initialise_schema

T = TypeVar("T")

#: Settings every test site uses: short intervals so recovery is quick.
FAST_SETTINGS: dict[str, dict[str, Any]] = {
    "runner": {
        "max_jobs": 4,
        "poll_interval": 0.5,
        "heartbeat_interval": 0.5,
        "heartbeat_timeout": 3.0,
        "shutdown_grace": 1.0,
        "sweep_interval": 0.5,
    },
    "limits": {"execution_duration_default": 60},
}

SAMPLE_SQL = """
CREATE TABLE public.numbers AS SELECT x FROM generate_series(1, 100) AS x;
-- Returns its one row after ten minutes: a query that is still running.
CREATE VIEW public.sleepy AS SELECT 1 AS x FROM pg_sleep(600);
-- Streams rows slowly (about 100 a second): a result still being written.
CREATE VIEW public.trickle AS
    SELECT g AS x FROM generate_series(1, 100000) AS g
    CROSS JOIN LATERAL (SELECT pg_sleep(0.01 + 0 * g)) AS pause;
"""


def publish_whoami(dsn: str) -> None:
    """Publish ``public.whoami``: the role a query's session logged in as (``login``)
    and the role it runs as (``who``)."""
    from tapd.catalog import publish_table

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE VIEW public.whoami AS"
            " SELECT session_user::text AS login, current_user::text AS who"
        )
        publish_table(conn, "public.whoami", None, "tapd_query")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, step: float = 0.02) -> T:
    """The first truthy value of ``predicate()`` within ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def refusing_trigger(name: str, when: str, message: str) -> str:
    """SQL of a trigger ``name`` on tapd.jobs that refuses, with ``message``,
    every update matching ``when`` (a condition on OLD and NEW), as a broken
    trigger, a revoked privilege or a full disk on the server would; drop it
    with ``DROP TRIGGER <name> ON tapd.jobs``."""
    return f"""
CREATE FUNCTION public.{name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{message}';
END $$;
CREATE TRIGGER {name} BEFORE UPDATE ON tapd.jobs FOR EACH ROW
    WHEN ({when}) EXECUTE FUNCTION public.{name}();
"""


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


@dataclass
class Site:
    dsn: str
    root: Path
    settings: dict[str, dict[str, Any]]
    config_path: Path = field(init=False)
    jobs_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.jobs_dir = self.root / "jobs"
        self.jobs_dir.mkdir(exist_ok=True)
        self.config_path = self.root / "tapd.toml"
        self.write_config()

    def write_config(self, **changes: dict[str, Any]) -> None:
        for section, values in changes.items():
            self.settings.setdefault(section, {}).update(values)
        merged = {
            "database": {"dsn": self.dsn},
            "runner": {"jobs_dir": str(self.jobs_dir)},
        }
        for section, values in self.settings.items():
            merged.setdefault(section, {}).update(values)
        lines = []
        for section, values in merged.items():
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TAPD_", "NOTIFY_"))}
        env.pop("JOURNAL_STREAM", None)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra)
        return env

    @contextlib.contextmanager
    def store(self) -> Iterator[JobStore]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            yield JobStore(conn)

    def submit(self, query: str, *, run: bool = True, duration: int = 60, **params: str) -> str:
        with self.store() as store:
            job = store.create_job(
                {"LANG": "ADQL", "QUERY": query, **params},
                execution_duration=duration,
                destruction=None,
                queue=run,
            )
        return job.job_id

    def job(self, job_id: str) -> Job:
        with self.store() as store:
            return store.get_job(job_id)

    def wait_phase(self, job_id: str, phases: Any = FINAL_PHASES, timeout: float = 30.0) -> Job:
        wanted = {phases} if isinstance(phases, JobPhase) else set(phases)

        def reached() -> Job | None:
            job = self.job(job_id)
            return job if job.phase in wanted else None

        return wait_for(reached, timeout, f"job {job_id} to reach {sorted(wanted)}")

    def runners(self) -> list[dict[str, Any]]:
        """The daemons' rows in the runners table, as dicts."""
        with psycopg.connect(self.dsn, autocommit=True, row_factory=dict_row) as conn:
            return conn.execute("SELECT * FROM tapd.runners ORDER BY started").fetchall()

    def sessions(self, job_id: str) -> list[dict[str, Any]]:
        with self.store() as store:
            return store.job_sessions(job_id)

    def tapd(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tapd", "--config", str(self.config_path), *args],
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def make_site(dsn: str, root: Path, **settings: dict[str, Any]) -> Site:
    """A database ready for tapd (schema, TAP_SCHEMA, sample tables) and its config."""
    from tapd.catalog import ensure_tap_schema, publish_table

    with psycopg.connect(dsn, autocommit=True) as conn:
        initialise_schema(conn)
        ensure_tap_schema(conn, "tapd_query")
        conn.execute(SAMPLE_SQL.encode())
        for table in ("public.numbers", "public.sleepy", "public.trickle"):
            publish_table(conn, table, None, "tapd_query")
    merged = {section: dict(values) for section, values in FAST_SETTINGS.items()}
    for section, values in settings.items():
        merged.setdefault(section, {}).update(values)
    return Site(dsn=dsn, root=root, settings=merged)


class DaemonProcess:
    """``python -m tapd run`` as a subprocess, with its own NOTIFY_SOCKET."""

    _count = 0

    def __init__(self, site: Site, prefix: tuple[str, ...] = (), **env: str) -> None:
        """``prefix``: a command to run the daemon under (e.g. ``ip netns exec NS``)."""
        DaemonProcess._count += 1
        self.site = site
        self.prefix = prefix
        self.name = f"daemon-{DaemonProcess._count}"
        self.notify_path = site.root / f"{self.name}.notify"
        self.log_path = site.root / f"{self.name}.log"
        self.extra_env = env
        self.notifications: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None
        self._socket: socket.socket | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, wait: bool = True) -> DaemonProcess:
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with contextlib.suppress(FileNotFoundError):
            self.notify_path.unlink()
        self._socket.bind(str(self.notify_path))
        env = self.site.env(NOTIFY_SOCKET=str(self.notify_path), **self.extra_env)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    *self.prefix,
                    sys.executable,
                    *("-m", "tapd", "--config", str(self.site.config_path), "run"),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait:
            self.wait_notification("READY=1", timeout=30)
        return self

    def read_notifications(self, timeout: float = 0.0) -> list[str]:
        """Datagrams received so far (waiting up to ``timeout`` for the first)."""
        assert self._socket is not None
        self._socket.settimeout(timeout)  # 0: non-blocking
        try:
            while True:
                self.notifications.append(self._socket.recv(65536).decode())
                self._socket.settimeout(0)
        except (BlockingIOError, TimeoutError):
            pass
        return self.notifications

    def wait_notification(self, line: str, timeout: float = 10) -> str:
        def seen() -> str | None:
            self.read_notifications(0.05)
            return next((m for m in self.notifications if line in m.splitlines()), None)

        try:
            return wait_for(seen, timeout, f"{self.name} to send {line}", step=0)
        except AssertionError:
            raise AssertionError(f"{line} not received; daemon log:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Log events so far (the site must log ``format = "json"``), optionally one name."""
        found = []
        for line in self.log().splitlines():
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if name is None or event.get("event") == name:
                    found.append(event)
        return found

    def wait_events(self, name: str, count: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
        """The first ``count`` events called ``name``, waiting for them to be logged."""

        def logged() -> list[dict[str, Any]] | None:
            events = self.events(name)
            return events if len(events) >= count else None

        try:
            return wait_for(logged, timeout, f"{count} {name} event(s) from {self.name}", 0.1)
        except AssertionError:
            raise AssertionError(f"{name} x{count} not logged; daemon log:\n{self.log()}") from None

    def statuses(self) -> list[str]:
        """Every STATUS= text received so far, oldest first."""
        self.read_notifications()
        return [
            line[7:]
            for message in self.notifications
            for line in message.splitlines()
            if line.startswith("STATUS=")
        ]

    def wait_status(self, predicate: Callable[[str], bool], timeout: float = 30) -> str:
        """The first STATUS= text sent so far for which ``predicate`` holds."""

        def seen() -> str | None:
            self.read_notifications(0.05)
            return next((s for s in self.statuses() if predicate(s)), None)

        try:
            return wait_for(seen, timeout, f"{self.name} to send a matching STATUS=", step=0)
        except AssertionError:
            raise AssertionError(f"no matching STATUS=; daemon log:\n{self.log()}") from None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self.close()

    def wait(self, timeout: float = 30) -> int:
        """The exit status, once the daemon has stopped by itself."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        finally:
            self.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
