"""The demo's first job: one async ADQL query sent over HTTP as a TAP client would.

Creates a UWS job with PHASE=RUN, blocks on ``WAIT`` until it ends, and
fetches ``results/result`` as CSV, using only the standard library, so a new
user sees the whole path (HTTP service -> job store -> runner daemon -> result
file) work before trying their own client.
"""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass

UWS = "{http://www.ivoa.net/xml/UWS/v1.0}"
EXAMPLE_QUERY = (
    "SELECT TOP 5 name, ra, dec, gmag, DISTANCE(pos, POINT(10, 20)) AS dist "
    "FROM demo.stars WHERE 1 = CONTAINS(pos, CIRCLE(10, 20, 2)) ORDER BY gmag"
)


@dataclass(frozen=True)
class ExampleRun:
    job_url: str
    phase: str
    seconds: float
    result: str  # CSV text, or the error message


def _job_phase(job_url: str, wait: int) -> tuple[str, str]:
    with urllib.request.urlopen(f"{job_url}?WAIT={wait}", timeout=wait + 10) as response:
        job = ET.fromstring(response.read())
    message = job.findtext(f"{UWS}errorSummary/{UWS}message") or ""
    return job.findtext(f"{UWS}phase") or "UNKNOWN", message


def run_example_job(tap_url: str, query: str = EXAMPLE_QUERY, timeout: float = 60) -> ExampleRun:
    """Submit ``query`` as an async job, wait for it, return its CSV result."""
    started = time.monotonic()
    form = urllib.parse.urlencode(
        {"LANG": "ADQL", "QUERY": query, "RESPONSEFORMAT": "csv", "PHASE": "RUN"}
    ).encode()
    with urllib.request.urlopen(f"{tap_url}/async", data=form, timeout=30) as response:
        job_url = response.url  # urllib followed the 303 to the job
    phase, message = _job_phase(job_url, 0)
    while phase in ("PENDING", "QUEUED", "EXECUTING") and time.monotonic() - started < timeout:
        phase, message = _job_phase(job_url, 5)
    seconds = time.monotonic() - started
    if phase != "COMPLETED":
        return ExampleRun(job_url, phase, seconds, message)
    with urllib.request.urlopen(f"{job_url}/results/result", timeout=30) as response:
        return ExampleRun(job_url, phase, seconds, response.read().decode())


def describe(run: ExampleRun) -> str:
    """The example job as the demo prints it."""
    lines = [
        "A first async job, sent over HTTP:",
        f"  query: {EXAMPLE_QUERY}",
        f"  job:   {run.job_url}",
        f"  phase: {run.phase} after {run.seconds * 1000:.0f} ms",
    ]
    if run.phase == "COMPLETED":
        lines.append("  result (CSV):")
        lines += [f"    {row}" for row in run.result.strip().splitlines()]
    else:
        lines.append(f"  error: {run.result}")
    return "\n".join(lines) + "\n"
