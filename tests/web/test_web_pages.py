"""The web pages as HTTP answers: what each page says, that forms work without JavaScript,
that clients keep getting the standard documents, and the DALI examples document."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from lxml import etree

from tapd.examples import DEMO_EXAMPLES, read_examples
from tapd.http.web.render import CONTENT_SECURITY_POLICY
from tests.http.conftest import RunningService, assert_valid, start_service, stop_service

XHTML = {"h": "http://www.w3.org/1999/xhtml"}
PAGES = [
    "/",
    "/web/tables",
    "/web/query",
    "/web/query?example=crossmatch-upload",
    "/web/query?table=demo.stars",
    "/web/jobs",
    "/examples",
]
#: What browsers send, and what Java's URLConnection (STILTS, TOPCAT) sends by default.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
JAVA_ACCEPT = "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"


def xhtml(response: httpx.Response) -> etree._Element:
    """The page as XML (every page is well-formed XHTML)."""
    return etree.fromstring(response.content)


def text_of(root: etree._Element) -> str:
    return " ".join(" ".join(root.itertext()).split())


def wait_for_phase(client: httpx.Client, job_id: str, phases: set[str]) -> str:
    deadline = time.monotonic() + 120
    phase = ""
    while time.monotonic() < deadline:
        response = client.get(f"/async/{job_id}/phase")
        phase = response.text.strip()
        if phase in phases:
            return phase
        client.get(f"/async/{job_id}", params={"WAIT": "5", "PHASE": phase})
    raise AssertionError(f"job {job_id} stayed {phase}")


def base(client: httpx.Client) -> str:
    """The service's base URL (httpx keeps a trailing slash)."""
    return str(client.base_url).rstrip("/")


def job_count(client: httpx.Client) -> int:
    return client.get("/async").text.count("<uws:jobref")


# -- every page ---------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_wellformed_and_runs_nothing_but_the_services_own_files(
    client: httpx.Client, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in CONTENT_SECURITY_POLICY
    root = xhtml(response)
    for script in root.iterfind(".//h:script", XHTML):
        assert script.get("src", "").startswith(f"{base(client)}/web/static/"), "inline script"
    assert root.find(".//h:style", XHTML) is None
    for element in root.iter():
        assert "style" not in element.attrib, element.tag
        assert not [a for a in element.attrib if a.startswith("on")], element.tag
    links = [e.get("href") for e in root.iterfind(".//h:link", XHTML)]
    assert all(link.startswith(f"{base(client)}/web/static/") for link in links)


@pytest.mark.parametrize("path", ["/web/query", "/web/query?example=crossmatch-upload",
                                  "/web/tables", "/web/jobs"])  # fmt: skip
def test_every_form_field_has_a_label(client: httpx.Client, path: str) -> None:
    root = xhtml(client.get(path))
    labelled = {label.get("for") for label in root.iterfind(".//h:label", XHTML)}
    wrapped = {id(e) for label in root.iterfind(".//h:label", XHTML) for e in label.iter()}
    fields = [
        e for tag in ("input", "select", "textarea") for e in root.iterfind(f".//h:{tag}", XHTML)
        if e.get("type") not in ("hidden", "submit")
    ]  # fmt: skip
    assert fields
    for field in fields:
        assert field.get("id") in labelled or id(field) in wrapped, etree.tostring(field)


@pytest.mark.parametrize("accept", [None, BROWSER_ACCEPT, JAVA_ACCEPT, "text/html"])
def test_clients_get_the_standard_documents_whatever_they_accept(
    client: httpx.Client, accept: str | None
) -> None:
    headers = {"Accept": accept} if accept else {}
    for path, root in (
        ("/tables", "{http://www.ivoa.net/xml/VOSITables/v1.0}tableset"),
        ("/capabilities", "{http://www.ivoa.net/xml/VOSICapabilities/v1.0}capabilities"),
        ("/availability", "{http://www.ivoa.net/xml/VOSIAvailability/v1.0}availability"),
        ("/async", "{http://www.ivoa.net/xml/UWS/v1.0}jobs"),
    ):
        response = client.get(path, headers=headers)
        assert response.headers["content-type"].startswith("text/xml"), (path, accept)
        assert etree.fromstring(response.content).tag == root


def test_static_files_are_an_allow_list(client: httpx.Client) -> None:
    css = client.get("/web/static/tapd.css")
    assert css.status_code == 200
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert client.get("/web/static/tapd.js").headers["content-type"].startswith("text/javascript")
    for name in ("../app.py", "templates", "nosuch.css", "%2e%2e%2fapp.py"):
        assert client.get(f"/web/static/{name}").status_code == 404, name


# -- home and tables ------------------------------------------------------------------


def test_home_page_tells_what_the_service_is_and_how_to_use_it(client: httpx.Client) -> None:
    root = xhtml(client.get("/"))
    text = text_of(root)
    assert root.findtext(".//h:h1", namespaces=XHTML) == "tapd test service"
    assert "Synthetic stars for the web page tests." in text
    assert "Archive team <archive@example.org>" in text
    licence = root.find(".//h:a[@href='https://creativecommons.org/licenses/by/4.0/']", XHTML)
    assert licence is not None
    assert root.findtext(".//h:code[@id='tap-url']", namespaces=XHTML) == base(client)
    snippet = root.findtext(".//h:pre[@id='pyvo-snippet']", namespaces=XHTML)
    assert f"pyvo.dal.TAPService('{base(client)}')" in snippet
    for fmt in ("votable", "csv", "fits", "json"):
        assert fmt in text
    hrefs = {a.get("href") for a in root.iterfind(".//h:a", XHTML)}
    for page in ("/web/query", "/web/tables", "/examples", "/web/jobs"):
        assert f"{base(client)}{page}" in hrefs


def test_tables_page_describes_columns_and_filters_without_script(client: httpx.Client) -> None:
    root = xhtml(client.get("/web/tables"))
    stars = root.find(".//h:details[@data-table='demo.stars']", XHTML)
    assert stars is not None
    assert "20,000 rows" in text_of(stars.find("h:summary", XHTML))
    rows = {
        text_of(tr[0]): [text_of(td) for td in tr]
        for tr in stars.iterfind(".//h:tbody/h:tr", XHTML)
    }
    assert rows["gmag"][1:5] == ["float", "mag", "phot.mag;em.opt", "G magnitude"]
    assert rows["pos"][5] == "yes"  # GiST index
    query_link = stars.find(".//h:a[@class='button']", XHTML).get("href")
    assert parse_qs(urlparse(query_link).query) == {"table": ["demo.stars"]}
    assert root.find(".//h:details[@data-table='tap_schema.tables']", XHTML) is not None

    filtered = xhtml(client.get("/web/tables", params={"q": "PARALLAX"}))
    shown = [d.get("data-table") for d in filtered.iterfind(".//h:details", XHTML)]
    assert shown == ["demo.stars"]
    assert "1 of" in text_of(filtered.find(".//h:p[@id='filter-count']", XHTML))


def test_query_link_of_a_table_fills_the_form(client: httpx.Client) -> None:
    root = xhtml(client.get("/web/query", params={"table": "demo.stars"}))
    assert root.findtext(".//h:textarea", namespaces=XHTML) == "SELECT TOP 100 * FROM demo.stars"


# -- the query form -------------------------------------------------------------------


def run_form(
    client: httpx.Client, query: str, action: str = "run", **fields: str
) -> httpx.Response:
    data = {"QUERY": query, "FORMAT": "votable", "action": action, **fields}
    return client.post("/web/query", data=data)


def test_run_shows_the_first_rows_and_links_the_whole_result_in_every_format(
    client: httpx.Client,
) -> None:
    response = run_form(client, "SELECT name, gmag FROM demo.stars ORDER BY id")
    assert response.status_code == 200
    root = xhtml(response)
    table = root.find(".//h:table[@id='result-table']", XHTML)
    headers = [text_of(th) for th in table.iterfind(".//h:th", XHTML)]
    assert headers == ["name", "gmag mag"]
    body = table.findall(".//h:tbody/h:tr", XHTML)
    assert len(body) == 100
    assert text_of(body[0][0]) == "TDS 0000001"
    assert "the result has more" in text_of(root.find(".//h:p[@id='result-summary']", XHTML))
    links = {
        text_of(a): a.get("href") for a in root.iterfind(".//h:p[@class='downloads']/h:a", XHTML)
    }
    assert {"VOTable", "CSV", "FITS", "JSON", "HTML"} <= set(links)
    csv = client.get(links["CSV"])
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.count("\n") == 20001  # the whole result: header and 20,000 rows


def test_run_says_when_maxrec_cut_the_result(client: httpx.Client) -> None:
    root = xhtml(run_form(client, "SELECT id FROM demo.stars", MAXREC="7"))
    assert len(root.findall(".//h:table[@id='result-table']/h:tbody/h:tr", XHTML)) == 7
    assert "MAXREC cut the result" in text_of(root.find(".//h:p[@id='result-summary']", XHTML))
    assert "MAXREC=7" in root.find(".//h:p[@class='downloads']/h:a", XHTML).get("href")


@pytest.mark.parametrize("action", ["run", "submit"])
def test_adql_error_is_shown_with_line_and_column_and_nothing_runs(
    client: httpx.Client, action: str
) -> None:
    before = job_count(client)
    response = run_form(client, "SELECT name,\n  colour FROM demo.stars", action=action)
    assert response.status_code == 400
    root = xhtml(response)
    error = root.find(".//h:div[@id='query-error']", XHTML)
    assert "Error at line 2, column 3" in text_of(error)
    assert "colour" in text_of(error)
    assert error.findtext("h:pre", namespaces=XHTML) == "  colour FROM demo.stars\n  ^"
    textarea = root.find(".//h:textarea", XHTML)
    assert textarea.get("aria-invalid") == "true"
    assert (textarea.get("data-error-line"), textarea.get("data-error-column")) == ("2", "3")
    assert textarea.text == "SELECT name,\n  colour FROM demo.stars"  # kept for fixing
    assert job_count(client) == before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"MAXREC": "-3"}, "MAXREC"),
        ({"FORMAT": "excel"}, "excel"),
        ({"QUERY": ""}, "Error"),
    ],
)
def test_bad_form_values_are_explained_on_the_form(
    client: httpx.Client, fields: dict[str, str], message: str
) -> None:
    data = {"QUERY": "SELECT TOP 1 id FROM demo.stars", "action": "run", **fields}
    response = client.post("/web/query", data=data)
    assert response.status_code == 400
    assert message in text_of(xhtml(response).find(".//h:div[@id='query-error']", XHTML))


def test_submit_creates_a_job_and_shows_its_page(client: httpx.Client) -> None:
    response = run_form(client, "SELECT TOP 3 name FROM demo.stars ORDER BY id", "submit",
                        FORMAT="csv")  # fmt: skip
    assert response.status_code == 303
    page_url = response.headers["location"]
    job_id = page_url.rsplit("/", 1)[1]
    assert page_url == f"{base(client)}/web/jobs/{job_id}"
    assert wait_for_phase(client, job_id, {"COMPLETED", "ERROR"}) == "COMPLETED"
    root = xhtml(client.get(page_url))
    assert text_of(root.find(".//h:span[@id='phase']", XHTML)) == "COMPLETED"
    assert root.findtext(".//h:pre[@id='job-query']", namespaces=XHTML).startswith("SELECT TOP 3")
    assert root.find(".//h:button[@id='abort']", XHTML) is None
    (link,) = root.findall(".//h:ul[@id='result-links']//h:a", XHTML)
    result = client.get(link.get("href"))
    assert result.text.splitlines() == ["name", "TDS 0000001", "TDS 0000002", "TDS 0000003"]
    text = text_of(root)
    assert "FORMAT csv" in text and "Created" in text and "Time limit" in text


def test_example_with_an_upload_runs_with_its_own_table(client: httpx.Client) -> None:
    (example,) = [e for e in read_examples(DEMO_EXAMPLES) if e.upload is not None]
    form = xhtml(client.get("/web/query", params={"example": example.id}))
    assert form.findtext(".//h:textarea", namespaces=XHTML) == example.query
    assert form.find(".//h:input[@name='example']", XHTML).get("value") == example.id
    root = xhtml(run_form(client, example.query, example=example.id, MAXREC="1000"))
    table = root.find(".//h:table[@id='result-table']", XHTML)
    targets = {text_of(tr[0]) for tr in table.iterfind(".//h:tbody/h:tr", XHTML)}
    assert targets and targets <= {f"field-{c}" for c in "abcde"}

    submitted = run_form(client, example.query, "submit", example=example.id, FORMAT="csv")
    job_id = submitted.headers["location"].rsplit("/", 1)[1]
    assert wait_for_phase(client, job_id, {"COMPLETED", "ERROR"}) == "COMPLETED"
    csv = client.get(f"/async/{job_id}/results/result").text.splitlines()
    assert csv[0] == "target,name,gmag,dist"
    assert {line.split(",")[0] for line in csv[1:]} == targets
    assert example.upload.path.is_file()  # the example's file was copied, not moved


def test_uploaded_file_is_the_users_table(client: httpx.Client, tmp_path: Path) -> None:
    votable = (DEMO_EXAMPLES.parent / "demo_targets.vot").read_bytes()
    response = client.post(
        "/web/query",
        data={"QUERY": "SELECT COUNT(*) AS n FROM TAP_UPLOAD.mine", "action": "run",
              "upload_name": "mine", "FORMAT": "votable"},
        files={"upload_file": ("targets.vot", votable, "application/x-votable+xml")},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    cell = xhtml(response).find(".//h:table[@id='result-table']/h:tbody/h:tr/h:td", XHTML)
    assert text_of(cell) == "5"


def test_form_queries_take_the_sync_slots_and_say_when_all_are_busy(
    pg_cluster, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # One slot, held for at most 10 s by a slow query (its time limit).
    settings = {
        "TAPD_SYNC_SLOTS": "1",
        "TAPD_SYNC_SLOT_WAIT": "0.5",
        "TAPD_SYNC_EXECUTION_DURATION": "10",
    }
    running = start_service(pg_cluster, tmp_path, "web_busy", settings=settings, sample_rows=3000)
    held: list[int] = []

    def hold_the_slot() -> None:
        with httpx.Client(base_url=running.url, timeout=60) as own:
            slow = {"QUERY": SLOW_QUERY, "action": "run"}
            held.append(own.post("/web/query", data=slow).status_code)

    holder = threading.Thread(target=hold_the_slot)
    try:
        holder.start()
        deadline = time.monotonic() + 30
        answer = None
        while time.monotonic() < deadline:  # until the slow query holds the only slot
            with httpx.Client(base_url=running.url, timeout=30) as client:
                answer = run_form(client, "SELECT TOP 1 id FROM demo.stars")
            if answer.status_code == 503:
                break
        assert answer is not None and answer.status_code == 503
        message = text_of(xhtml(answer).find(".//h:div[@id='query-error']", XHTML))
        assert "all 1 synchronous query slots" in message
        assert "submit the query as a job" in message
        holder.join(timeout=60)
        assert held == [400]  # the slow query ran into its time limit, shown on its page
    finally:
        holder.join(timeout=60)
        stop_service(running, pg_cluster, "web_busy")


# -- job pages -----------------------------------------------------------------------

SLOW_QUERY = "SELECT COUNT(*) AS n FROM demo.stars AS a, demo.stars AS b, demo.stars AS c"


def test_job_page_aborts_and_the_list_filters_by_phase(client: httpx.Client) -> None:
    job_id = run_form(client, SLOW_QUERY, "submit").headers["location"].rsplit("/", 1)[1]
    assert wait_for_phase(client, job_id, {"EXECUTING", "COMPLETED", "ERROR"}) == "EXECUTING"
    page = xhtml(client.get(f"/web/jobs/{job_id}"))
    progress = text_of(page.find(".//h:p[@id='progress']", XHTML))
    # COUNT(*): one row, written at the end
    shown = r"Progress: nothing written yet(, about 1 row expected)?, running \d+ s"
    assert re.fullmatch(shown, progress)
    form = page.find(".//h:button[@id='abort']/..", XHTML)
    assert form.get("action") == f"{base(client)}/web/jobs/{job_id}"
    response = client.post(f"/web/jobs/{job_id}", data={"action": "abort"})
    assert response.status_code == 303
    assert response.headers["location"] == f"{base(client)}/web/jobs/{job_id}"
    assert wait_for_phase(client, job_id, {"ABORTED"}) == "ABORTED"
    assert "ABORTED" in text_of(xhtml(client.get(f"/web/jobs/{job_id}")))

    aborted = xhtml(client.get("/web/jobs", params={"phase": "ABORTED"}))
    ids = [text_of(a) for a in aborted.iterfind(".//h:table[@id='job-list']//h:a", XHTML)]
    assert job_id in ids
    completed = xhtml(client.get("/web/jobs", params=[("phase", "COMPLETED"), ("phase", "ERROR")]))
    assert job_id not in text_of(completed)
    box = completed.find(".//h:input[@value='COMPLETED']", XHTML)
    assert box.get("checked") == "checked"
    assert client.get("/web/jobs", params={"phase": "DONE"}).status_code == 400


def test_job_page_wait_returns_at_the_phase_change(client: httpx.Client) -> None:
    job_id = run_form(client, SLOW_QUERY, "submit").headers["location"].rsplit("/", 1)[1]
    wait_for_phase(client, job_id, {"EXECUTING"})
    started = time.monotonic()
    with httpx.Client(base_url=base(client), timeout=60) as other:
        client.post(f"/web/jobs/{job_id}", data={"action": "abort"})
        page = other.get(f"/web/jobs/{job_id}", params={"wait": "30"})
    assert "ABORTED" in text_of(xhtml(page).find(".//h:span[@id='phase']", XHTML))
    assert time.monotonic() - started < 25  # capped by wait_max (8 s), woken by the change


def test_cross_site_form_posts_are_refused(client: httpx.Client) -> None:
    job_id = run_form(client, SLOW_QUERY, "submit").headers["location"].rsplit("/", 1)[1]
    evil = {"Origin": "http://evil.example"}
    response = client.post(f"/web/jobs/{job_id}", data={"action": "abort"}, headers=evil)
    assert response.status_code == 403
    assert "evil.example" in response.text
    assert client.get(f"/async/{job_id}/phase").text != "ABORTED"
    refused = client.post("/web/query", data={"QUERY": "SELECT 1", "action": "submit"},
                          headers=evil)  # fmt: skip
    assert refused.status_code == 403
    own = {"Origin": f"{client.base_url.scheme}://{client.base_url.netloc.decode()}"}
    assert (
        client.post(f"/web/jobs/{job_id}", data={"action": "abort"}, headers=own).status_code == 303
    )


def test_unknown_jobs_and_actions_are_clear_errors(client: httpx.Client) -> None:
    assert client.get("/web/jobs/nosuchjob").status_code == 404
    assert client.get("/web/jobs/..%2f..").status_code == 404
    job_id = (
        run_form(client, "SELECT TOP 1 id FROM demo.stars", "submit")
        .headers["location"]
        .rsplit("/", 1)[1]
    )
    response = client.post(f"/web/jobs/{job_id}", data={"action": "explode"})
    assert response.status_code == 400
    assert "action must be abort or delete" in response.text
    assert client.get(f"/web/jobs/{job_id}", params={"wait": "soon"}).status_code == 400


# -- examples -------------------------------------------------------------------------

VOCAB = "http://www.ivoa.net/rdf/examples#"


def test_examples_document_is_dali_xhtml_with_rdfa(client: httpx.Client) -> None:
    response = client.get("/examples")
    root = xhtml(response)
    assert [e.get("vocab") for e in root.iter() if "vocab" in e.attrib] == [VOCAB]
    examples = {e.id: e for e in read_examples(DEMO_EXAMPLES)}
    found = [e for e in root.iter() if e.get("typeof") == "example"]
    assert [e.get("id") for e in found] == list(examples)
    for element in found:
        example = examples[element.get("id")]
        assert element.get("resource") == f"#{example.id}"
        (name,) = [e for e in element.iter() if e.get("property") == "name"]
        (query,) = [e for e in element.iter() if e.get("property") == "query"]
        assert name.text == example.name
        assert len(query) == 0 and query.text == example.query  # plain text only
    properties = {e.get("property") for e in root.iter() if "property" in e.attrib}
    assert properties <= {"name", "query", "generic-parameter", "key", "value"}
    (parameter,) = [e for e in root.iter() if e.get("property") == "generic-parameter"]
    assert parameter.get("typeof") == "keyval"
    key, value = (
        next(e for e in parameter.iter() if e.get("property") == p) for p in ("key", "value")
    )
    assert key.text == "UPLOAD"
    table, url = value.text.split(",", 1)
    assert table == "targets"
    upload = client.get(url)
    assert upload.headers["content-type"] == "application/x-votable+xml"
    assert b"field-a" in upload.content
    assert client.get("/examples/cone-search/targets.vot").status_code == 404


def test_examples_capability_is_declared(client: httpx.Client) -> None:
    document = client.get("/capabilities").content
    assert_valid(document)
    root = etree.fromstring(document)
    (capability,) = root.iterfind("capability[@standardID='ivo://ivoa.net/std/DALI#examples']")
    assert capability.findtext("interface/accessURL") == f"{base(client)}/examples"


def test_a_failing_example_is_logged_and_not_published(pg_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    examples = tmp_path / "examples.toml"
    examples.write_text(
        "[[example]]\nname = 'Fine'\nquery = 'SELECT TOP 1 name FROM demo.stars'\n"
        "[[example]]\nname = 'Broken'\nquery = '''SELECT name,\n  nosuch FROM demo.stars'''\n"
    )
    running = start_service(pg_cluster, tmp_path / "svc", "web_rejected", sample_rows=10,
                            settings={"TAPD_EXAMPLES": str(examples)})  # fmt: skip
    try:
        with httpx.Client(base_url=running.url, timeout=30) as client:
            root = xhtml(client.get("/examples"))
            ids = [e.get("id") for e in root.iter() if e.get("typeof") == "example"]
            assert ids == ["fine"]
            options = xhtml(client.get("/web/query")).iterfind(".//h:option", XHTML)
            assert "broken" not in [o.get("value") for o in options]
    finally:
        stop_service(running, pg_cluster, "web_rejected")
    log = running.log_text()
    (event,) = [json.loads(line) for line in log.splitlines() if "examples.rejected" in line]
    assert event["example"] == "broken"
    assert "line 2, column 3" in event["error"] and "nosuch" in event["error"]


def test_an_unreadable_examples_file_stops_serve_with_one_line(
    service: RunningService, tmp_path: Path
) -> None:
    env = {**service.env, "TAPD_EXAMPLES": str(tmp_path / "nope.toml"), "TAPD_PORT": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "tapd", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert re.search(r"cannot read the examples file .*nope\.toml", result.stderr)
