"""The HTTP service's database connections (both pools and the WAIT listener)
give up on a server that stopped answering, as every tapd connection does."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tapd.config import load_config
from tapd.http.app import create_app
from tapd.store import initialise_schema
from tests.store.test_connection_timeouts import keepalive_options
from tests.tcp_proxy import ProxyProcess, tcp_dsn, tcp_sockets_to, unix_socket_path


@pytest.fixture
def proxy(dsn: str) -> Iterator[ProxyProcess]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        initialise_schema(conn)
    front = ProxyProcess(unix_socket_path(dsn))
    yield front
    front.close()


def test_pool_and_listener_connections_carry_keepalives_and_a_user_timeout(
    dsn: str, proxy: ProxyProcess, tmp_path: Path
) -> None:
    file = tmp_path / "tapd.toml"
    file.write_text(
        f'[database]\ndsn = "{tcp_dsn(dsn, proxy.host, proxy.port)}"\nkeepalive_timeout = 6\n'
        f'[runner]\njobs_dir = "{tmp_path}"\n[metrics]\nlisten = ""\n'
    )
    app = create_app(load_config(file, environ={}))

    async def bounds_while_serving() -> set[tuple[int, ...]]:
        async with app.router.lifespan_context(app):  # opens the pools and the listener
            sockets = tcp_sockets_to(proxy.port)
            try:
                assert len(sockets) >= 3  # a connection of each pool, and the listener
                return {keepalive_options(s) for s in sockets}
            finally:
                for sock in sockets:
                    sock.close()

    assert asyncio.run(bounds_while_serving()) == {(1, 2, 1, 4, 6000)}
