"""sd_notify: telling systemd the daemon is ready, reloading, stopping, alive.

The datagrams are sent by the ``sdnotify`` package (Debian: python3-sdnotify)
to $NOTIFY_SOCKET; without it every call is a no-op. Two things are added
around it: its socket is made non-blocking, so a status line systemd has no
room for is dropped instead of stalling the daemon's loop (and with it every
job's deadline and the watchdog), and text is sent as UTF-8 (sdnotify encodes
Latin-1 and silently drops anything else, such as a server message in
another language). The watchdog interval is half of $WATCHDOG_USEC when
$WATCHDOG_PID is unset or ours (sd_watchdog_enabled(3)).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping

import sdnotify

#: systemd ignores a notification datagram of 4096 bytes or more; a status line
#: (it may quote server messages) is cut to this many characters.
MAX_STATUS_CHARS = 1000


class SystemdNotifier:
    """Sends ``KEY=value`` lines to systemd's notification socket."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        """``environ``: where $WATCHDOG_USEC and $WATCHDOG_PID are read (default
        the process's); sdnotify reads $NOTIFY_SOCKET from the process itself."""
        environ = os.environ if environ is None else environ
        self._notifier: sdnotify.SystemdNotifier | None = None
        if os.environ.get("NOTIFY_SOCKET"):
            notifier = sdnotify.SystemdNotifier()
            if notifier.socket is not None:
                notifier.socket.setblocking(False)
                self._notifier = notifier
        self.watchdog_interval: float | None = None
        usec = environ.get("WATCHDOG_USEC", "")
        watchdog_pid = environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and watchdog_pid in ("", str(os.getpid())):
            self.watchdog_interval = int(usec) / 1_000_000 / 2

    @property
    def enabled(self) -> bool:
        return self._notifier is not None

    def notify(self, *lines: str) -> None:
        """Send one datagram of ``KEY=value`` lines; never blocks, never raises
        (systemd may be gone while we stop)."""
        if self._notifier is None:
            return
        # sdnotify encodes Latin-1: hand it the UTF-8 bytes as Latin-1 characters.
        self._notifier.notify("\n".join(lines).encode().decode("latin-1"))

    def ready(self, status: str) -> None:
        self.notify("READY=1", _status_line(status))

    def status(self, status: str) -> None:
        self.notify(_status_line(status))

    def reloading(self) -> None:
        # MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match the reload.
        self.notify(
            "RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
        )

    def stopping(self, status: str) -> None:
        self.notify("STOPPING=1", _status_line(status))

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._notifier is not None:
            with contextlib.suppress(OSError):
                self._notifier.socket.close()
            self._notifier = None


def _status_line(status: str) -> str:
    """``STATUS=`` with ``status`` on one line, short enough for systemd to take."""
    text = " ".join(status.split())
    if len(text) > MAX_STATUS_CHARS:
        text = text[: MAX_STATUS_CHARS - 1] + "…"
    return f"STATUS={text}"
