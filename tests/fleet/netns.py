"""Hosts made of Linux namespaces, joined by a bridge: a small network for the fleet test.

Each host is a network namespace (``ip netns``) with a veth link to a bridge
that lives in a namespace of its own, plus an *anchor* process holding a
mount and a UTS namespace of the host's own (its host name, and bind mounts
such as its own jobs directory). Commands run on a host by entering the
anchor's namespaces (``nsenter``). Addresses exist inside the namespaces
only; nothing is configured in the machine's own network.

Every namespace is named ``tapdfleet<pid>n<n>-<host>`` after the process
that made it, so whatever a killed test run left behind is recognised and removed
by the next one (``remove_stale_networks``). Cleaning up kills every process
inside the namespaces (``ip netns pids``) and deletes them; the bind mounts go
with the anchors' mount namespaces.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tapd.daemon.recovery import process_alive

PREFIX = "tapdfleet"
SUBNET = "10.77.0"
CLONE_NEWNET = 0x40000000
_NAME = re.compile(rf"^{PREFIX}(\d+)n\d+-(\w+)$")
_networks = itertools.count()


class NetworkError(RuntimeError):
    """A namespace command failed."""


def _ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def _kill_namespace(name: str) -> None:
    """SIGKILL every process inside network namespace ``name``, then delete it."""
    for _ in range(50):
        result = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
        pids = [int(p) for p in result.stdout.split()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def remove_stale_networks() -> list[str]:
    """Delete the namespaces of fleet test runs whose process is gone."""
    removed = []
    for name in _namespaces():
        match = _NAME.match(name)
        if match and not process_alive(int(match.group(1))):
            _kill_namespace(name)
            removed.append(name)
    return removed


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, kind: int) -> None:
    if _libc.setns(fd, kind) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


@contextlib.contextmanager
def network_of(namespace: str) -> Iterator[None]:
    """Run the calling thread inside network namespace ``namespace``: every socket
    it opens meanwhile (database connections, HTTP clients) belongs to that network.
    Threads it starts meanwhile inherit it."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        _setns(target, CLONE_NEWNET)
        try:
            yield
        finally:
            _setns(own, CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(own)


@dataclass
class Host:
    """One host: a network namespace, an address, and an anchor process holding its
    mount and UTS namespaces."""

    name: str
    namespace: str
    address: str
    link: str  # its port on the bridge (in the bridge namespace)
    bridge_namespace: str
    anchor: subprocess.Popen[bytes] | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, binds: Mapping[Path, Path] = {}) -> None:
        """Start the anchor: host name set, ``binds`` (source -> target) mounted."""
        mounts = "".join(f"mount --bind '{s}' '{t}' && " for s, t in binds.items())
        script = f"hostname {self.name} && {mounts}echo ready && exec sleep infinity"
        self.anchor = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, "unshare", "--mount", "--uts",
             "--propagation", "private", "--", "sh", "-c", script],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert self.anchor.stdout is not None
        if self.anchor.stdout.readline().strip() != b"ready":
            raise NetworkError(f"host {self.name} did not start (bind mounts: {dict(binds)})")

    def command(
        self,
        args: Sequence[str],
        user: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> list[str]:
        """``args`` as a command that runs on this host (as ``user`` and with
        exactly the environment ``env``, if given)."""
        assert self.anchor is not None
        enter = ["nsenter", "-t", str(self.anchor.pid), "-n", "-m", "-u", "--"]
        if user is not None:
            enter += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
        if env is not None:
            enter += ["env", "-i", *(f"{k}={v}" for k, v in env.items())]
        return [*enter, *args]

    def run(
        self,
        args: Sequence[str],
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.command(args, user, env), capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise NetworkError(
                f"on {self.name}: {' '.join(args)} exited {result.returncode}:"
                f" {result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def spawn(
        self,
        args: Sequence[str],
        log: Path,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process on this host, its output appended to ``log``."""
        with open(log, "ab") as out:
            process = subprocess.Popen(
                self.command(args, user, env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def cut(self) -> None:
        """Take the host's link down at the bridge: it is cut off, as if its cable
        were pulled (connections time out rather than fail at once)."""
        _ip("-n", self.bridge_namespace, "link", "set", "dev", self.link, "down")

    def reconnect(self) -> None:
        _ip("-n", self.bridge_namespace, "link", "set", "dev", self.link, "up")


class Network:
    """A bridge namespace and hosts on ``SUBNET``.0/24; ``close()`` removes everything."""

    def __init__(self) -> None:
        self.token = f"{PREFIX}{os.getpid()}n{next(_networks)}"
        self.bridge = f"{self.token}-br"
        self.hosts: dict[str, Host] = {}
        _ip("netns", "add", self.bridge)
        _ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge, "link", "set", "dev", "br0", "up")

    def add_host(self, name: str, number: int, binds: Mapping[Path, Path] = {}) -> Host:
        """A host with address ``SUBNET.number``, linked to the bridge."""
        namespace = f"{self.token}-{name}"
        _ip("netns", "add", namespace)
        port = f"to-{name}"[:15]
        host = Host(name, namespace, f"{SUBNET}.{number}", port, self.bridge)
        self.hosts[name] = host
        _ip("-n", namespace, "link", "add", "eth0", "type", "veth",
            "peer", "name", port, "netns", self.bridge)  # fmt: skip
        _ip("-n", self.bridge, "link", "set", "dev", port, "master", "br0", "up")
        _ip("-n", namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "dev", "eth0", "up")
        _ip("-n", namespace, "link", "set", "dev", "lo", "up")
        host.start(binds)
        return host

    def close(self) -> None:
        """Kill every process on every host and delete the namespaces."""
        for host in self.hosts.values():
            for process in host.processes:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        for host in self.hosts.values():
            _kill_namespace(host.namespace)
            for process in [*host.processes, *([host.anchor] if host.anchor else [])]:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(5)
        _kill_namespace(self.bridge)
