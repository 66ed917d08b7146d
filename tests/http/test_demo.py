"""``tapd demo``: everything comes up on loopback, runs an example job, answers pyvo;
Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pyvo

from tests.http.conftest import free_port

pytestmark = pytest.mark.slow


def read_until(process: subprocess.Popen[str], pattern: str, timeout: float) -> str:
    """stdout of ``process`` up to a line matching ``pattern``. Reads the pipe's
    file descriptor directly: a buffered reader may hold lines that select()
    no longer reports."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536).decode(errors="replace")
            if not chunk and process.poll() is not None:
                break
            seen += chunk
            if re.search(pattern, seen):
                return seen
        elif process.poll() is not None:
            break
    raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n{seen}")


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone(pids: set[int], timeout: float = 15.0) -> set[int]:
    """The processes of ``pids`` still running after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (running := {p for p in pids if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.2)
    return running


def descendants(pid: int) -> set[int]:
    """Every process whose ancestry leads to ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_demo_serves_pyvo_and_stopping_it_removes_everything(stop: signal.Signals) -> None:
    port = free_port()
    env = {**os.environ, "TAPD_CONFIG": os.devnull}
    process = subprocess.Popen(
        [sys.executable, "-m", "tapd", "demo", "--port", str(port), "--stars", "3000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        output = read_until(process, r"Press Ctrl-C", timeout=120)
        url = re.search(r"TAP service: (\S+)", output).group(1)
        workdir = Path(re.search(r"files are in (\S+?)\.\n", output).group(1))
        assert url == f"http://127.0.0.1:{port}/tap"
        assert "pyvo.dal.TAPService" in output
        # the demo's own first job went through HTTP, the job store and the daemon
        assert re.search(r"phase: COMPLETED after \d+ ms", output), output
        assert "name,ra,dec,gmag,dist" in output
        postmaster = int(
            (workdir / "postgresql" / "data" / "postmaster.pid").read_text().split()[0]
        )
        children = descendants(process.pid)
        table = pyvo.dal.TAPService(url).run_sync(
            "SELECT TOP 5 name, ra, dec, gmag FROM demo.stars ORDER BY gmag"
        )
        assert len(table) == 5
        job = pyvo.dal.TAPService(url).submit_job("SELECT COUNT(*) AS n FROM demo.stars")
        job.run()
        job.wait()
        assert list(job.fetch_result().to_table()["n"]) == [3000]
        process.send_signal(stop)
        rest, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output + rest
    assert "cleaned up" in rest
    assert not workdir.exists()
    assert gone({postmaster, *children}) == set()
