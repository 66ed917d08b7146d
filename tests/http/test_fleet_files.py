"""Job files on another host of a fleet, as one host sees them (issue 14, item 1).

The fleet test (tests/fleet) runs several hosts; these checks need only one:
the internal routes other hosts use, and what a client gets when the host
holding a job's files cannot be asked.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tapd.peers import TOKEN_HEADER, is_job_file_name
from tapd.store import JobPhase, JobStore, ResultEntry
from tests.http.conftest import RunningService, free_port, start_service, stop_service

INTERNAL_URL = "http://127.0.0.1:9/tap"


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory) -> Iterator[RunningService]:  # type: ignore[no-untyped-def]
    settings = {"TAPD_INTERNAL_URL": INTERNAL_URL, "TAPD_INTERNAL_TIMEOUT": "2"}
    running = start_service(pg_cluster, tmp_path_factory.mktemp("fleet"), "http_fleet", settings)
    yield running
    stop_service(running, pg_cluster, "http_fleet")


@pytest.fixture
def store(service: RunningService) -> Iterator[JobStore]:
    with psycopg.connect(service.dsn, autocommit=True) as conn:
        yield JobStore(conn)


def own_token(store: JobStore) -> str:
    address = store.host_address(socket.gethostname())
    assert address is not None and address.internal_url == INTERNAL_URL
    return address.token


def completed_elsewhere(store: JobStore, host: str) -> str:
    """A COMPLETED job whose result was written by a daemon on ``host``."""
    job = store.create_job({"LANG": "ADQL", "QUERY": "SELECT 1"}, execution_duration=60,
                           destruction=None, queue=True)  # fmt: skip
    claimed = {j.job_id: j for j in store.claim_jobs("a-daemon-elsewhere", host, 100)}
    entry = ResultEntry("result", "result.csv", "text/csv", 4, 1, False)
    attempt = claimed[job.job_id].attempt
    assert store.finish_job(attempt, JobPhase.COMPLETED, results=[entry])
    return job.job_id


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("result.vot", True),
        ("error.xml", True),
        ("uploads/table1", True),
        (".tmp-result.vot.123", False),
        ("uploads/.tmp-x", False),
        ("../other/result.vot", False),
        ("uploads/../../etc", False),
        ("other/result.vot", False),
        ("uploads/a/b", False),
        ("", False),
    ],
)
def test_only_job_files_are_served_to_other_hosts(name: str, allowed: bool) -> None:
    assert is_job_file_name(name) is allowed


def test_the_service_advertises_where_other_hosts_reach_it(store: JobStore) -> None:
    assert len(own_token(store)) >= 20


def test_job_files_are_served_to_other_hosts_only_with_the_token(
    service: RunningService, client: httpx.Client, store: JobStore
) -> None:
    job_dir = service.jobs_dir / "somejob"
    job_dir.mkdir()
    (job_dir / "result.csv").write_text("x\n1\n")
    path = "/fleet/jobs/somejob/result.csv"

    assert client.get(path).status_code == 403
    assert client.get(path, headers={TOKEN_HEADER: "guess"}).status_code == 403
    answer = client.get(path, headers={TOKEN_HEADER: own_token(store)})
    assert answer.status_code == 200
    assert answer.text == "x\n1\n"
    hidden = client.get("/fleet/jobs/somejob/.tmp-x", headers={TOKEN_HEADER: own_token(store)})
    assert hidden.status_code == 404


def test_another_host_removes_a_job_directory_only_once_the_job_is_gone(
    service: RunningService, client: httpx.Client, store: JobStore
) -> None:
    job_id = completed_elsewhere(store, socket.gethostname())
    (service.jobs_dir / job_id).mkdir()
    headers = {TOKEN_HEADER: own_token(store)}

    assert client.delete(f"/fleet/jobs/{job_id}", headers=headers).status_code == 409
    assert (service.jobs_dir / job_id).is_dir()
    store.delete_job(job_id)
    assert client.delete(f"/fleet/jobs/{job_id}", headers=headers).status_code == 204
    assert not (service.jobs_dir / job_id).exists()


def test_result_on_a_host_that_does_not_answer_is_a_503_naming_it(
    client: httpx.Client, store: JobStore
) -> None:
    closed_port = free_port()
    store.advertise_host("db-less-host", f"http://127.0.0.1:{closed_port}/tap", "t")
    job_id = completed_elsewhere(store, "db-less-host")

    answer = client.get(f"/async/{job_id}/results/result")

    assert answer.status_code == 503
    assert "db-less-host" in answer.text
    assert "does not answer" in answer.text


def test_result_on_a_host_that_never_advertised_is_a_503_saying_so(
    client: httpx.Client, store: JobStore
) -> None:
    job_id = completed_elsewhere(store, "silent-host")

    answer = client.get(f"/async/{job_id}/results/result")

    assert answer.status_code == 503
    assert "silent-host" in answer.text
    assert "internal_url" in answer.text


def test_a_file_present_here_is_served_whoever_wrote_it(
    service: RunningService, client: httpx.Client, store: JobStore
) -> None:
    job_id = completed_elsewhere(store, "silent-host")
    (service.jobs_dir / job_id).mkdir()
    (service.jobs_dir / job_id / "result.csv").write_text("x\n1\n")

    answer = client.get(f"/async/{job_id}/results/result")

    assert answer.status_code == 200
    assert answer.text == "x\n1\n"
