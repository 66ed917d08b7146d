"""The UWS 1.1 job tree of a running ``tapd serve``: creation, control, children, bad requests.

No runner daemon here: jobs stay where the HTTP side puts them.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import http.client
import threading
import time
import urllib.parse
from collections.abc import Iterator

import httpx
import pytest
from lxml import etree

from tests.http.conftest import RunningService, start_service, stop_service

NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0", "xlink": "http://www.w3.org/1999/xlink"}
WAIT_MAX = 3


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory) -> Iterator[RunningService]:
    settings = {
        "TAPD_WAIT_MAX": str(WAIT_MAX),
        "TAPD_UPLOAD_MAX_BYTES": "10000",
        "TAPD_REQUEST_MAX_BYTES": "60000",
        "TAPD_EXECUTION_DURATION_MAX": "3600",
        "TAPD_DESTRUCTION_MAX": str(30 * 86400),
    }
    running = start_service(pg_cluster, tmp_path_factory.mktemp("uws"), "http_uws", settings)
    yield running
    stop_service(running, pg_cluster, "http_uws")


def create(client: httpx.Client, **params: str) -> str:
    response = client.post("/async", data=params)
    assert response.status_code == 303, response.text
    return response.headers["location"]


def job_xml(client: httpx.Client, url: str, **params: str) -> etree._Element:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    return etree.fromstring(response.content)


def phase_of(client: httpx.Client, url: str) -> str:
    return client.get(url + "/phase").text


def job_count(client: httpx.Client) -> int:
    return len(etree.fromstring(client.get("/async").content))


def test_creation_answers_303_to_an_absolute_job_url_of_a_pending_job(
    client, service, ivoa_schemas
) -> None:
    """(UWS-02, UWS-10, UWS-20, UWS-30, UWS-40, TAP-17)"""
    url = create(client, LANG="ADQL", QUERY="SELECT 1", RUNID="TAPLINT-001", REQUEST="doQuery")
    assert url.startswith(service.url + "/async/")
    job_id = url.rsplit("/", 1)[1]
    response = client.get(url)
    ivoa_schemas.assert_valid(response.content)
    root = etree.fromstring(response.content)
    assert root.findtext("uws:jobId", namespaces=NS) == job_id
    assert root.findtext("uws:phase", namespaces=NS) == "PENDING"
    assert root.findtext("uws:runId", namespaces=NS) == "TAPLINT-001"
    params = {p.get("id"): p.text for p in root.findall("uws:parameters/uws:parameter", NS)}
    assert params == {
        "LANG": "ADQL",
        "QUERY": "SELECT 1",
        "RUNID": "TAPLINT-001",
        "REQUEST": "doQuery",
    }


def test_phase_run_in_the_creating_post_queues_at_once_and_is_not_a_parameter(client) -> None:
    """(UWS-35, UWS-49)"""
    url = create(client, LANG="ADQL", QUERY="SELECT 1", phase="run")
    root = job_xml(client, url)
    assert root.findtext("uws:phase", namespaces=NS) == "QUEUED"
    assert "PHASE" not in {p.get("id") for p in root.findall(".//uws:parameter", NS)}


def test_children_are_text_plain_and_agree_with_the_job_document(client) -> None:
    """(UWS-01, UWS-03, UWS-05, UWS-21)"""
    url = create(client)
    root = job_xml(client, url)
    for child, element in [("phase", "phase"), ("executionduration", "executionDuration"),
                           ("destruction", "destruction"), ("quote", "quote")]:  # fmt: skip
        response = client.get(f"{url}/{child}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == root.findtext(f"uws:{element}", namespaces=NS)
    owner = client.get(url + "/owner")
    assert (owner.status_code, owner.text) == (200, "")
    for child in ("parameters", "results"):
        response = client.get(f"{url}/{child}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/xml")


def test_error_and_result_of_a_pending_job_are_404(client) -> None:
    """(UWS-01, TAP-34)"""
    url = create(client)
    assert client.get(url + "/error").status_code == 404
    response = client.get(url + "/results/result")
    assert response.status_code == 404
    assert "is PENDING" in response.text


def test_parameters_posted_again_replace_and_never_repeat(client) -> None:
    """(TAP-18, UWS-47, DALI-01)"""
    url = create(client, RUNID="first", QUERY="SELECT 1")
    assert client.post(url + "/parameters", data={"runId": "second"}).status_code == 303
    assert client.post(url + "/parameters", data={"query": "SELECT 2"}).status_code == 303
    root = job_xml(client, url)
    params = [(p.get("id"), p.text) for p in root.findall(".//uws:parameter", NS)]
    assert sorted(params) == [("QUERY", "SELECT 2"), ("RUNID", "second")]
    assert root.findtext("uws:runId", namespaces=NS) == "second"


def test_abort_then_run_is_refused_and_changes_nothing(client) -> None:
    """(UWS-31, UWS-42, UWS-07)"""
    url = create(client)
    assert client.post(url + "/phase", data={"PHASE": "ABORT"}).headers["location"] == url
    assert phase_of(client, url) == "ABORTED"
    response = client.post(url + "/phase", data={"PHASE": "RUN"})
    assert response.status_code == 403
    assert "ABORTED" in response.text
    assert phase_of(client, url) == "ABORTED"


def test_parameters_of_a_queued_job_cannot_change(client) -> None:
    """(UWS-47, UWS-07, D-09)"""
    url = create(client, QUERY="SELECT 1", PHASE="RUN")
    response = client.post(url + "/parameters", data={"QUERY": "SELECT 2"})
    assert response.status_code == 403
    assert "only change while PENDING" in response.text
    assert job_xml(client, url).find(".//uws:parameter[@id='QUERY']", NS).text == "SELECT 1"


@pytest.mark.parametrize("value", ["SUSPEND", "", "RUNNING"])
def test_bad_phase_value_is_400(client, value: str) -> None:
    url = create(client)
    response = client.post(url + "/phase", data={"PHASE": value})
    assert response.status_code == 400
    assert "PHASE" in response.text
    assert phase_of(client, url) == "PENDING"


def test_delete_and_action_delete_forget_the_job(client, service) -> None:
    """(UWS-43, UWS-44, UWS-25)"""
    for delete in (lambda u: client.delete(u), lambda u: client.post(u, data={"ACTION": "DELETE"})):
        url = create(client)
        (service.jobs_dir / url.rsplit("/", 1)[1]).mkdir()
        response = delete(url)
        assert response.status_code == 303
        assert response.headers["location"] == service.url + "/async?LAST=20"
        assert client.get(url).status_code == 404
        assert client.get(url + "/phase").status_code == 404
        assert not (service.jobs_dir / url.rsplit("/", 1)[1]).exists()


def test_unknown_job_is_404_with_its_id(client) -> None:
    """(UWS-07, TAP-55)"""
    response = client.get("/async/nosuchjob")
    assert response.status_code == 404
    assert "no job with id 'nosuchjob'" in response.text


@pytest.mark.parametrize(
    "path",
    ["/async/..%2F..%2Fetc%2Fpasswd", "/async/%2e%2e", "/async/a%00b/phase", "/async/..",
     "/async/x%2Fy/results/result", "/async/%2E%2E/results/result"],
)  # fmt: skip
def test_path_tricks_in_job_ids_are_404_and_touch_nothing(client, service, path: str) -> None:
    before = sorted(service.jobs_dir.iterdir())
    address = urllib.parse.urlsplit(service.url)
    for method in ("GET", "POST", "DELETE"):
        # http.client sends the path as written (httpx would resolve the dot segments).
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        connection.request(method, address.path + path)
        response = connection.getresponse()
        body = response.read().decode()
        connection.close()
        assert response.status in (404, 405), (method, path, response.status, body)
        if response.status == 404:
            assert body.strip()
    assert sorted(service.jobs_dir.iterdir()) == before


def test_bad_maxrec_on_creation_is_400_and_creates_nothing(client) -> None:
    before = job_count(client)
    response = client.post("/async", data={"QUERY": "SELECT 1", "MAXREC": "ten"})
    assert response.status_code == 400
    assert "MAXREC must be a non-negative integer, got 'ten'" in response.text
    assert job_count(client) == before


@pytest.mark.parametrize("wait", ["soon", "1.5", "-2"])
def test_bad_wait_is_400(client, wait: str) -> None:
    """(UWS-52)"""
    url = create(client)
    response = client.get(url, params={"WAIT": wait})
    assert response.status_code == 400
    assert "WAIT" in response.text


def test_wait_returns_when_the_phase_changes(client) -> None:
    """(UWS-50, UWS-55, D-07)"""
    url = create(client)
    results: list[str] = []

    def waiting() -> None:
        root = job_xml(client, url, WAIT=str(WAIT_MAX * 10))
        results.append(root.findtext("uws:phase", namespaces=NS))

    thread = threading.Thread(target=waiting)
    thread.start()
    time.sleep(0.5)
    with httpx.Client(follow_redirects=False) as other:
        other.post(url + "/phase", data={"PHASE": "ABORT"})
    thread.join(timeout=WAIT_MAX + 5)
    assert results == ["ABORTED"]


def test_wait_on_a_finished_job_or_other_phase_returns_at_once(client) -> None:
    """(UWS-51, UWS-53)"""
    aborted = create(client)
    client.post(aborted + "/phase", data={"PHASE": "ABORT"})
    pending = create(client)
    for url, params in [(aborted, {"WAIT": "-1"}), (pending, {"WAIT": "60", "PHASE": "QUEUED"})]:
        started = time.monotonic()
        job_xml(client, url, **params)
        # WAIT is capped at WAIT_MAX; returning well before it means it did not block.
        assert time.monotonic() - started < WAIT_MAX - 1


def test_wait_is_capped_by_wait_max(client) -> None:
    """(UWS-54, UWS-52)"""
    url = create(client)
    started = time.monotonic()
    root = job_xml(client, url, WAIT="-1")
    assert root.findtext("uws:phase", namespaces=NS) == "PENDING"
    assert time.monotonic() - started < WAIT_MAX + 2


def test_job_list_filters_by_phase_last_and_after(client, ivoa_schemas) -> None:
    """(UWS-22, UWS-23, UWS-24)"""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    aborted = create(client)
    client.post(aborted + "/phase", data={"PHASE": "ABORT"})
    pending = create(client)
    response = client.get("/async", params={"AFTER": start.isoformat().replace("+00:00", "Z")})
    ivoa_schemas.assert_valid(response.content)
    ids = [r.get("id") for r in etree.fromstring(response.content)]
    assert ids[:2] == [pending.rsplit("/", 1)[1], aborted.rsplit("/", 1)[1]]
    only_aborted = etree.fromstring(client.get("/async", params={"PHASE": "ABORTED"}).content)
    assert {r.findtext("uws:phase", namespaces=NS) for r in only_aborted} == {"ABORTED"}
    assert len(etree.fromstring(client.get("/async", params={"LAST": "1"}).content)) == 1
    hrefs = [
        r.get("{http://www.w3.org/1999/xlink}href") for r in etree.fromstring(response.content)
    ]
    assert hrefs[0] == pending


BAD_FILTERS = [
    ({"LAST": "0"}, "LAST"),
    ({"LAST": "x"}, "LAST"),
    ({"PHASE": "DONE"}, "PHASE"),
    ({"AFTER": "yesterday"}, "AFTER"),
]


@pytest.mark.parametrize(("params", "word"), BAD_FILTERS)
def test_bad_job_list_filters_are_400(client, params: dict[str, str], word: str) -> None:
    """(UWS-24)"""
    response = client.get("/async", params=params)
    assert response.status_code == 400
    assert word in response.text


def test_execution_duration_is_clamped_and_checked(client) -> None:
    """(UWS-46, UWS-62)"""
    url = create(client)
    assert (
        client.post(
            url + "/executionduration", data={"EXECUTIONDURATION": "1000000000"}
        ).status_code
        == 303
    )
    assert client.get(url + "/executionduration").text == "3600"
    assert (
        client.post(url + "/executionduration", data={"EXECUTIONDURATION": "30"}).status_code == 303
    )
    assert client.get(url + "/executionduration").text == "30"
    response = client.post(url + "/executionduration", data={"EXECUTIONDURATION": "half"})
    assert response.status_code == 400
    assert client.get(url + "/executionduration").text == "30"


def test_destruction_is_clamped_never_in_the_past_and_checked(client) -> None:
    """(UWS-45, D-05)"""
    url = create(client)
    far = "2999-01-01T00:00:00Z"
    assert client.post(url + "/destruction", data={"DESTRUCTION": far}).status_code == 303
    latest = dt.datetime.fromisoformat(client.get(url + "/destruction").text.replace("Z", "+00:00"))
    assert latest < dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    assert (
        client.post(url + "/destruction", data={"DESTRUCTION": "2000-01-01T00:00:00Z"}).status_code
        == 303
    )
    soon = dt.datetime.fromisoformat(client.get(url + "/destruction").text.replace("Z", "+00:00"))
    assert soon > dt.datetime.now(dt.UTC)
    assert client.get(url).status_code == 200
    assert client.post(url + "/destruction", data={"DESTRUCTION": "tomorrow"}).status_code == 400


def test_parameters_posted_to_the_job_itself_are_refused_with_directions(client) -> None:
    """(UWS-47)"""
    url = create(client)
    response = client.post(url, data={"QUERY": "SELECT 2"})
    assert response.status_code == 403
    assert "/parameters" in response.text


def test_malformed_multipart_is_400_and_creates_nothing(client) -> None:
    before = job_count(client)
    response = client.post(
        "/async",
        content=b'--b\r\nContent-Disposition: form-data; name="QUERY"\r\n\r\nSELECT',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 400
    assert "malformed multipart" in response.text
    assert job_count(client) == before


def test_oversize_upload_is_413_and_creates_nothing(client, service) -> None:
    before = job_count(client)
    files = {
        "t1": ("t1.xml", b"<VOTABLE>" + b" " * 20000 + b"</VOTABLE>", "application/x-votable+xml")
    }
    response = client.post(
        "/async", data={"UPLOAD": "t1,param:t1", "QUERY": "SELECT 1"}, files=files
    )
    assert response.status_code == 413
    assert "larger than the upload limit of 10000 bytes" in response.text
    assert job_count(client) == before
    assert [p for p in service.jobs_dir.iterdir() if p.name.startswith(".tmp")] == []


def test_oversize_request_is_413(client) -> None:
    response = client.post("/async", data={"QUERY": "x" * 70000})
    assert response.status_code == 413


def test_inline_upload_is_stored_in_the_job_directory(client, service) -> None:
    votable = b"<VOTABLE/>"
    files = {"t1": ("t1.xml", votable, "application/x-votable+xml")}
    response = client.post("/async", data={"UPLOAD": "t1,param:t1"}, files=files)
    assert response.status_code == 303
    job_id = response.headers["location"].rsplit("/", 1)[1]
    assert (service.jobs_dir / job_id / "uploads" / "t1").read_bytes() == votable
    root = job_xml(client, response.headers["location"])
    assert root.find(".//uws:parameter[@id='UPLOAD']", NS).text == "t1,param:t1"


def test_double_slashes_in_paths_are_tolerated(client, service) -> None:
    with httpx.Client(follow_redirects=False) as raw:
        assert raw.get(service.url + "//async").status_code == 200


def test_wrong_method_is_405_and_unknown_resource_404(client) -> None:
    assert client.put("/async").status_code == 405
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert "/tap/nothing-here" in response.text


def test_uws_parameters_in_the_creating_post_are_applied_not_stored(client) -> None:
    """(UWS-35, UWS-62)"""
    url = create(
        client, QUERY="SELECT 1", EXECUTIONDURATION="30", DESTRUCTION="2000-01-01T00:00:00Z"
    )
    root = job_xml(client, url)
    assert root.findtext("uws:executionDuration", namespaces=NS) == "30"
    destruction = root.findtext("uws:destruction", namespaces=NS)
    assert dt.datetime.fromisoformat(destruction.replace("Z", "+00:00")) > dt.datetime.now(dt.UTC)
    names = {p.get("id") for p in root.findall(".//uws:parameter", NS)}
    assert names == {"QUERY"}


def test_availability_is_false_without_a_runner_daemon(client, ivoa_schemas) -> None:
    """(VOSI-06, VOSI-07)"""
    response = client.get("/availability")
    ivoa_schemas.assert_valid(response.content)
    root = etree.fromstring(response.content)
    avl = {"avl": "http://www.ivoa.net/xml/VOSIAvailability/v1.0"}
    assert root.findtext("avl:available", namespaces=avl) == "false"
    assert "no runner daemon" in root.findtext("avl:note", namespaces=avl)


def test_availability_is_false_naming_the_cause_when_no_daemon_has_a_usable_slot(
    client, service, ivoa_schemas
) -> None:
    """A daemon that heartbeats but whose spares cannot connect cannot run a job."""
    import psycopg

    from tapd.store import JobStore

    cause = (
        "spares: cannot connect to the database (no SQLSTATE):"
        ' FATAL: too many connections for role "tapd"'
    )
    avl = {"avl": "http://www.ivoa.net/xml/VOSIAvailability/v1.0"}
    with psycopg.connect(service.dsn, autocommit=True) as conn:
        store = JobStore(conn)
        store.register_runner("crippled", host="h", boot_id="b", pid=1, max_jobs=4)
        try:
            store.heartbeat("crippled", running=0, max_jobs=4, usable_slots=0, degraded=cause)
            response = client.get("/availability")
            ivoa_schemas.assert_valid(response.content)
            root = etree.fromstring(response.content)
            assert root.findtext("avl:available", namespaces=avl) == "false"
            notes = [n.text for n in root.findall("avl:note", avl)]
            assert "no job slot is usable" in notes[0]
            assert cause in notes
            store.heartbeat("crippled", running=0, max_jobs=4, usable_slots=1, degraded=cause)
            root = etree.fromstring(client.get("/availability").content)
            assert root.findtext("avl:available", namespaces=avl) == "true"
            assert "with 1 job slots" in root.findtext("avl:note", namespaces=avl)
        finally:
            store.unregister_runner("crippled")


def test_service_recovers_after_a_postgresql_restart(client, service, pg_cluster) -> None:
    """(D-07)"""
    url = create(client)
    query = {"LANG": "ADQL", "QUERY": "SELECT TOP 1 schema_name FROM TAP_SCHEMA.schemas"}

    def busy(_: int) -> None:  # parallel requests make both pools open several connections
        with httpx.Client(base_url=service.url) as c:
            c.post("/async")
            c.post("/sync", data=query)

    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(busy, range(24)))
    pg_cluster.restart()
    # Pooled connections died with the server: the service must not answer 5xx now.
    assert client.get(url).status_code == 200
    assert create(client)
    assert client.post("/sync", data=query).status_code == 200
    # WAIT listens again: a phase change still ends a wait early.
    results: list[str] = []

    def waiting() -> None:
        for _ in range(20):  # the listener may still be reconnecting: re-poll like a client
            root = job_xml(client, url, WAIT=str(WAIT_MAX))
            phase = root.findtext("uws:phase", namespaces=NS)
            if phase != "PENDING":
                results.append(phase)
                return

    thread = threading.Thread(target=waiting)
    thread.start()
    time.sleep(0.5)
    with httpx.Client(follow_redirects=False) as other:
        other.post(url + "/phase", data={"PHASE": "ABORT"})
    thread.join(timeout=60)
    assert results == ["ABORTED"]


def test_capabilities_name_the_host_each_request_reached(client: httpx.Client) -> None:
    """The document is kept per base URL: a second host must not get the first one's."""
    urls = {}
    for host in ("first.example:8080", "second.example", "first.example:8080"):
        response = client.get("/capabilities", headers={"Host": host})
        assert response.status_code == 200
        root = etree.fromstring(response.content)
        urls.setdefault(host, set()).update(e.text for e in root.iter("accessURL"))
    for host, base in (
        ("first.example:8080", "http://first.example:8080/tap"),
        ("second.example", "http://second.example/tap"),
    ):
        assert urls[host]
        assert all(url == base or url.startswith(base + "/") for url in urls[host]), urls
