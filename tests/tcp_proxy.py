"""A TCP front for the test cluster's unix socket, and a server that never answers.

The test PostgreSQL listens on a unix socket only; TCP keepalives,
``tcp_user_timeout`` and ``connect_timeout`` matter on TCP, so the tests
reach it through ``TcpProxy`` (in a thread, or ``python -m tests.tcp_proxy
HOST PORT SOCKET`` in another network namespace). ``SilentServer`` accepts
connections at the kernel level and never answers, like a hung server.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path


def unix_socket_path(dsn: str) -> Path:
    """The PostgreSQL unix socket a test DSN (``host=DIR port=N ...``) points at."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(dsn)
    return Path(str(parts["host"])) / f".s.PGSQL.{parts.get('port') or 5432}"


def tcp_dsn(dsn: str, host: str, port: int) -> str:
    """``dsn`` with its host and port replaced (the database and user kept)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    parts = {k: v for k, v in conninfo_to_dict(dsn).items() if k not in ("host", "port")}
    return make_conninfo(**parts, host=host, port=str(port))


class TcpProxy:
    """Forwards TCP connections on ``host``:``port`` to a unix socket."""

    def __init__(self, target: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = target
        self.listener = socket.create_server((host, port), backlog=64)
        self.host, self.port = self.listener.getsockname()[:2]

    def serve_forever(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def start(self) -> TcpProxy:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()

    def _forward(self, client: socket.socket) -> None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            server.connect(str(self.target))
        except OSError:
            client.close()
            return
        threading.Thread(target=_pump, args=(server, client), daemon=True).start()
        _pump(client, server)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class ProxyProcess:
    """``TcpProxy`` in a process of its own (``prefix``: e.g. ``ip netns exec NS``):
    libpq's blocking connect holds the GIL, so a proxy thread in the process that
    connects would never answer it."""

    def __init__(self, target: Path, host: str = "127.0.0.1", prefix: tuple[str, ...] = ()):
        command = [*prefix, sys.executable, "-m", "tests.tcp_proxy", host, "0", str(target)]
        root = str(Path(__file__).parent.parent)  # entering a mount namespace resets the cwd
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        }
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()  # "listening HOST:PORT"
        if len(line) != 2:
            self.close()
            raise AssertionError(f"the proxy did not start: {line}")
        address = line[1]
        self.host, self.port = address.rsplit(":", 1)[0], int(address.rsplit(":", 1)[1])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port on 127.0.0.1 whose connections are accepted by the kernel and
    never answered (a hung server); yields the port."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        yield listener.getsockname()[1]


def tcp_sockets_to(port: int) -> list[socket.socket]:
    """This process's TCP sockets connected to ``port`` (copies of their file
    descriptors: close them), to read the options libpq set on them."""
    found: dict[tuple[object, object], socket.socket] = {}
    for name in os.listdir("/proc/self/fd"):  # may list the copies made below: deduplicated
        try:
            copy = os.dup(int(name))
        except OSError:
            continue
        try:
            sock = socket.socket(fileno=copy)
        except OSError:  # not a socket
            os.close(copy)
            continue
        try:
            ours = sock.family == socket.AF_INET and sock.getpeername()[1] == port
            key = (sock.getsockname(), sock.getpeername()) if ours else None
        except OSError:
            key = None
        if key is not None and key not in found:
            found[key] = sock
        else:
            sock.close()
    return list(found.values())


if __name__ == "__main__":  # python -m tests.tcp_proxy HOST PORT SOCKET
    proxy = TcpProxy(Path(sys.argv[3]), sys.argv[1], int(sys.argv[2]))
    print(f"listening {proxy.host}:{proxy.port}", flush=True)
    proxy.serve_forever()
