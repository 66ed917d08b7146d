"""A throwaway PostgreSQL cluster on a unix socket, for tests and ``tapd demo``
(and a throwaway pgbouncer in front of one, for tests and benchmarks).

Started from the installed server binaries (initdb + pg_ctl) in a temporary
directory; nothing listens on TCP. The cluster can be stopped and started again
(tests restart PostgreSQL under a running daemon) and is removed on cleanup.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SERVER_BIN_DIRS = (
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
)


class ClusterError(RuntimeError):
    """The throwaway cluster could not be created or started."""


def find_server_bindir() -> Path:
    """Directory holding initdb and pg_ctl (Debian keeps them off PATH)."""
    for candidate in (os.environ.get("TAPD_PG_BINDIR"), *SERVER_BIN_DIRS):
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ClusterError(
        "PostgreSQL server binaries not found: install the Debian package postgresql-15"
    )


def _drop_root_user() -> str | None:
    """PostgreSQL refuses to run as root; return the user to run as, if we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ClusterError("running as root but no 'postgres' system user exists") from exc
    return "postgres"


@dataclass
class DevCluster:
    """A private PostgreSQL server: ``start()``, ``stop()``, ``restart()``, ``cleanup()``."""

    base_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tapd-pg-")))
    dbname: str = "tapd"
    superuser: str = "tapd_admin"
    port: int = 5432
    log_settings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.bindir = find_server_bindir()
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "socket"
        self.log_file = self.base_dir / "server.log"
        self._run_as = _drop_root_user()

    @property
    def dsn(self) -> str:
        """libpq connection string for the cluster's database."""
        return f"host={self.socket_dir} port={self.port} dbname={self.dbname} user={self.superuser}"

    def admin_dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={self.port} dbname={dbname} user={self.superuser}"

    def _command(self, *args: str) -> list[str]:
        if self._run_as:
            return ["runuser", "-u", self._run_as, "--", *args]
        return list(args)

    def _run(self, *args: str) -> None:
        result = subprocess.run(self._command(*args), capture_output=True, text=True)
        if result.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise ClusterError(
                f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}"
                + (f"\nserver log:\n{log[-2000:]}" if log else "")
            )

    def init(self) -> None:
        """initdb into the base directory (once)."""
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            shutil.chown(self.base_dir, self._run_as)
            shutil.chown(self.socket_dir, self._run_as)
            os.chmod(self.base_dir, 0o755)
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.superuser,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )

    def start(self) -> None:
        """Start the server listening only on the unix socket."""
        if not self.data_dir.exists():
            self.init()
        options = [
            "-c listen_addresses=''",
            f"-c unix_socket_directories={self.socket_dir}",
            f"-p {self.port}",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c max_connections=200",
            *self.log_settings,
        ]
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            " ".join(options),
            "-w",
            "start",
        )
        self._ensure_database()

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,)
            ).fetchone()
            if not exists:
                conn.execute(
                    psycopg.sql.SQL("CREATE DATABASE {}").format(
                        psycopg.sql.Identifier(self.dbname)
                    )
                )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast`` disconnects clients, ``immediate`` simulates a crash)."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"
            )

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop the server and delete every file of the cluster."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> DevCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


@dataclass
class DevPgBouncer:
    """A throwaway pgbouncer (session pooling) in front of a ``DevCluster``, on a unix
    socket: ``start()``, ``stop()``; ``dsn(dbname)`` connects through it."""

    cluster: DevCluster
    users: tuple[str, ...] = ("tapd_admin", "tapd_query")
    port: int = 6432
    pool_size: int = 40

    def __post_init__(self) -> None:
        self.base_dir = self.cluster.base_dir / "pgbouncer"
        self.process: subprocess.Popen[bytes] | None = None
        self.executable = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"

    def dsn(self, dbname: str | None = None, user: str | None = None) -> str:
        """A libpq connection string reaching ``dbname`` through the pooler."""
        return (
            f"host={self.base_dir} port={self.port} dbname={dbname or self.cluster.dbname}"
            f" user={user or self.cluster.superuser}"
        )

    def start(self) -> None:
        if not Path(self.executable).exists():
            raise ClusterError("pgbouncer is not installed (Debian package pgbouncer)")
        self.base_dir.mkdir(exist_ok=True)
        (self.base_dir / "users.txt").write_text("".join(f'"{u}" ""\n' for u in self.users))
        server = f"host={self.cluster.socket_dir} port={self.cluster.port}"
        (self.base_dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = {server}\n"
            "[pgbouncer]\n"
            "listen_addr =\n"
            f"listen_port = {self.port}\n"
            f"unix_socket_dir = {self.base_dir}\n"
            "auth_type = trust\n"
            f"auth_file = {self.base_dir / 'users.txt'}\n"
            "pool_mode = session\n"
            "max_client_conn = 1000\n"
            f"default_pool_size = {self.pool_size}\n"
            "server_reset_query = DISCARD ALL\n"
            "ignore_startup_parameters = extra_float_digits\n"
            f"logfile = {self.base_dir / 'pgbouncer.log'}\n"
        )
        if self.cluster._run_as:
            shutil.chown(self.base_dir, self.cluster._run_as)
        self.process = subprocess.Popen(
            self.cluster._command(self.executable, str(self.base_dir / "pgbouncer.ini")),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        socket_path = self.base_dir / f".s.PGSQL.{self.port}"
        deadline = time.monotonic() + 30
        while not socket_path.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.base_dir / "pgbouncer.log"
                raise ClusterError(
                    "pgbouncer did not start: " + (log.read_text()[-2000:] if log.exists() else "")
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def __enter__(self) -> DevPgBouncer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
