"""Replicated PostgreSQL for the fleet test: etcd and two Patroni nodes on their own hosts.

etcd runs on host ``dcs``; Patroni runs PostgreSQL 15 on ``db1`` and ``db2``
(Debian's packages, as the ``postgres`` user) with ``synchronous_mode``, a
10 s leader TTL, and trust authentication inside the test network. The
configuration files are JSON (which YAML reads).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fleet.netns import SUBNET, Host
from tests.sites import wait_for

BINDIR = Path("/usr/lib/postgresql/15/bin")
PG_PORT = 5432
REST_PORT = 8008
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
SCOPE = "tapdfleet"

#: Server settings of both nodes. hot_standby_feedback keeps the primary from
#: removing rows a standby query may still read (as docs/fleet.md recommends);
#: a lock taken on the primary still conflicts with standby queries, which are
#: cancelled after max_standby_streaming_delay (kept short, to provoke it).
PARAMETERS: dict[str, Any] = {
    "max_connections": 200,
    "fsync": "off",  # processes are killed, never the machine: the page cache survives
    "wal_level": "replica",
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    "max_standby_streaming_delay": "1s",
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "wal_keep_size": "128MB",
    "wal_log_hints": "on",  # with full_page_writes (the default): pg_rewind after a failover
}


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.2) -> Any:
    """``tests.sites.wait_for``, with an unreachable service (connection refused,
    no answer yet) counting as not yet."""

    def attempt() -> Any:
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
            return predicate()
        return None

    return wait_for(attempt, timeout, what, step)


def _chown_tree(path: Path, user: str) -> None:
    shutil.chown(path, user, user)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            shutil.chown(os.path.join(root, name), user, user)


@dataclass
class Etcd:
    host: Host
    root: Path

    @property
    def endpoint(self) -> str:
        return f"{self.host.address}:{ETCD_CLIENT_PORT}"

    def start(self) -> None:
        data = self.root / "etcd"
        data.mkdir(mode=0o700)
        peer = f"http://{self.host.address}:{ETCD_PEER_PORT}"
        client = f"http://{self.endpoint}"
        self.host.spawn(
            ["etcd", "--name", "e1", "--data-dir", str(data),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"e1={peer}", "--heartbeat-interval", "200",
             "--election-timeout", "2000"],
            self.root / "etcd.log",
        )  # fmt: skip


@dataclass
class PatroniNode:
    host: Host
    root: Path
    etcd: Etcd

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def data_dir(self) -> Path:
        return self.root / self.name / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / self.name / "socket"

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.patroni.log"

    def config(self) -> dict[str, Any]:
        address = self.host.address
        return {
            "scope": SCOPE,
            "name": self.name,
            "log": {"level": "INFO"},
            "restapi": {
                "listen": f"{address}:{REST_PORT}",
                "connect_address": f"{address}:{REST_PORT}",
            },
            "etcd3": {"host": self.etcd.endpoint},
            "bootstrap": {
                "dcs": {
                    "ttl": 10,
                    "loop_wait": 1,
                    "retry_timeout": 4,
                    "maximum_lag_on_failover": 16 * 1024 * 1024,
                    "synchronous_mode": True,
                    "postgresql": {"use_pg_rewind": True, "parameters": PARAMETERS},
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, {"auth": "trust"}],
            },
            "postgresql": {
                "listen": f"{address}:{PG_PORT}",
                "connect_address": f"{address}:{PG_PORT}",
                "data_dir": str(self.data_dir),
                "bin_dir": str(BINDIR),
                "pgpass": str(self.root / self.name / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": "fleet"},
                    "replication": {"username": "replicator", "password": "fleet"},
                    "rewind": {"username": "postgres", "password": "fleet"},
                },
                "parameters": {"unix_socket_directories": str(self.socket_dir)},
                "pg_hba": [
                    "local all all trust",
                    f"host all all {SUBNET}.0/24 trust",
                    f"host replication all {SUBNET}.0/24 trust",
                ],
            },
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False},
        }

    def start(self) -> None:
        node_dir = self.root / self.name
        node_dir.mkdir(exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        config_file = node_dir / "patroni.yml"
        config_file.write_text(json.dumps(self.config(), indent=1))
        _chown_tree(node_dir, "postgres")
        self.host.spawn(
            ["patroni", str(config_file)],
            self.log,
            user="postgres",
            env={"PATH": "/usr/bin:/bin", "HOME": str(node_dir), "LC_ALL": "C.UTF-8"},
        )

    def rest(self, path: str) -> Any:
        """GET of Patroni's REST API (the caller must be inside the test network)."""
        url = f"http://{self.host.address}:{REST_PORT}{path}"
        with urllib.request.urlopen(url, timeout=3) as answer:
            return json.load(answer)

    def postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        return None

    def kill(self) -> None:
        """SIGKILL Patroni and PostgreSQL on this node: the machine dies."""
        for process in self.host.processes:
            if process.poll() is None:
                process.kill()
        pid = self.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class PatroniCluster:
    """Two Patroni nodes sharing one etcd; ``members()`` from the REST API."""

    nodes: list[PatroniNode]

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def members(self) -> list[dict[str, Any]]:
        for node in self.nodes:
            with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
                members: list[dict[str, Any]] = node.rest("/cluster")["members"]
                return members
        return []

    def roles(self) -> dict[str, str]:
        """{node name: role} of the members that are running."""
        running = ("running", "streaming")
        return {m["name"]: m["role"] for m in self.members() if m.get("state") in running}

    def wait_ready(self, timeout: float = 120) -> PatroniNode:
        """Wait for a leader and a synchronous standby; returns the leader."""

        def ready() -> str | None:
            roles = self.roles()
            leaders = [n for n, r in roles.items() if r == "leader"]
            if len(leaders) == 1 and "sync_standby" in roles.values():
                return leaders[0]
            return None

        what = f"a leader and a sync standby (logs in {self.nodes[0].root})"
        leader = wait_until(ready, timeout, what)
        return self.node(leader)

    @contextlib.contextmanager
    def maintenance(self) -> Iterator[None]:
        """Patroni's maintenance mode for the block: it neither fails over nor
        touches PostgreSQL (it otherwise resumes a standby's paused replay)."""
        self._patch_config({"pause": True})
        try:
            for node in self.nodes:
                wait_until(lambda n=node: n.rest("/patroni").get("pause"), 30, "maintenance")
            yield
        finally:
            self._patch_config({"pause": None})

    def _patch_config(self, change: dict[str, Any]) -> None:
        node = self.nodes[0]
        request = urllib.request.Request(
            f"http://{node.host.address}:{REST_PORT}/config",
            data=json.dumps(change).encode(),
            method="PATCH",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    def node(self, name: str) -> PatroniNode:
        return next(n for n in self.nodes if n.name == name)

    def leader(self) -> PatroniNode | None:
        name = next((n for n, r in self.roles().items() if r == "leader"), None)
        return self.node(name) if name else None

    def dsn(self, **extra: str) -> str:
        """A multi-host libpq connection string naming every node."""
        hosts = ",".join(n.host.address for n in self.nodes)
        ports = ",".join(str(PG_PORT) for _ in self.nodes)
        words = [f"host={hosts}", f"port={ports}", *(f"{k}={v}" for k, v in extra.items())]
        return " ".join(words)
