"""Fixtures of the system test: the built .deb and a booted Debian 12 container.

Everything here needs root, debootstrap, systemd-nspawn and the Debian build
tools (``scripts/bootstrap --system-test`` installs them); without them the
tests are skipped with the reason. Each step is reported on the terminal as
``[system] ...``; every command and its output goes to
``packaging/out/system-test/transcript.log`` (the container's console to
``console.log`` next to it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import pytest
from booted_container import BootedContainer
from debian_root import RunRoot, cached_root, deb_depends

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "packaging" / "out" / "system-test"
TOOLS = (
    "debootstrap",
    "systemd-nspawn",
    "nsenter",
    "dpkg-buildpackage",
    "dh",
    "pybuild",
    "lintian",
)

Say = Callable[[str], None]


def _missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "the system test boots a container and needs root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)}: run scripts/bootstrap --system-test"
    return None


@pytest.fixture(scope="session", autouse=True)
def _system_prerequisites() -> None:
    reason = _missing_prerequisite()
    if reason:
        pytest.skip(reason)


class Transcript:
    """Steps to the terminal and the transcript; details to the transcript only."""

    def __init__(self, config: pytest.Config, file: TextIO) -> None:
        self.reporter = config.pluginmanager.getplugin("terminalreporter")
        self.capture = config.pluginmanager.getplugin("capturemanager")
        self.file = file
        self.started = time.monotonic()

    def _stamp(self) -> str:
        return f"{time.monotonic() - self.started:6.1f}s"

    def step(self, message: str) -> None:
        line = f"[system {self._stamp()}] {message}"
        self.file.write(line + "\n")
        self.file.flush()
        if self.reporter is None:
            return
        # Output capture would hide the line until the test fails; steps show as they happen.
        if self.capture is not None:
            with self.capture.global_and_fixture_disabled():
                self.reporter.write_line(line)
        else:
            self.reporter.write_line(line)

    def detail(self, message: str) -> None:
        self.file.write(f"         {self._stamp()} {message}\n")
        self.file.flush()


@pytest.fixture(scope="session")
def transcript(request: pytest.FixtureRequest) -> Iterator[Transcript]:
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "transcript.log", "w") as file:
        yield Transcript(request.config, file)


@pytest.fixture(scope="session")
def say(transcript: Transcript) -> Say:
    return transcript.step


@pytest.fixture(scope="session")
def build_output(transcript: Transcript) -> tuple[subprocess.CompletedProcess[str], Path]:
    """packaging/build-deb's run (from HEAD; TAPD_SYSTEST_WORKTREE=1: the working tree)."""
    out = OUT / "deb"
    shutil.rmtree(out, ignore_errors=True)
    command = [str(REPO / "packaging" / "build-deb"), str(out)]
    if os.environ.get("TAPD_SYSTEST_WORKTREE"):
        command.insert(1, "--worktree")
    transcript.step("building the package: " + " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    transcript.detail(result.stdout + result.stderr)
    return result, out


@pytest.fixture(scope="session")
def tapd_deb(build_output: tuple[subprocess.CompletedProcess[str], Path]) -> Path:
    result, out = build_output
    debs = sorted(out.glob("tapd_*_all.deb"))
    if result.returncode != 0 or not debs:
        pytest.fail(f"packaging/build-deb failed:\n{result.stdout}{result.stderr}")
    return debs[-1]


@pytest.fixture(scope="module")
def container(tapd_deb: Path, transcript: Transcript) -> Iterator[BootedContainer]:
    """A freshly booted Debian 12 with PostgreSQL 15 and pgsphere; tapd_*.deb in /srv/systest."""
    lower = cached_root(deb_depends(tapd_deb), transcript.step)
    run_root = RunRoot(lower)
    transcript.step(
        f"per-run root {run_root.path} ({'overlay' if run_root.overlay else 'copy'} of {lower})"
    )
    booted = BootedContainer(run_root.path, OUT / "console.log", transcript.detail)
    try:
        drop = run_root.path / "srv" / "systest"
        drop.mkdir(parents=True)
        shutil.copy2(tapd_deb, drop)
        drop.chmod(0o755)
        started = time.monotonic()
        booted.boot()
        took = time.monotonic() - started
        transcript.step(f"booted Debian 12 under systemd-nspawn in {took:.1f} s")
        yield booted
    finally:
        booted.stop()
        run_root.remove()
        transcript.step("container stopped, per-run root removed")
