"""pyvo (the reference Python client) and plain HTTP against ``tapd serve`` + ``tapd run``.

One server and one runner daemon for the whole module, on a database with the
demo catalog (``demo.stars``).
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import json
import time
import warnings
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import pyvo
from astropy.io import fits, votable
from astropy.table import Table
from lxml import etree

from tests.http.conftest import RunningService, start_service, stop_service

NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}
ROWS = 2000
MAXREC_DEFAULT = 1000
MAXREC_MAX = 1500
#: Slow enough to abort: counts ROWS**3 combinations.
SLOW_QUERY = "SELECT COUNT(*) AS n FROM demo.stars AS a, demo.stars AS b, demo.stars AS c"


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory) -> Iterator[RunningService]:
    running = start_service(
        pg_cluster,
        tmp_path_factory.mktemp("e2e"),
        "http_e2e",
        {
            "TAPD_MAXREC_DEFAULT": str(MAXREC_DEFAULT),
            "TAPD_MAXREC_MAX": str(MAXREC_MAX),
            "TAPD_MAX_JOBS": "4",
            "TAPD_POOL_SIZE": "12",
        },
        daemon=True,
        sample_rows=ROWS,
    )
    yield running
    stop_service(running, pg_cluster, "http_e2e")


@pytest.fixture(scope="module")
def tap(service: RunningService) -> pyvo.dal.TAPService:
    return pyvo.dal.TAPService(service.url)


def test_run_sync_returns_the_rows_and_tap_schema_metadata(tap) -> None:
    """(TAP-20, TAP-44)"""
    result = tap.run_sync("SELECT TOP 5 name, ra, dec, gmag FROM demo.stars ORDER BY gmag")
    table = result.to_table()
    assert len(table) == 5
    assert table.colnames == ["name", "ra", "dec", "gmag"]
    assert list(table["gmag"]) == sorted(table["gmag"])
    assert str(table["ra"].unit) == "deg"


def test_run_async_returns_the_rows(tap) -> None:
    """(TAP-30)"""
    table = tap.run_async("SELECT TOP 3 id FROM demo.stars ORDER BY id").to_table()
    assert list(table["id"]) == [1, 2, 3]


def test_submit_run_wait_fetch(tap, ivoa_schemas, client) -> None:
    """(TAP-31, UWS-17, UWS-10)"""
    job = tap.submit_job("SELECT TOP 2 id, name FROM demo.stars ORDER BY id", runid="e2e")
    assert job.phase == "PENDING"
    job.run()
    job.wait()
    assert job.phase == "COMPLETED"
    table = job.fetch_result().to_table()
    assert list(table["id"]) == [1, 2]
    document = client.get(job.url).content
    ivoa_schemas.assert_valid(document)
    result = etree.fromstring(document).find("uws:results/uws:result", NS)
    assert result.get("id") == "result"
    assert result.get("{http://www.w3.org/1999/xlink}href") == job.url + "/results/result"
    job.delete()


def test_abort_stops_a_running_job(tap) -> None:
    """(UWS-42, D-03)"""
    job = tap.submit_job(SLOW_QUERY)
    job.run()
    for _ in range(100):  # (pyvo's wait() would block WAIT_MAX on the running job)
        if job.phase != "QUEUED":
            break
        time.sleep(0.1)
    assert job.phase == "EXECUTING"
    job.abort()
    # pyvo's wait() refuses ABORTED ("not active"); the job document says it at once.
    assert job.phase == "ABORTED"
    job.delete()


def test_delete_forgets_the_job(tap, client) -> None:
    """(UWS-43)"""
    job = tap.submit_job("SELECT TOP 1 id FROM demo.stars")
    url = job.url
    job.delete()
    assert client.get(url).status_code == 404


def test_get_job_list_shows_finished_jobs(tap) -> None:
    """(UWS-22, UWS-23)"""
    job = tap.submit_job("SELECT TOP 1 id FROM demo.stars", runid="listed")
    job.run()
    job.wait()
    listed = tap.get_job_list(phases=["COMPLETED"], last=50)
    assert job.job_id in {j.jobid for j in listed}
    assert all(j.phase == "COMPLETED" for j in listed)
    job.delete()


def test_maxrec_truncation_is_flagged_as_overflow_without_a_pyvo_warning(tap, client) -> None:
    """(TAP-14, TAP-61)"""
    # pyvo 1.9 warns only when the service cut below what was asked for; a result
    # of exactly MAXREC rows is the truncation the user expected.
    with warnings.catch_warnings():
        warnings.simplefilter("error", pyvo.dal.exceptions.DALOverflowWarning)
        assert len(tap.run_sync("SELECT id FROM demo.stars", maxrec=10)) == 10
    data = {"LANG": "ADQL", "QUERY": "SELECT id FROM demo.stars", "MAXREC": "10"}
    table = votable.parse(io.BytesIO(client.post("/sync", data=data).content))
    statuses = [i.value for i in table.resources[0].infos if i.name == "QUERY_STATUS"]
    assert statuses[-1] == "OVERFLOW"


def test_maxrec_above_the_hard_limit_warns_of_service_truncation(tap) -> None:
    """(TAP-14, TRE-08)"""
    with pytest.warns(pyvo.dal.exceptions.DALOverflowWarning, match="service limits"):
        result = tap.run_sync("SELECT id FROM demo.stars", maxrec=1800)
    assert len(result) == MAXREC_MAX


def test_exactly_maxrec_rows_is_no_overflow(client) -> None:
    """(TAP-62)"""
    data = {"LANG": "ADQL", "QUERY": "SELECT TOP 7 id FROM demo.stars", "MAXREC": "7"}
    table = votable.parse(io.BytesIO(client.post("/sync", data=data).content))
    statuses = [i.value for i in table.resources[0].infos if i.name == "QUERY_STATUS"]
    assert statuses == ["OK"]


def test_service_default_maxrec_applies_and_warns(tap) -> None:
    """(TAP-14, TRE-08)"""
    with pytest.warns(pyvo.dal.exceptions.DALOverflowWarning, match="server limits"):
        result = tap.run_sync("SELECT id FROM demo.stars")
    assert len(result) == MAXREC_DEFAULT


def uploaded() -> Table:
    return Table({"id": np.array([3, 1, 999999], dtype=np.int64), "label": ["c", "a", "none"]})


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_upload_of_a_local_table_joins_with_the_catalog(tap, mode: str) -> None:
    query = (
        "SELECT s.id, s.name, u.label FROM demo.stars AS s"
        " JOIN TAP_UPLOAD.mine AS u ON s.id = u.id ORDER BY s.id"
    )
    run = tap.run_sync if mode == "sync" else tap.run_async
    table = run(query, uploads={"mine": uploaded()}).to_table()
    assert list(table["id"]) == [1, 3]
    assert list(table["label"]) == ["a", "c"]
    assert list(table["name"]) == ["TDS 0000001", "TDS 0000003"]


def test_uploaded_table_comes_back_as_sent(tap) -> None:
    table = tap.run_sync("SELECT * FROM TAP_UPLOAD.t ORDER BY id", uploads={"t": uploaded()})
    result = table.to_table()
    assert list(result["id"]) == [1, 3, 999999]
    assert list(result["label"]) == ["a", "c", "none"]


def test_bad_adql_is_a_query_error_with_the_position(tap) -> None:
    """(TAP-50, TAP-51)"""
    with pytest.raises(pyvo.dal.DALQueryError, match="line 1, column"):
        tap.run_sync("SELECT FROM WHERE demo.stars")


def test_async_job_with_bad_lang_is_created_and_ends_in_error(client, tap, ivoa_schemas) -> None:
    """(UWS-18, TAP-10, TAP-33, TAP-52, DALI-04)"""
    response = client.post("/async", data={"LANG": "SQL", "QUERY": "SELECT 1", "PHASE": "RUN"})
    assert response.status_code == 303
    url = response.headers["location"]
    job = pyvo.dal.AsyncTAPJob(url)
    job.wait()
    assert job.phase == "ERROR"
    document = client.get(url).content
    ivoa_schemas.assert_valid(document)
    message = etree.fromstring(document).findtext("uws:errorSummary/uws:message", namespaces=NS)
    assert "unknown query language 'SQL'" in message
    error = client.get(url + "/error")
    assert error.status_code == 200
    assert b'name="QUERY_STATUS" value="ERROR"' in error.content


def _formats(client: httpx.Client) -> list[tuple[str, str, tuple[str, ...]]]:
    """(mime, canonical alias, aliases) of every format the service declares."""
    root = etree.fromstring(client.get("/capabilities").content)
    found = []
    for element in root.iter("outputFormat"):
        aliases = tuple(a.text for a in element.findall("alias"))
        found.append((element.findtext("mime"), aliases[0] if aliases else "", aliases))
    return found


def check_payload(content: bytes, content_type: str, expected_ids: list[int]) -> None:
    """Parse a result by its media type and check the ids."""
    kind = content_type.split(";")[0].strip()
    if kind in ("application/x-votable+xml", "text/xml"):
        ids = list(votable.parse_single_table(io.BytesIO(content)).to_table()["id"])
    elif kind == "text/csv":
        ids = [int(r["id"]) for r in csv.DictReader(io.StringIO(content.decode()))]
    elif kind == "text/tab-separated-values":
        rows = list(csv.DictReader(io.StringIO(content.decode()), delimiter="\t"))
        ids = [int(r["id"]) for r in rows]
    elif kind == "application/fits":
        with fits.open(io.BytesIO(content)) as hdus:
            ids = [int(v) for v in hdus[1].data["id"]]
    elif kind == "application/json":
        document = json.loads(content)
        names = [column["name"] for column in document["metadata"]]
        ids = [int(row[names.index("id")]) for row in document["data"]]
    elif kind == "text/html":
        assert b"<table" in content.lower()
        return
    elif kind == "application/vnd.apache.parquet":
        pyarrow_parquet = pytest.importorskip("pyarrow.parquet")
        ids = pyarrow_parquet.read_table(io.BytesIO(content)).column("id").to_pylist()
    else:
        raise AssertionError(f"no reader for {content_type}")
    assert ids == expected_ids


def test_every_declared_format_works_sync_and_async(client) -> None:
    """(TAP-12, TAP-13, TAP-41, TRE-04)"""
    query = "SELECT TOP 3 id, name, ra FROM demo.stars ORDER BY id"
    for mime, alias, aliases in _formats(client):
        for name in (mime, *aliases):
            data = {"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": name}
            response = client.post("/sync", data=data)
            assert response.status_code == 200, (name, response.text)
            if name == mime:
                assert response.headers["content-type"].replace(" ", "") == mime.replace(" ", "")
            check_payload(response.content, response.headers["content-type"], [1, 2, 3])
        created = client.post(
            "/async", data={"LANG": "ADQL", "QUERY": query, "FORMAT": alias or mime, "PHASE": "RUN"}
        )
        url = created.headers["location"]
        for _ in range(20):
            phase = etree.fromstring(client.get(url, params={"WAIT": "5"}).content).findtext(
                "uws:phase", namespaces=NS
            )
            if phase not in ("QUEUED", "EXECUTING"):
                break
        assert phase == "COMPLETED", (mime, client.get(url).text)
        result = client.get(url + "/results/result")
        assert result.status_code == 200
        check_payload(result.content, result.headers["content-type"], [1, 2, 3])
        client.delete(url)


def test_unknown_format_is_an_error_document(client) -> None:
    """(TAP-12)"""
    query = "SELECT TOP 1 id FROM demo.stars"
    response = client.post(
        "/sync", data={"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": "bogus"}
    )
    assert response.status_code == 400
    assert b'value="ERROR"' in response.content


def test_tap_schema_is_queryable(tap) -> None:
    """(TAP-80)"""
    table = tap.run_sync(
        "SELECT table_name FROM TAP_SCHEMA.tables WHERE table_name = 'demo.stars'"
    ).to_table()
    assert list(table["table_name"]) == ["demo.stars"]


def test_a_burst_of_100_jobs_from_20_threads_all_complete_without_5xx(service) -> None:
    statuses: list[int] = []

    def one(i: int) -> str:
        with httpx.Client(base_url=service.url, follow_redirects=False, timeout=60) as c:
            query = f"SELECT TOP 1 id FROM demo.stars WHERE id = {i + 1}"
            created = c.post("/async", data={"LANG": "ADQL", "PHASE": "RUN", "QUERY": query})
            statuses.append(created.status_code)
            url = created.headers["location"]
            phase = "QUEUED"
            for _ in range(30):
                response = c.get(url, params={"WAIT": "-1"})
                statuses.append(response.status_code)
                phase = etree.fromstring(response.content).findtext("uws:phase", namespaces=NS)
                if phase not in ("PENDING", "QUEUED", "EXECUTING"):
                    break
            result = c.get(url + "/results/result")
            statuses.append(result.status_code)
            c.delete(url)
            return phase

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        phases = list(pool.map(one, range(100)))
    assert phases == ["COMPLETED"] * 100
    assert not [s for s in statuses if s >= 500]


def test_vosi_documents_validate_and_tables_have_children(client, ivoa_schemas) -> None:
    """(VOSI-01, VOSI-03, VOSI-06, VOSI-08, VOSI-09)"""
    for path in ("/capabilities", "/availability", "/tables", "/tables?detail=min"):
        response = client.get(path)
        assert response.status_code == 200, path
        ivoa_schemas.assert_valid(response.content)
    assert b"<column" not in client.get("/tables?detail=min").content
    table = client.get("/tables/demo.stars")
    ivoa_schemas.assert_valid(table.content)
    columns = [c.findtext("name") for c in etree.fromstring(table.content).findall("column")]
    assert "pos" in columns and "gmag" in columns
    assert client.get("/tables/TAP_SCHEMA.columns").status_code == 200
    missing = client.get("/tables/demo.nothing")
    assert missing.status_code == 404
    assert "demo.nothing" in missing.text
    assert client.post("/capabilities").status_code == 405
    assert client.get("/capabilities").headers["last-modified"].endswith(" GMT")


def test_aborted_job_explains_itself_at_error(tap, client) -> None:
    """(TAP-33, TAP-34)"""
    job = tap.submit_job(SLOW_QUERY)
    job.abort()
    error = client.get(job.url + "/error")
    assert error.status_code == 200
    table = votable.parse(io.BytesIO(error.content))
    statuses = [i for i in table.resources[0].infos if i.name == "QUERY_STATUS"]
    assert statuses[0].value == "ERROR"
    assert "abort" in (statuses[0].content or "").lower()
    assert client.get(job.url + "/results/result").status_code == 404
    job.delete()


def test_a_result_larger_than_the_pipe_streams_whole(client) -> None:
    data = {"LANG": "ADQL", "QUERY": "SELECT * FROM demo.stars ORDER BY id", "MAXREC": "1500",
            "RESPONSEFORMAT": "votable/td"}  # fmt: skip
    response = client.post("/sync", data=data)
    assert response.status_code == 200
    assert len(response.content) > 4 * 64 * 1024  # several chunks through the pipe
    table = votable.parse_single_table(io.BytesIO(response.content)).to_table()
    assert list(table["id"]) == list(range(1, 1501))


def test_upload_problems_are_clear_error_documents(client) -> None:
    query = {"LANG": "ADQL", "QUERY": "SELECT * FROM TAP_UPLOAD.t"}
    bad = client.post(
        "/sync",
        data={**query, "UPLOAD": "t,param:t"},
        files={"t": ("t.xml", b"<VOTABLE><RESOURCE><TABLE><FIELD", "text/xml")},
    )
    assert bad.status_code == 400
    assert b"not a readable VOTable" in bad.content
    remote = client.post("/sync", data={**query, "UPLOAD": "t,http://127.0.0.1:9/t.xml"})
    assert remote.status_code == 400
    assert b"http.upload_url_allow" in remote.content
    missing = client.post("/sync", data={**query, "UPLOAD": "t,param:nothing"})
    assert missing.status_code == 400
    assert b"param:nothing" in missing.content


@pytest.mark.parametrize("serialization", ["votable", "votable/b2", "votable/td", "votable/b"])
def test_pyvo_reads_every_votable_serialization(tap, serialization: str) -> None:
    """(TAP-40, VOT-24, VOT-25)"""
    query = "SELECT TOP 3 id, name, pos FROM demo.stars ORDER BY id"
    table = tap.run_sync(query, RESPONSEFORMAT=serialization).to_table()
    assert list(table["id"]) == [1, 2, 3]
    assert table["pos"].shape == (3, 2)
