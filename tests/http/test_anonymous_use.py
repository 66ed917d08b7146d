"""Anonymous use is bounded: jobs counted per client address (or as one pool), parameter
sizes limited, the quota check and the insert one step; the job list shows an anonymous
caller its own address's jobs. Client addresses are distinct loopback addresses."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import httpx
import pytest
from lxml import etree

from tapd.http.callers import Caller, listing_filter, quota_for
from tapd.store import ANY_OWNER
from tests.http.conftest import RunningService, start_service, stop_service

HEADER = "X-Remote-User"
LIMIT = 5


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory) -> Iterator[RunningService]:
    settings = {
        "TAPD_OWNER_HEADER": HEADER,
        "TAPD_JOBS_PER_OWNER": str(LIMIT),
        "TAPD_QUERY_MAX_BYTES": "2000",
        "TAPD_PARAMETER_MAX_BYTES": "200",
    }
    running = start_service(pg_cluster, tmp_path_factory.mktemp("anon"), "http_anon", settings)
    yield running
    stop_service(running, pg_cluster, "http_anon")


def client_from(service: RunningService, address: str, user: str | None = None) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    headers = {HEADER: user} if user else {}
    return httpx.Client(base_url=service.url, transport=transport, headers=headers, timeout=60)


def listed(client: httpx.Client) -> set[str]:
    return {r.get("id") for r in etree.fromstring(client.get("/async").content)}


def test_anonymous_jobs_are_counted_per_client_address(service: RunningService) -> None:
    with client_from(service, "127.0.0.2") as first, client_from(service, "127.0.0.3") as second:
        for _ in range(LIMIT):
            assert first.post("/async", data={"QUERY": "SELECT 1"}).status_code == 303
        refused = first.post("/async", data={"QUERY": "SELECT 1"})
        assert refused.status_code == 403
        assert f"your address has {LIMIT} anonymous jobs" in refused.text
        assert second.post("/async", data={"QUERY": "SELECT 1"}).status_code == 303
        # Deleting one makes room again.
        one = next(iter(listed(first)))
        assert first.delete(f"/async/{one}").status_code == 303
        assert first.post("/async", data={"QUERY": "SELECT 1"}).status_code == 303


@pytest.mark.parametrize(("address", "user"), [("127.0.0.4", None), ("127.0.0.5", "erin")])
def test_concurrent_creates_never_exceed_the_quota(service, address, user) -> None:
    with client_from(service, address, user) as client:

        def create(_: int) -> int:
            return client.post("/async", data={"QUERY": "SELECT 1"}).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(create, range(24)))
        assert statuses.count(303) == LIMIT
        assert statuses.count(403) == 24 - LIMIT
        assert len(listed(client)) == LIMIT


def test_an_anonymous_caller_lists_only_its_own_address_jobs(service) -> None:
    with client_from(service, "127.0.0.6") as mine, client_from(service, "127.0.0.7") as theirs:
        own = mine.post("/async", data={"QUERY": "SELECT 1"}).headers["location"]
        other = theirs.post("/async", data={"QUERY": "SELECT 1"}).headers["location"]
        assert listed(mine) == {own.rsplit("/", 1)[1]}
        assert listed(theirs) == {other.rsplit("/", 1)[1]}


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"QUERY": "SELECT 1 " + "x" * 3000}, "QUERY"),
        ({"QUERY": "SELECT 1", "RUNID": "r" * 300}, "RUNID"),
        ({"QUERY": "SELECT 1", "NOTE": "n" * 300}, "NOTE"),
        ({"QUERY": "SELECT 1", **{f"P{i}": "1" for i in range(1001)}}, "parameters"),
    ],
)
def test_oversized_parameters_are_refused_on_async_and_sync(service, data, named) -> None:
    with client_from(service, "127.0.0.8") as client:
        before = listed(client)
        response = client.post("/async", data=data)
        assert response.status_code == 413, response.text
        assert named in response.text
        assert listed(client) == before
        response = client.post("/sync", data={"LANG": "ADQL", **data})
        assert response.status_code == 413
        assert named in response.text
        job = client.post("/async", data={"QUERY": "SELECT 1"}).headers["location"]
        response = client.post(job + "/parameters", data=data)
        assert response.status_code == 413
        client.delete(job)


QUOTAS = [
    # (owner, address, anonymous_quota) -> (owner, address counted) or None
    ("alice", "10.0.0.1", "address", ("alice", None)),
    ("alice", "10.0.0.1", "off", ("alice", None)),
    (None, "10.0.0.1", "address", (None, "10.0.0.1")),
    (None, None, "address", (None, "")),
    (None, "10.0.0.1", "shared", (None, None)),
    (None, "10.0.0.1", "off", None),
]


@pytest.mark.parametrize(("owner", "address", "mode", "counted"), QUOTAS)
def test_which_jobs_a_new_job_is_counted_with(owner, address, mode, counted) -> None:
    quota = quota_for(Caller(owner, address), limit=7, anonymous_quota=mode)
    if counted is None:
        assert quota is None
    else:
        assert quota is not None
        assert (quota.owner, quota.client_address, quota.limit) == (*counted, 7)


LISTS = [
    ("alice", "10.0.0.1", "own", {"owner": "alice", "client_address": ANY_OWNER}),
    ("alice", "10.0.0.1", "all", {"owner": "alice", "client_address": ANY_OWNER}),
    (None, "10.0.0.1", "own", {"owner": None, "client_address": "10.0.0.1"}),
    (None, "10.0.0.1", "all", {"owner": None, "client_address": ANY_OWNER}),
]


@pytest.mark.parametrize(("owner", "address", "mode", "expected"), LISTS)
def test_which_jobs_a_caller_lists(owner, address, mode, expected) -> None:
    assert listing_filter(Caller(owner, address), anonymous_job_list=mode) == expected
