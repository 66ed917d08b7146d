"""sd_notify messages arrive on a real NOTIFY_SOCKET datagram socket."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from tapd.daemon.systemd import SystemdNotifier


def test_notifications_reach_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        receiver.settimeout(5)
        notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path)})
        notifier.ready("0 running")
        notifier.reloading()
        notifier.stopping("bye")
        messages = [receiver.recv(4096).decode() for _ in range(3)]
    assert messages[0] == "READY=1\nSTATUS=0 running"
    assert messages[1].startswith("RELOADING=1\nMONOTONIC_USEC=")
    assert messages[2] == "STOPPING=1\nSTATUS=bye"


def test_abstract_namespace_socket() -> None:
    name = f"tapd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        receiver.settimeout(5)
        SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert receiver.recv(4096) == b"WATCHDOG=1"


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process() -> None:
    mine = SystemdNotifier({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())})
    other = SystemdNotifier({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"})
    assert mine.watchdog_interval == 2.0
    assert other.watchdog_interval is None


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    notifier.ready("x")  # no error
