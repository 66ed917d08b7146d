"""Every connection tapd opens gives up on a server that does not answer:
a connect timeout, and TCP keepalives plus tcp_user_timeout once connected."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from tapd.config import load_config
from tapd.errors import DatabaseUnavailable
from tapd.store.connection import LinkTimeouts, connect, connect_direct
from tests.tcp_proxy import ProxyProcess, silent_server, tcp_dsn, tcp_sockets_to, unix_socket_path


@pytest.fixture
def proxy(dsn: str) -> Iterator[ProxyProcess]:
    front = ProxyProcess(unix_socket_path(dsn))
    yield front
    front.close()


def finishes(action: Callable[[], Any], within: float) -> BaseException | None:
    """Run ``action`` in a thread; the exception it ended with (None: returned).
    Fails if it is still running after ``within`` seconds (it hangs)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            action()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    assert outcome, f"still waiting after {within} s: no connect timeout"
    return outcome[0]


@pytest.mark.parametrize("opener", [connect, connect_direct])
def test_connecting_to_a_server_that_never_answers_times_out_in_one_line(
    opener: Callable[..., psycopg.Connection[Any]],
) -> None:
    with silent_server() as port:
        dsn = f"host=127.0.0.1 port={port} dbname=tapd"
        started = time.monotonic()
        failure = finishes(
            lambda: opener(dsn, application_name="t", timeouts=LinkTimeouts(connect=2)),
            within=60,
        )
    assert isinstance(failure, DatabaseUnavailable)
    assert "timeout" in failure.message and f"port={port}" in failure.message
    assert time.monotonic() - started >= 1.5  # it did wait for the server first


def keepalive_options(sock: socket.socket) -> tuple[int, int, int, int, int]:
    return (
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
    )


@pytest.mark.parametrize(
    ("keepalive", "expected"),
    [
        (15.0, (1, 5, 2, 4, 15000)),  # the default: dead within 15 s, below the watchdog's 20 s
        (30.0, (1, 10, 5, 4, 30000)),
        (3.0, (1, 1, 1, 2, 3000)),
    ],
)
def test_connections_probe_an_idle_server_and_give_up_on_unanswered_data(
    dsn: str, proxy: ProxyProcess, keepalive: float, expected: tuple[int, ...]
) -> None:
    """keepalives_idle + keepalives_count * keepalives_interval <= the timeout,
    and unacknowledged data is given up after it (tcp_user_timeout)."""
    remote = tcp_dsn(dsn, proxy.host, proxy.port)
    timeouts = LinkTimeouts(keepalive=keepalive)
    with (
        connect(remote, timeouts=timeouts) as first,
        connect_direct(remote, application_name="t", timeouts=timeouts) as second,
    ):
        assert first.execute("SELECT 1").fetchone() == (1,)
        assert second.execute("SELECT 1").fetchone() == (1,)
        sockets = tcp_sockets_to(proxy.port)
        assert len(sockets) == 2
        for sock in sockets:
            options = keepalive_options(sock)
            sock.close()
            assert options == expected
            idle, interval, count = options[1:4]
            assert idle + interval * count <= keepalive


def test_the_dsn_s_own_values_win(dsn: str, proxy: ProxyProcess) -> None:
    remote = tcp_dsn(dsn, proxy.host, proxy.port) + " keepalives_idle=7 tcp_user_timeout=9000"
    with connect(remote):
        [sock] = tcp_sockets_to(proxy.port)
        with sock:
            assert keepalive_options(sock)[1] == 7
            assert keepalive_options(sock)[4] == 9000


def test_timeouts_come_from_the_configuration(tmp_path: Any) -> None:
    file = tmp_path / "tapd.toml"
    file.write_text("[database]\nconnect_timeout = 3\nkeepalive_timeout = 20\n")
    config = load_config(file, environ={})
    assert LinkTimeouts.of(config) == LinkTimeouts(connect=3.0, keepalive=20.0)
    assert LinkTimeouts.of(load_config(None, environ={})) == LinkTimeouts(10.0, 15.0)
