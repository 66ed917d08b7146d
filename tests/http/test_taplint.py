"""STILTS taplint, the IVOA's TAP validator, against a demo-like tapd: no errors in any stage."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tapd.examples import DEMO_EXAMPLES
from tests.http.conftest import RunningService, start_service, stop_service

STILTS = shutil.which("stilts")

#: Stages that must run (OBS and LOC only report what is absent: ObsCore, ObsLocTAP).
STAGES = (
    "TMV", "TME", "TMS", "TMC", "CPV", "CAP", "AVV", "QGE", "QPO", "QAS", "UWS", "MDQ", "UPL",
    "EXA",
)  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        STILTS is None,
        reason="STILTS is not installed (apt-get install stilts; scripts/bootstrap installs it)",
    ),
]


@pytest.fixture(scope="module")
def service(pg_cluster, tmp_path_factory) -> Iterator[RunningService]:
    running = start_service(
        pg_cluster, tmp_path_factory.mktemp("taplint"), "http_taplint", daemon=True,
        sample_rows=2000, settings={"TAPD_EXAMPLES": str(DEMO_EXAMPLES)},
    )  # fmt: skip
    yield running
    stop_service(running, pg_cluster, "http_taplint")


def run_taplint(url: str) -> list[str]:
    result = subprocess.run(
        [STILTS, "taplint", f"tapurl={url}", "report=EWSF", "maxrepeat=50"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return (result.stdout + result.stderr).splitlines()


@pytest.fixture(scope="module")
def report(service: RunningService) -> list[str]:
    """taplint's report on the module's service (one run for every test)."""
    return run_taplint(service.url)


def test_taplint_finds_no_errors_in_any_stage(report: list[str]) -> None:
    """Stages TMV..UPL validate every document against the IVOA schemas and cross-check
    TAP_SCHEMA, /tables and result metadata (TAP-01, TAP-30, TAP-44, TAP-80, TAP-81, TAP-82,
    TAP-83, TAP-85, TAP-88, VOSI-04, VOSI-08, UWS-10)."""
    lines = report
    stages = {line.split()[1].rstrip(":") for line in lines if line.startswith("Section ")}
    errors = [line for line in lines if line.startswith("E-")]
    assert not errors, "\n".join(lines)
    expected = [
        "TMV",
        "TME",
        "TMS",
        "TMC",
        "CPV",
        "CAP",
        "AVV",
        "QGE",
        "QPO",
        "QAS",
        "UWS",
        "MDQ",
        "UPL",
        "EXA",
    ]
    for stage in expected:
        assert stage in stages, f"taplint did not run stage {stage}:\n" + "\n".join(lines)


def test_taplint_finds_the_demo_examples_valid(report: list[str]) -> None:
    """EXA: the DALI examples document, its capability and every example: no error, warning
    or failure (taplint checks each query's syntax and runs those without uploads)."""
    lines = report
    complaints = [line for line in lines if re.match(r"[EWF]-EXA-", line)]
    assert not complaints, "\n".join(lines)
    summary = next(line for line in lines if line.startswith("S-EXA-XVAL"))
    assert "Syntax validity success/attempt: 4/4" in summary, summary
    assert "Execution success/attempt: 3/3" in summary, summary
