"""The fleet harness leaves nothing behind: no namespace, no process, no mount."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.fleet.cluster import wait_until
from tests.fleet.netns import PREFIX, Network, network_of, remove_stale_networks

pytestmark = pytest.mark.fleet


def namespaces() -> set[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in listing.splitlines() if line.strip()}


@pytest.fixture(autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")


def test_hosts_reach_each_other_and_close_removes_everything(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "view").mkdir()
    (tmp_path / "mine" / "marker").write_text("host a's own file")
    network = Network()
    try:
        a = network.add_host("a", 51, binds={tmp_path / "mine": tmp_path / "view"})
        b = network.add_host("b", 52)
        server = (
            "import socket; s = socket.create_server(('" + b.address + "', 5000));"
            " c, _ = s.accept(); c.sendall(b'hello from b')"
        )
        listener = b.spawn(["python3", "-c", server], tmp_path / "b.log")
        assert a.run(["hostname"]).stdout.strip() == "a"
        assert a.run(["cat", str(tmp_path / "view" / "marker")]).stdout == "host a's own file"
        assert not (tmp_path / "view" / "marker").exists()  # the bind mount is a's alone
        with network_of(a.namespace):
            connection = wait_until(
                lambda: socket.create_connection((b.address, 5000), timeout=5), 30, "b to listen"
            )
        with connection:
            assert connection.recv(100) == b"hello from b"
        made = {h.namespace for h in network.hosts.values()} | {network.bridge}
        assert made <= namespaces()
    finally:
        network.close()
    assert not made & namespaces()
    assert listener.poll() is not None
    assert a.anchor is not None and a.anchor.poll() is not None


def test_namespaces_of_a_killed_run_are_removed_by_the_next() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{PREFIX}{dead.pid}n0-x"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        assert stale in remove_stale_networks()
        assert stale not in namespaces()
    finally:
        subprocess.run(["ip", "netns", "delete", stale], capture_output=True)
