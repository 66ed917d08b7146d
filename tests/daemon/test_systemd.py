"""sd_notify messages arrive on a real NOTIFY_SOCKET datagram socket."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from tapd.daemon.systemd import MAX_STATUS_CHARS, SystemdNotifier


@pytest.fixture
def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> socket.socket:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    return sock


def test_notifications_reach_a_path_socket(receiver: socket.socket) -> None:
    with receiver:
        notifier = SystemdNotifier()
        notifier.ready("0 running")
        notifier.reloading()
        notifier.stopping("bye")
        messages = [receiver.recv(4096).decode() for _ in range(3)]
    assert messages[0] == "READY=1\nSTATUS=0 running"
    assert messages[1].startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert messages[2] == "STOPPING=1\nSTATUS=bye"


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"tapd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        receiver.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        SystemdNotifier().watchdog()
        assert receiver.recv(4096) == b"WATCHDOG=1"


def test_status_is_utf8_on_one_line_and_short_enough_for_systemd(
    receiver: socket.socket,
) -> None:
    with receiver:
        notifier = SystemdNotifier()
        notifier.status("degraded: spares: FATAL:  trop de connexions\npour le rôle « tapd »")
        assert receiver.recv(4096).decode() == (
            "STATUS=degraded: spares: FATAL: trop de connexions pour le rôle « tapd »"
        )
        notifier.status("x" * 10_000)
        line = receiver.recv(65536).decode()
    assert len(line) == len("STATUS=") + MAX_STATUS_CHARS and line.endswith("…")


def test_a_full_notification_socket_drops_messages_instead_of_blocking(
    receiver: socket.socket,
) -> None:
    """systemd busy: the daemon's loop (deadlines, watchdog) must not wait for it."""
    with receiver:  # not read until the end: its buffer fills up
        notifier = SystemdNotifier()

        def flood() -> None:
            for n in range(5000):
                notifier.status(f"{n} running, 0 queued, 4 slots " + "." * 200)

        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        sender.join(60)
        assert not sender.is_alive(), "a status line blocked on the full socket"
        assert receiver.recv(4096).startswith(b"STATUS=0 running")


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process() -> None:
    mine = SystemdNotifier({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())})
    other = SystemdNotifier({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"})
    assert mine.watchdog_interval == 2.0
    assert other.watchdog_interval is None


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = SystemdNotifier()
    assert not notifier.enabled
    notifier.ready("x")  # no error
