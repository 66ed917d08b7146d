"""Any host serves any job: results, error documents and uploads live on the host that
wrote them and are streamed through whichever host a client asks (issue 14, item 1)."""

from __future__ import annotations

import io
import os
import shutil
import time

import httpx
import pytest

from tapd.store import JobNotFound
from tests.fleet.cluster import wait_until
from tests.fleet.topology import Fleet
from tests.fleet.uws import error_summary, submit, wait_phase

pytestmark = pytest.mark.fleet

UPLOAD = b"""<?xml version="1.0"?>
<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">
 <RESOURCE><TABLE>
  <FIELD name="id" datatype="int"/>
  <DATA><TABLEDATA><TR><TD>7</TD></TR><TR><TD>8</TD></TR></TABLEDATA></DATA>
 </TABLE></RESOURCE>
</VOTABLE>
"""


@pytest.mark.parametrize(("here", "there"), [("app1", "app2"), ("app2", "app1")])
def test_result_of_a_job_run_on_another_host_is_streamed_through_this_one(
    fleet: Fleet, here: str, there: str
) -> None:
    a, b = fleet.apps[here], fleet.apps[there]
    with fleet.only_runner(b):
        job_id = submit(a.url, "SELECT TOP 5 x FROM public.numbers ORDER BY x", FORMAT="csv")
        assert wait_phase(a.url, job_id) == "COMPLETED"
    with fleet.store() as store:
        assert store.get_job(job_id).runner_host == there
    assert not (a.jobs_dir / job_id).exists()
    assert (b.jobs_dir / job_id).is_dir()

    answer = httpx.get(f"{a.url}/async/{job_id}/results/result", timeout=30)

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.text.split() == ["x", "1", "2", "3", "4", "5"]


def test_error_document_of_a_job_that_failed_on_another_host(fleet: Fleet) -> None:
    a, b = fleet.apps["app1"], fleet.apps["app2"]
    with fleet.only_runner(b):
        job_id = submit(a.url, "SELECT 1 / (x - x) AS boom FROM public.numbers")
        assert wait_phase(a.url, job_id) == "ERROR"
    assert (b.jobs_dir / job_id / "error.xml").is_file()

    answer = httpx.get(f"{a.url}/async/{job_id}/error", timeout=30)

    assert answer.status_code == 200, answer.text
    assert b'name="QUERY_STATUS" value="ERROR"' in answer.content
    assert b"division by zero" in answer.content
    assert b'name="QUERY"' in answer.content  # the runner's own document, not a summary


@pytest.fixture
def completed_on_app2(fleet: Fleet) -> str:
    a, b = fleet.apps["app1"], fleet.apps["app2"]
    with fleet.only_runner(b):
        job_id = submit(a.url, "SELECT TOP 3 x FROM public.numbers ORDER BY x", FORMAT="csv")
        assert wait_phase(a.url, job_id) == "COMPLETED"
    return job_id


def test_host_holding_the_files_down_is_a_503_naming_it_and_a_local_copy_is_served(
    fleet: Fleet, completed_on_app2: str
) -> None:
    a, b = fleet.apps["app1"], fleet.apps["app2"]
    job_id = completed_on_app2
    b.stop_server()
    try:
        started = time.monotonic()
        answer = httpx.get(f"{a.url}/async/{job_id}/results/result", timeout=60)
        assert answer.status_code == 503, answer.text
        assert "app2" in answer.text
        assert time.monotonic() - started < 30
        # The job document itself never needs the other host.
        assert httpx.get(f"{a.url}/async/{job_id}", timeout=30).status_code == 200

        # A shared jobs directory (NFS) is the simpler set-up: a file present
        # locally is served from here, whoever wrote it.
        shutil.copytree(b.jobs_dir / job_id, a.jobs_dir / job_id)
        answer = httpx.get(f"{a.url}/async/{job_id}/results/result", timeout=30)
        assert answer.status_code == 200
        assert answer.text.split() == ["x", "1", "2", "3"]
    finally:
        b.start_server()


def test_delete_through_one_host_removes_the_files_on_their_host(
    fleet: Fleet, completed_on_app2: str
) -> None:
    a, b = fleet.apps["app1"], fleet.apps["app2"]
    job_id = completed_on_app2
    assert (b.jobs_dir / job_id).is_dir()

    answer = httpx.delete(f"{a.url}/async/{job_id}", timeout=30)

    assert answer.status_code == 303
    assert not (b.jobs_dir / job_id).exists()
    assert httpx.get(f"{b.url}/async/{job_id}", timeout=30).status_code == 404


def test_destruction_by_another_host_leaves_no_files_behind(
    fleet: Fleet, completed_on_app2: str
) -> None:
    """app1's sweep destroys the job; app2's own sweep removes its orphaned directory
    once the directory is older than a job creation can take."""
    b = fleet.apps["app2"]
    job_id = completed_on_app2
    with fleet.only_runner(fleet.apps["app1"]), fleet.store() as store:
        store.conn.execute(
            "UPDATE tapd.jobs SET destruction = now() - interval '1 second' WHERE job_id = %s",
            (job_id,),
        )

        def destroyed() -> bool:
            try:
                store.get_job(job_id)
            except JobNotFound:
                return True
            return False

        wait_until(destroyed, 60, f"app1's sweep to destroy job {job_id}")
    assert (b.jobs_dir / job_id).is_dir()
    an_hour_ago = time.time() - 3600
    os.utime(b.jobs_dir / job_id, (an_hour_ago, an_hour_ago))

    wait_until(lambda: not (b.jobs_dir / job_id).exists(), 60, "app2 to remove the directory")


def test_abort_through_one_host_stops_the_job_running_on_another(fleet: Fleet) -> None:
    a, b = fleet.apps["app1"], fleet.apps["app2"]
    with fleet.only_runner(b):
        job_id = submit(a.url, "SELECT x FROM public.sleepy")
        assert wait_phase(a.url, job_id, ("EXECUTING",)) == "EXECUTING"
        with fleet.store() as store:
            wait_until(lambda: store.job_sessions(job_id), 30, "the job's query to run")
            child = store.get_job(job_id).runner_pid
        assert child is not None and os.path.exists(f"/proc/{child}")

        answer = httpx.post(f"{a.url}/async/{job_id}/phase", data={"PHASE": "ABORT"}, timeout=30)

        assert answer.status_code == 303
        assert wait_phase(a.url, job_id) == "ABORTED"
        assert wait_phase(b.url, job_id) == "ABORTED"
        wait_until(lambda: not os.path.exists(f"/proc/{child}"), 30, "app2's child to end")
        with fleet.store() as store:
            wait_until(lambda: not store.job_sessions(job_id), 30, "the query to end")
            assert store.get_job(job_id).phase == "ABORTED"


def test_upload_stored_on_one_host_runs_on_another_and_is_served_by_both(
    fleet: Fleet,
) -> None:
    a, b = fleet.apps["app1"], fleet.apps["app2"]
    with fleet.only_runner(b):
        job_id = submit(
            a.url,
            "SELECT id FROM TAP_UPLOAD.mine ORDER BY id",
            FORMAT="csv",
            UPLOAD="mine,param:table1",
            files={"table1": ("mine.xml", io.BytesIO(UPLOAD), "application/x-votable+xml")},
        )
        phase = wait_phase(a.url, job_id)
        assert phase == "COMPLETED", error_summary(a.url, job_id)
    assert (a.jobs_dir / job_id / "uploads" / "table1").is_file()

    result = httpx.get(f"{a.url}/async/{job_id}/results/result", timeout=30)
    assert result.text.split() == ["id", "7", "8"]
    for app in (a, b):
        answer = httpx.get(f"{app.url}/async/{job_id}/parameters/table1", timeout=30)
        assert answer.status_code == 200, (app.name, answer.text)
        assert answer.content == UPLOAD
