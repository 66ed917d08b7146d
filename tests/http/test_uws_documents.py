"""UWS 1.1 job and job-list documents: schema-valid in every phase, exact forms."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from lxml import etree

from tapd.http.uws import (
    job_document,
    job_list_document,
    parameters_document,
    results_document,
)
from tapd.store.jobs import ErrorSummary, Job, Progress, ResultEntry
from tapd.store.phases import JobPhase

NS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0", "xlink": "http://www.w3.org/1999/xlink"}
URL = "http://127.0.0.1:8080/tap/async/abc123"
CREATED = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)


def make_job(phase: JobPhase = JobPhase.PENDING, **changes: object) -> Job:
    values: dict[str, object] = {
        "job_id": "abc123",
        "phase": phase,
        "creation_time": CREATED,
        "execution_duration": 600,
        "destruction": CREATED + dt.timedelta(days=7),
        "quote": CREATED + dt.timedelta(minutes=10),
        "parameters": {"LANG": ("ADQL",), "QUERY": ("SELECT TOP 1 * FROM t WHERE a < 3 & b",)},
    }
    values.update(changes)
    return Job(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("phase", list(JobPhase))
def test_job_document_is_schema_valid_in_every_phase(phase: JobPhase, ivoa_schemas) -> None:
    """(UWS-10, UWS-11, UWS-12)"""
    started = CREATED + dt.timedelta(seconds=1) if phase != JobPhase.PENDING else None
    job = make_job(
        phase,
        start_time=started,
        end_time=CREATED + dt.timedelta(seconds=2)
        if phase in {JobPhase.COMPLETED, JobPhase.ERROR}
        else None,
        results=(ResultEntry("result", "result.vot", "application/x-votable+xml", 123, 1, False),)
        if phase == JobPhase.COMPLETED
        else (),
        error=ErrorSummary("Syntax error at line 1") if phase == JobPhase.ERROR else None,
    )
    ivoa_schemas.assert_valid(job_document(job, URL))


def test_pending_job_has_nil_times_and_owner_in_schema_order() -> None:
    """(UWS-08, UWS-11, UWS-12, UWS-21)"""
    root = etree.fromstring(job_document(make_job(), URL))
    assert root.get("version") == "1.1"
    names = [etree.QName(e).localname for e in root]
    assert names == [
        "jobId", "ownerId", "phase", "quote", "creationTime", "startTime", "endTime",
        "executionDuration", "destruction", "parameters", "results",
    ]  # fmt: skip
    nil = "{http://www.w3.org/2001/XMLSchema-instance}nil"
    assert root.find("uws:ownerId", NS).get(nil) == "true"
    assert root.find("uws:startTime", NS).get(nil) == "true"
    assert root.find("uws:endTime", NS).get(nil) == "true"


def test_times_are_utc_with_milliseconds_and_z() -> None:
    """(UWS-05)"""
    plus_two = dt.timezone(dt.timedelta(hours=2))
    job = make_job(creation_time=dt.datetime(2026, 1, 2, 5, 4, 5, 678901, tzinfo=plus_two))
    root = etree.fromstring(job_document(job, URL))
    assert root.findtext("uws:creationTime", namespaces=NS) == "2026-01-02T03:04:05.678Z"
    for element in root.iter():
        if element.text and re.match(r"\d{4}-\d\d-\d\d", element.text):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", element.text)


def test_error_summary_carries_message_child_and_both_attributes() -> None:
    """(UWS-18, TAP-35)"""
    job = make_job(JobPhase.ERROR, error=ErrorSummary("Unknown table 'nope'", "fatal", True))
    root = etree.fromstring(job_document(job, URL))
    summary = root.find("uws:errorSummary", NS)
    assert summary.get("type") == "fatal"
    assert summary.get("hasDetail") == "true"
    assert summary.findtext("uws:message", namespaces=NS) == "Unknown table 'nope'"


def test_result_is_listed_as_result_with_absolute_href_size_and_type() -> None:
    """(UWS-17, TAP-31)"""
    job = make_job(
        JobPhase.COMPLETED,
        results=(
            ResultEntry("result", "result.vot", "application/x-votable+xml", 4096, 10, False),
        ),
    )
    root = etree.fromstring(job_document(job, URL))
    (result,) = root.findall("uws:results/uws:result", NS)
    assert result.get("id") == "result"
    assert result.get("{http://www.w3.org/1999/xlink}href") == URL + "/results/result"
    assert result.get("size") == "4096"
    assert result.get("mime-type") == "application/x-votable+xml"


def test_run_id_and_owner_are_echoed_verbatim() -> None:
    """(UWS-20, UWS-21)"""
    job = make_job(run_id="TAPLINT-001 <&>", owner="alice@example.org")
    root = etree.fromstring(job_document(job, URL))
    assert root.findtext("uws:runId", namespaces=NS) == "TAPLINT-001 <&>"
    assert root.findtext("uws:ownerId", namespaces=NS) == "alice@example.org"


def test_upload_values_are_one_parameter_and_no_name_repeats() -> None:
    """(TAP-18, UWS-16)"""
    job = make_job(parameters={"UPLOAD": ("a,param:a", "b,http://x/b.xml"), "QUERY": ("SELECT 1",)})
    root = etree.fromstring(job_document(job, URL))
    params = root.findall("uws:parameters/uws:parameter", NS)
    assert [(p.get("id"), p.text) for p in params] == [
        ("UPLOAD", "a,param:a;b,http://x/b.xml"),
        ("QUERY", "SELECT 1"),
        ("a", URL + "/parameters/a"),  # the inline file, by reference (UWS-16)
    ]


def test_inline_uploads_are_listed_by_reference_and_schema_valid(ivoa_schemas) -> None:
    """The uploaded file itself is a byReference parameter; bad part names are not (UWS-16)."""
    job = make_job(parameters={"UPLOAD": ("a,param:p1;b,http://x/b.xml", "c,param:../x")})
    document = job_document(job, URL)
    ivoa_schemas.assert_valid(document)
    ivoa_schemas.assert_valid(parameters_document(job, URL))
    params = etree.fromstring(document).findall("uws:parameters/uws:parameter", NS)
    assert [(p.get("id"), p.get("byReference"), p.text) for p in params] == [
        ("UPLOAD", None, "a,param:p1;b,http://x/b.xml;c,param:../x"),
        ("p1", "true", URL + "/parameters/p1"),
    ]


def test_control_characters_in_user_values_keep_the_document_well_formed(ivoa_schemas) -> None:
    job = make_job(parameters={"QUERY": ("SELECT\x00\x01 1\ud800",)}, run_id="a\x1bb")
    ivoa_schemas.assert_valid(job_document(job, URL))


def test_job_list_lists_phase_run_id_owner_and_creation_time(ivoa_schemas) -> None:
    """(UWS-08, UWS-22)"""
    jobs = [make_job(), make_job(JobPhase.COMPLETED, job_id="def456", run_id="r1", owner="bob")]
    document = job_list_document(jobs, "http://h/tap/async")
    ivoa_schemas.assert_valid(document)
    root = etree.fromstring(document)
    assert root.get("version") == "1.1"
    refs = root.findall("uws:jobref", NS)
    assert [r.get("id") for r in refs] == ["abc123", "def456"]
    assert refs[1].get("{http://www.w3.org/1999/xlink}href") == "http://h/tap/async/def456"
    assert [etree.QName(e).localname for e in refs[1]] == [
        "phase",
        "runId",
        "ownerId",
        "creationTime",
    ]


def test_empty_job_list_is_valid(ivoa_schemas) -> None:
    ivoa_schemas.assert_valid(job_list_document([], "http://h/tap/async"))


def test_parameters_and_results_children_are_valid_documents(ivoa_schemas) -> None:
    job = make_job(
        JobPhase.COMPLETED, results=(ResultEntry("result", "r", "text/csv", 1, 1, False),)
    )
    ivoa_schemas.assert_valid(parameters_document(job, URL))
    ivoa_schemas.assert_valid(results_document(job, URL))


def test_validator_rejects_an_empty_start_time(ivoa_schemas) -> None:
    """(UWS-12)"""
    broken = job_document(make_job(), URL).replace(
        b'<uws:startTime xsi:nil="true"/>', b"<uws:startTime/>"
    )
    assert ivoa_schemas.errors(broken)


@pytest.mark.parametrize("recorded", [True, False])
def test_a_running_jobs_progress_is_job_info_and_schema_valid(recorded: bool, ivoa_schemas) -> None:
    started = CREATED + dt.timedelta(seconds=1)
    progress = (
        Progress(12345, 678901, started + dt.timedelta(seconds=8), expected_rows=50000)
        if recorded
        else None
    )
    job = make_job(JobPhase.EXECUTING, start_time=started, progress=progress)
    document = job_document(job, URL, now=started + dt.timedelta(seconds=10))
    ivoa_schemas.assert_valid(document)
    (info,) = etree.fromstring(document).findall("uws:jobInfo/{urn:tapd:job-info}progress", NS)
    figures = dict(info.attrib)
    assert figures.pop("seconds") == "10.0"
    if recorded:
        assert figures == {
            "rows": "12345",
            "bytes": "678901",
            "recorded": "2026-01-02T03:04:14.678Z",
            "expected_rows": "50000",
        }
    else:
        assert figures == {}


def test_progress_is_shown_only_while_the_job_runs() -> None:
    started = CREATED + dt.timedelta(seconds=1)
    job = make_job(
        JobPhase.COMPLETED,
        start_time=started,
        end_time=started,
        progress=Progress(1, 2, started),
    )
    assert b"jobInfo" not in job_document(job, URL, now=started)
