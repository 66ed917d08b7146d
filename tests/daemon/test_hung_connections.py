"""A database that vanishes without closing its connections (power cut, a
firewall dropping the state): the daemon notices within
``database.keepalive_timeout`` by itself, not when systemd's watchdog kills it.

Needs root: the database is reached over a veth pair between two network
namespaces, and cutting the link makes the daemon's packets vanish unanswered
(a user-space proxy that stops forwarding would still have its kernel
acknowledge them, which TCP cannot tell from a live server).
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator

import pytest

from tapd.store import JobPhase
from tests.sites import DaemonProcess, Site, wait_for
from tests.tcp_proxy import ProxyProcess, tcp_dsn, unix_socket_path

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
]

_names = itertools.count()


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Link:
    """Two network namespaces joined by a veth pair: ``server`` (10.203.0.1,
    where a proxy to the test cluster listens) and ``client`` (10.203.0.2)."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}x{next(_names)}"
        self.server, self.client = f"tapd-s{tag}", f"tapd-c{tag}"
        self.server_end, self.client_end = f"ts{tag}", f"tc{tag}"
        ip("netns", "add", self.server)
        ip("netns", "add", self.client)
        ip("link", "add", self.server_end, "type", "veth", "peer", "name", self.client_end)
        ip("link", "set", self.server_end, "netns", self.server)
        ip("link", "set", self.client_end, "netns", self.client)
        for ns, dev, address in (
            (self.server, self.server_end, "10.203.0.1/30"),
            (self.client, self.client_end, "10.203.0.2/30"),
        ):
            ip("-n", ns, "addr", "add", address, "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def run_in(self, ns: str) -> tuple[str, ...]:
        return ("ip", "netns", "exec", ns)

    def cut(self) -> None:
        """The server side goes dark: nothing the client sends is answered."""
        ip("-n", self.server, "link", "set", self.server_end, "down")

    def mend(self) -> None:
        ip("-n", self.server, "link", "set", self.server_end, "up")

    def close(self) -> None:
        for ns in (self.client, self.server):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


@pytest.fixture
def link() -> Iterator[Link]:
    made = Link()
    yield made
    made.close()


def test_a_database_link_that_goes_dark_is_noticed_within_the_keepalive_timeout(
    site: Site, link: Link
) -> None:
    proxy = ProxyProcess(unix_socket_path(site.dsn), "10.203.0.1", link.run_in(link.server))
    daemon = DaemonProcess(site, prefix=link.run_in(link.client))
    try:
        site.write_config(
            database={
                "dsn": tcp_dsn(site.dsn, proxy.host, proxy.port),
                "connect_timeout": 2.0,
                "keepalive_timeout": 3.0,
            },
            runner={"retry_backoff_max": 2.0},
            log={"format": "json"},
        )
        daemon.start()
        first = site.wait_phase(site.submit("SELECT x FROM public.numbers"))
        assert first.phase == JobPhase.COMPLETED  # the daemon works over the link

        link.cut()
        # Noticed by the daemon itself: with the kernel's defaults it would wait
        # ~15 minutes of retransmissions, blocking its loop until the watchdog.
        daemon.wait_events("daemon.database_lost", timeout=30)

        # The spares' connections are found dead too: idle ones by keepalives,
        # those still warming up by tcp_user_timeout (a failed back-off step).
        def spares_noticed() -> bool:
            failed = [e for e in daemon.events("daemon.degraded") if e["operation"] == "spares"]
            return bool(failed or daemon.events("daemon.spare_disconnected"))

        wait_for(spares_noticed, 30, "the spares to notice")
        job_id = site.submit("SELECT x FROM public.numbers")  # queued meanwhile

        link.mend()
        daemon.wait_events("daemon.database_reconnected", timeout=60)
        job = site.wait_phase(job_id, timeout=60)
        assert (job.phase, job.attempts) == (JobPhase.COMPLETED, 1)
    finally:
        daemon.close()
        proxy.close()
