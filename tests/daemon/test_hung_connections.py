"""A database that vanishes without closing its connections (power cut, a
firewall dropping the state): the daemon notices within
``database.keepalive_timeout`` by itself, not when systemd's watchdog kills it.

Needs root: the database is reached from another network namespace, and
taking its link down makes the daemon's packets vanish unanswered
(a user-space proxy that stops forwarding would still have its kernel
acknowledge them, which TCP cannot tell from a live server).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tapd.store import JobPhase
from tests.fleet.netns import Network, remove_stale_networks
from tests.sites import DaemonProcess, Site, wait_for
from tests.tcp_proxy import ProxyProcess, tcp_dsn, unix_socket_path

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
]


@pytest.fixture
def network() -> Iterator[Network]:
    """Hosts in network namespaces (the fleet test's): ``db`` will front the
    test cluster with a TCP proxy, ``app`` runs the daemon."""
    remove_stale_networks()
    made = Network()
    made.add_host("db", 1)
    made.add_host("app", 2)
    yield made
    made.close()


def test_a_database_link_that_goes_dark_is_noticed_within_the_keepalive_timeout(
    site: Site, network: Network
) -> None:
    db, app = network.hosts["db"], network.hosts["app"]
    proxy = ProxyProcess(unix_socket_path(site.dsn), db.address, tuple(db.command([])))
    daemon = DaemonProcess(site, prefix=tuple(app.command([])))
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

        db.cut()
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

        db.reconnect()
        daemon.wait_events("daemon.database_reconnected", timeout=60)
        job = site.wait_phase(job_id, timeout=60)
        assert (job.phase, job.attempts) == (JobPhase.COMPLETED, 1)
    finally:
        daemon.close()
        proxy.close()
