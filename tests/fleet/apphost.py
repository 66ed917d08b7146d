"""An application host of the fleet: ``tapd run`` and ``tapd serve`` from the working tree.

Both run on the host (its network, mount and UTS namespaces) with Debian 12's
library versions (``.venv-debian``: psycopg over Debian's libpq 15). The
host's jobs directory is its own: a directory of the test bind-mounted over
the same path on every host, so the configuration files are alike and the
contents are not. The daemon reports READY=1 on a NOTIFY_SOCKET the test
listens on.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fleet.cluster import wait_until
from tests.fleet.netns import Host

REPO = Path(__file__).resolve().parents[2]
PYTHON = REPO / ".venv-debian" / "bin" / "python"
HTTP_PORT = 8080


def toml_text(settings: Mapping[str, Mapping[str, Any]]) -> str:
    lines = []
    for section, values in settings.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


@dataclass
class AppHost:
    host: Host
    root: Path
    settings: dict[str, dict[str, Any]]
    daemon: subprocess.Popen[bytes] | None = None
    server: subprocess.Popen[bytes] | None = None
    notifications: list[str] = field(default_factory=list)
    _notify: socket.socket | None = None

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def url(self) -> str:
        """The TAP service of this host."""
        return f"http://{self.host.address}:{HTTP_PORT}/tap"

    @property
    def jobs_dir(self) -> Path:
        """This host's jobs directory as the test sees it (outside the host)."""
        return self.root / f"{self.name}-jobs"

    @property
    def config_path(self) -> Path:
        return self.root / f"{self.name}.toml"

    def log_path(self, unit: str) -> Path:
        return self.root / f"{self.name}.{unit}.log"

    def log(self, unit: str) -> str:
        path = self.log_path(unit)
        return path.read_text(errors="replace") if path.exists() else ""

    def events(self, unit: str, event: str) -> list[dict[str, Any]]:
        """The JSON log records of ``unit`` with this ``event``."""
        found = []
        for line in self.log(unit).splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == event:
                    found.append(record)
        return found

    def write_config(self, **changes: Mapping[str, Any]) -> None:
        for section, values in changes.items():
            self.settings.setdefault(section, {}).update(values)
        self.config_path.write_text(toml_text(self.settings))

    def _env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "PYTHONUNBUFFERED": "1",
            "LC_ALL": "C.UTF-8",
            "TAPD_CONFIG": str(self.config_path),
            **extra,
        }

    def start_daemon(self, wait: bool = True) -> None:
        notify_path = self.root / f"{self.name}.notify"
        with contextlib.suppress(FileNotFoundError):
            notify_path.unlink()
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(notify_path))
        self.notifications = []
        self.daemon = self.host.spawn(
            [str(PYTHON), "-m", "tapd", "run"],
            self.log_path("run"),
            env=self._env(NOTIFY_SOCKET=str(notify_path)),
        )
        if wait:
            self.wait_notification("READY=1", 60)

    def wait_notification(self, line: str, timeout: float) -> None:
        assert self._notify is not None
        end = time.monotonic() + timeout
        while not any(line in n.splitlines() for n in self.notifications):
            left = end - time.monotonic()
            if left <= 0 or (self.daemon is not None and self.daemon.poll() is not None):
                raise AssertionError(
                    f"{self.name}: tapd run sent no {line}; log:\n{self.log('run')[-3000:]}"
                )
            self._notify.settimeout(min(left, 0.5))
            with contextlib.suppress(TimeoutError):
                self.notifications.append(self._notify.recv(65536).decode())

    def start_server(self) -> None:
        self.server = self.host.spawn(
            [str(PYTHON), "-m", "tapd", "serve"], self.log_path("serve"), env=self._env()
        )

        def answers() -> bool:
            if self.server is not None and self.server.poll() is not None:
                raise AssertionError(f"{self.name}: tapd serve exited:\n{self.log('serve')}")
            try:
                return httpx.get(f"{self.url}/availability", timeout=2).status_code in (200, 503)
            except httpx.TransportError:
                return False

        wait_until(answers, 60, f"tapd serve on {self.name}")

    def start(self) -> None:
        self.start_daemon()
        self.start_server()

    def stop_daemon(self) -> None:
        _stop(self.daemon)
        self.daemon = None
        if self._notify is not None:
            self._notify.close()
            self._notify = None

    def stop_server(self) -> None:
        _stop(self.server)
        self.server = None

    def stop(self) -> None:
        self.stop_server()
        self.stop_daemon()


def _stop(process: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
