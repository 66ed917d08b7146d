"""sd_notify: telling systemd the daemon is ready, reloading, stopping, alive.

Datagrams go to $NOTIFY_SOCKET (a path, or ``@name`` for the abstract
namespace); without it every call is a no-op. The watchdog interval is half of
$WATCHDOG_USEC when $WATCHDOG_PID is unset or ours (sd_watchdog_enabled(3)).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Mapping


class SystemdNotifier:
    """Sends ``KEY=value`` lines to systemd's notification socket."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        self._address: str | None = None
        self._socket: socket.socket | None = None
        if address.startswith("@"):
            self._address = "\0" + address[1:]
        elif address.startswith("/"):
            self._address = address
        if self._address is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.watchdog_interval: float | None = None
        usec = environ.get("WATCHDOG_USEC", "")
        watchdog_pid = environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and watchdog_pid in ("", str(os.getpid())):
            self.watchdog_interval = int(usec) / 1_000_000 / 2

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, *lines: str) -> None:
        """Send one datagram of ``KEY=value`` lines. Never blocks: a message the
        receiver has no room for is dropped (the daemon must not stall on its
        status line), and errors are ignored (systemd may be gone while we stop)."""
        if self._socket is None or self._address is None:
            return
        with contextlib.suppress(OSError):
            self._socket.sendto("\n".join(lines).encode(), socket.MSG_DONTWAIT, self._address)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match the reload.
        self.notify(
            "RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
        )

    def stopping(self, status: str) -> None:
        self.notify("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
