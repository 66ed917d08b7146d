"""``tapd run`` and ``tapd serve`` as subprocesses for the HTTP benchmarks.

Shared by ``bench/http_latency.py`` (and through it ``web_pages.py`` and
``http_load.py``) and ``bench/catalog_scale.py``: both start the two services
the way an operator would, on a free local port, and wait until the service
says it is available before measuring anything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    url: str
    env: dict[str, str]
    daemon: subprocess.Popen[bytes]
    server: subprocess.Popen[bytes]


@contextlib.contextmanager
def running_tapd(workdir: Path, dsn: str, settings: dict[str, str]) -> Iterator[Service]:
    """The runner daemon and the HTTP service on ``dsn`` (configuration, jobs and
    logs under ``workdir``; ``settings``: extra ``TAPD_*`` variables), stopped by
    SIGTERM afterwards."""
    (workdir / "jobs").mkdir(parents=True, exist_ok=True)
    (workdir / "tapd.toml").write_text("")
    port = free_port()
    env = {
        **os.environ,
        "TAPD_CONFIG": str(workdir / "tapd.toml"),
        "TAPD_DSN": dsn,
        "TAPD_JOBS_DIR": str(workdir / "jobs"),
        "TAPD_PORT": str(port),
        "TAPD_LEVEL": "warning",
        **settings,
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for command in ("run", "serve"):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tapd", command],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=(workdir / f"{command}.log").open("wb"),
                )
            )
        url = f"http://127.0.0.1:{port}/tap"
        wait_available(url)
        yield Service(url, env, processes[0], processes[1])
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_available(url: str, timeout: float = 60) -> None:
    """Return once ``url``/availability says available; exit the benchmark otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url + "/availability", timeout=2) as response,
        ):
            if b"<avl:available>true" in response.read():
                return
        time.sleep(0.2)
    raise SystemExit(f"the service at {url} did not become available")
