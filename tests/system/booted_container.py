"""A Debian root booted with systemd-nspawn and driven from outside with nsenter.

The container gets a private network (loopback only), so its services can
bind the usual ports without meeting the host's. Commands run inside it
through ``nsenter -a`` into the namespaces of its PID 1; HTTP clients run on
the host inside its network namespace only (``nsenter -n``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

Log = Callable[[str], None]
INSIDE_ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    "TERM=dumb",
    "SYSTEMD_PAGER=",
    "SYSTEMD_COLORS=0",
)


class CommandFailed(AssertionError):
    """A command inside the container exited non-zero."""


class BootedContainer:
    """``systemd-nspawn --boot`` of ``root``; ``run`` commands in it, ``stop`` it."""

    def __init__(self, root: Path, console_log: Path, log: Log) -> None:
        self.root = root
        self.console_log = console_log
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.init_pid = 0

    def boot(self, timeout: float = 60) -> None:
        command = [
            "systemd-nspawn",
            "-D",
            str(self.root),
            "--boot",
            "--register=no",
            "--keep-unit",
            "-q",
            "--pipe",
            "--private-network",
            "--machine=systest",
        ]
        self.log("$ " + " ".join(command))
        with open(self.console_log, "ab") as console:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self.init_pid:
            if self.process.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited: {self.console_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"container's systemd did not appear: {self.console_tail()}")
            self.init_pid = self._find_init()
            time.sleep(0.1)
        # Until systemd has opened its private socket systemctl cannot even ask.
        state = ""
        while not state and time.monotonic() < deadline:
            answer = self.run(
                "systemctl", "is-system-running", "--wait", check=False, timeout=timeout, quiet=True
            )
            state = answer.stdout.strip()
            if not state:
                time.sleep(0.2)
        self.log(f"container booted: systemd is {state} (PID {self.init_pid} on the host)")
        if state not in ("running", "degraded"):
            raise RuntimeError(f"container's systemd is {state}: {self.console_tail()}")

    def _find_init(self) -> int:
        """The host PID of the container's systemd: a descendant of nspawn named systemd."""
        assert self.process is not None
        pending = [self.process.pid]
        while pending:
            pid = pending.pop()
            for task in Path(f"/proc/{pid}/task").glob("*"):
                try:
                    children = (task / "children").read_text().split()
                except OSError:
                    continue
                for child in map(int, children):
                    try:
                        if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                            return child
                    except OSError:
                        continue
                    pending.append(child)
        return 0

    def console_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.console_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def run(
        self,
        *command: str,
        check: bool = True,
        timeout: float = 120,
        input: str | None = None,
        quiet: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` inside the container (as root, clean environment)."""
        if not quiet:
            self.log("# " + " ".join(command))
        result = subprocess.run(
            ["nsenter", "-t", str(self.init_pid), "-a", "env", "-i", *INSIDE_ENV, *command],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise CommandFailed(
                f"`{' '.join(command)}` exited {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def host_command_in_network(self, command: Sequence[str]) -> list[str]:
        """``command`` run by the host, but in the container's network namespace."""
        return ["nsenter", "-t", str(self.init_pid), "-n", "--", *command]

    def systemctl(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        return self.run("systemctl", "--no-pager", *args, check=check, timeout=timeout).stdout

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """``systemctl show`` properties of ``unit``."""
        text = self.run(
            "systemctl", "show", unit, *(f"--property={p}" for p in properties), quiet=True
        ).stdout
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def psql(self, sql: str, database: str = "tapd") -> str:
        """Run SQL as the PostgreSQL superuser; unaligned, tuples only."""
        return self.run(
            "runuser",
            "-u",
            "postgres",
            "--",
            "psql",
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            database,
            "-c",
            sql,
        ).stdout.strip()

    def wait_for(
        self, what: str, predicate: Callable[[], bool], timeout: float, interval: float = 0.5
    ) -> None:
        """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(interval)

    def stop(self, timeout: float = 30) -> None:
        """Power the container off (SIGTERM to nspawn), SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.log("container did not power off in time; killing systemd-nspawn")
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.log("container stopped")
