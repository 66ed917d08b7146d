"""Spooled multipart parts (``.tmp-part-*`` in the jobs directory) never outlive their request,
and the daemon's sweep removes orphans an hour old (left by a killed service)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tapd.store.jobdir import SPOOL_PREFIX, remove_orphaned_spool_files
from tests.http.conftest import RunningService, start_service, stop_service

TABLE = b"""<?xml version="1.0"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE><TABLE>
<FIELD name="a" datatype="int"/><DATA><TABLEDATA><TR><TD>1</TD></TR></TABLEDATA></DATA>
</TABLE></RESOURCE></VOTABLE>"""

QUERY = "SELECT * FROM TAP_UPLOAD.t"


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory) -> Iterator[RunningService]:
    settings = {"TAPD_SWEEP_INTERVAL": "0.2", "TAPD_UPLOAD_MAX_BYTES": "100000"}
    running = start_service(
        pg_cluster, tmp_path_factory.mktemp("spool"), "http_spool", settings, daemon=True
    )
    yield running
    stop_service(running, pg_cluster, "http_spool")


def spooled(service: RunningService) -> list[Path]:
    return sorted(service.jobs_dir.rglob(f"{SPOOL_PREFIX}*"))


def pending_job(client: httpx.Client) -> str:
    response = client.post("/async", data={"QUERY": "SELECT 1"})
    assert response.status_code == 303
    return str(response.headers["location"])


def twice(name: str = "t") -> list[tuple[str, tuple[str, bytes]]]:
    return [(name, ("a.xml", TABLE)), (name, ("b.xml", TABLE))]


def one(name: str = "t") -> list[tuple[str, tuple[str, bytes]]]:
    return [(name, ("a.xml", TABLE))]


UPLOAD = {"UPLOAD": "t,param:t", "LANG": "ADQL", "QUERY": QUERY}

Request = Callable[[httpx.Client, str], httpx.Response]

REQUESTS: dict[str, Request] = {
    "GET /async with a multipart body": lambda c, job: c.request(
        "GET", "/async", files=one(), data={"LAST": "1"}
    ),
    "GET job with a multipart body": lambda c, job: c.request("GET", job, files=one()),
    "GET job WAIT with a multipart body": lambda c, job: c.request(
        "GET", job, files=one(), data={"WAIT": "0"}
    ),
    "POST /async, a part twice": lambda c, job: c.post("/async", data=UPLOAD, files=twice()),
    "POST /async, two parts": lambda c, job: c.post(
        "/async", data=UPLOAD, files=one("t") + one("u")
    ),
    "POST /async refused": lambda c, job: c.post(
        "/async", data={**UPLOAD, "MAXREC": "x"}, files=one()
    ),
    "POST /sync": lambda c, job: c.post("/sync", data=UPLOAD, files=one()),
    "POST /sync, a part twice": lambda c, job: c.post("/sync", data=UPLOAD, files=twice()),
    "POST /sync refused": lambda c, job: c.post(
        "/sync", data={**UPLOAD, "LANG": "SQL"}, files=one()
    ),
    "GET /sync with a multipart body": lambda c, job: c.request(
        "GET", "/sync", data=UPLOAD, files=one()
    ),
    "POST parameters": lambda c, job: c.post(job + "/parameters", data=UPLOAD, files=one()),
    "POST parameters, a part twice": lambda c, job: c.post(
        job + "/parameters", data=UPLOAD, files=twice()
    ),
    "POST parameters of a queued job": lambda c, job: (
        c.post(job + "/phase", data={"PHASE": "ABORT"}),
        c.post(job + "/parameters", data=UPLOAD, files=one()),
    )[1],
    "POST phase with a file": lambda c, job: c.post(
        job + "/phase", data={"PHASE": "RUN"}, files=one()
    ),
    "POST executionduration with a file": lambda c, job: c.post(
        job + "/executionduration", data={"EXECUTIONDURATION": "5"}, files=one()
    ),
    "POST destruction with a file": lambda c, job: c.post(
        job + "/destruction", data={"DESTRUCTION": "2999-01-01"}, files=one()
    ),
    "POST job with a file": lambda c, job: c.post(job, data={"QUERY": "x"}, files=one()),
    "DELETE job with a file": lambda c, job: c.request("DELETE", job, files=one()),
    "POST oversize part": lambda c, job: c.post(
        "/async", data=UPLOAD, files=[("t", ("a.xml", TABLE + b" " * 100_001))]
    ),
    "POST malformed multipart": lambda c, job: c.post(
        "/async",
        content=b"--xx\r\nContent-Disposition: form-data; name=t; filename=a\r\n\r\nabc",
        headers={"Content-Type": "multipart/form-data; boundary=xx"},
    ),
}


@pytest.mark.parametrize("kind", list(REQUESTS))
def test_no_spooled_part_outlives_its_request(service, client, kind: str) -> None:
    job = pending_job(client)
    before = spooled(service)
    response = REQUESTS[kind](client, job)
    assert response.status_code < 500, response.text
    assert spooled(service) == before


def test_the_daemon_sweep_removes_orphans_older_than_an_hour(service) -> None:
    old = service.jobs_dir / f"{SPOOL_PREFIX}orphan-old"
    fresh = service.jobs_dir / f"{SPOOL_PREFIX}orphan-fresh"
    for path in (old, fresh):
        path.write_bytes(b"x" * 1000)
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    deadline = time.monotonic() + 60
    while old.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not old.exists()
    assert fresh.exists()
    fresh.unlink()


def test_only_old_temporary_files_at_the_top_are_removed(tmp_path: Path) -> None:
    now = time.time()
    files = {
        name: tmp_path / name
        for name in (".tmp-part-1-2-3", ".tmp-part-new", "job1", ".tmp-probe-9", "result.xml")
    }
    (tmp_path / "job1").mkdir()
    for name, path in files.items():
        if name != "job1":
            path.write_bytes(b"x")
        os.utime(path, (now - 4000, now - 4000) if name != ".tmp-part-new" else (now, now))
    removed = remove_orphaned_spool_files(tmp_path, max_age=3600, now=now)
    assert sorted(p.name for p in removed) == [".tmp-part-1-2-3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".tmp-part-new",
        ".tmp-probe-9",
        "job1",
        "result.xml",
    ]
