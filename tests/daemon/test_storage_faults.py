"""A job directory on a disk that is full or cannot be written: the job says so
in words, the operator gets one log event naming the path, other jobs go on.

These tests mount a small tmpfs as the jobs directory, so they need root
(marker ``root``: ``scripts/test`` runs them in its root pass, as CI does).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tapd.store import JobPhase
from tests.sites import DaemonProcess, Site

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts a tmpfs)"),
]


@pytest.fixture
def small_disk(site: Site, tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs as the site's jobs directory."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        site.jobs_dir = mount
        site.write_config(runner={"jobs_dir": str(mount)}, log={"format": "json"})
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> Path:
    """A file taking every free byte of ``disk``."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        try:
            while True:
                out.write(b"\0" * 512)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def events(daemon: DaemonProcess, name: str) -> list[dict[str, Any]]:
    found = []
    for line in daemon.log().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == name:
            found.append(event)
    return found


def test_a_full_disk_ends_the_job_saying_so_and_other_jobs_carry_on(
    site: Site, daemons: Callable[..., DaemonProcess], small_disk: Path
) -> None:
    """(issue 10 item 5)"""
    daemon = daemons()
    filler = fill(small_disk)
    job_id = site.submit("SELECT x FROM public.numbers", RESPONSEFORMAT="csv")
    job = site.wait_phase(job_id)
    assert job.phase == JobPhase.ERROR and job.error is not None
    assert "the disk holding the job directory is full" in job.error.message
    assert str(small_disk) not in job.error.message  # the server's paths are the operator's
    (event,) = events(daemon, "job.storage_failed")
    assert event["job_id"] == job_id and event["errno"] == "ENOSPC"
    assert event["path"].startswith(str(small_disk / job_id))
    assert "Traceback" not in daemon.log()
    filler.unlink()
    again = site.wait_phase(site.submit("SELECT x FROM public.numbers", RESPONSEFORMAT="csv"))
    assert again.phase == JobPhase.COMPLETED


def test_an_unwritable_job_directory_ends_the_job_saying_so(
    site: Site, daemons: Callable[..., DaemonProcess], small_disk: Path
) -> None:
    """(issue 10 item 5)"""
    daemon = daemons()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        job_id = site.submit("SELECT x FROM public.numbers", RESPONSEFORMAT="csv")
        job = site.wait_phase(job_id)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert job.phase == JobPhase.ERROR and job.error is not None
    assert "the job directory is not writable" in job.error.message
    assert str(small_disk) not in job.error.message
    (event,) = events(daemon, "job.storage_failed")
    assert event["job_id"] == job_id and event["errno"] == "EROFS"
    assert event["path"].startswith(str(small_disk))
    assert "Traceback" not in daemon.log()
    again = site.wait_phase(site.submit("SELECT x FROM public.numbers", RESPONSEFORMAT="csv"))
    assert again.phase == JobPhase.COMPLETED
