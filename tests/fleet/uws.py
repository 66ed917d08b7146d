"""A TAP/UWS client for the fleet test: what a user's client does, over HTTP only."""

from __future__ import annotations

import time
from typing import Any

import httpx
from lxml import etree

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"
FINAL = ("COMPLETED", "ERROR", "ABORTED")


def submit(base_url: str, query: str, *, run: bool = True, files: Any = None, **params: str) -> str:
    """POST /async; returns the new job's id."""
    data = {"LANG": "ADQL", "QUERY": query, **params}
    if run:
        data["PHASE"] = "RUN"
    answer = httpx.post(f"{base_url}/async", data=data, files=files, timeout=30)
    assert answer.status_code == 303, answer.text
    return answer.headers["location"].rstrip("/").rsplit("/", 1)[1]


def job_document(base_url: str, job_id: str, wait: int | None = None) -> etree._Element:
    params = {"WAIT": str(wait)} if wait is not None else {}
    answer = httpx.get(f"{base_url}/async/{job_id}", params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    return etree.fromstring(answer.content)


def phase(base_url: str, job_id: str) -> str:
    answer = httpx.get(f"{base_url}/async/{job_id}/phase", timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.text.strip()


def wait_phase(
    base_url: str, job_id: str, phases: tuple[str, ...] = FINAL, timeout: float = 120
) -> str:
    """Block (UWS WAIT) until the job is in one of ``phases``; returns the phase."""
    end = time.monotonic() + timeout
    while True:
        current = job_document(base_url, job_id, wait=5).findtext(f"{UWS}phase")
        assert current is not None
        if current in phases:
            return current
        if time.monotonic() > end:
            raise AssertionError(f"job {job_id} still {current} after {timeout} s")


def error_summary(base_url: str, job_id: str) -> str:
    document = job_document(base_url, job_id)
    return document.findtext(f"{UWS}errorSummary/{UWS}message") or ""
