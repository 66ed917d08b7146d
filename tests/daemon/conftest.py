"""Fixtures of the daemon tests: a tapd site and runner daemons as subprocesses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.sites import DaemonProcess, Site, make_site


@pytest.fixture
def site(dsn: str, tmp_path: Path) -> Site:
    return make_site(dsn, tmp_path)


@pytest.fixture
def daemons(site: Site) -> Iterator[Callable[..., DaemonProcess]]:
    """Start daemons on the site (``daemons()``); all are stopped after the test."""
    started: list[DaemonProcess] = []

    def start(wait: bool = True, **env: str) -> DaemonProcess:
        daemon = DaemonProcess(site, **env)
        started.append(daemon)
        return daemon.start(wait=wait)

    yield start
    for daemon in started:
        daemon.close()


@pytest.fixture
def daemon(daemons: Callable[..., DaemonProcess]) -> DaemonProcess:
    return daemons()
