"""CI's entry point (.ci/run) finds the data kept outside the repository, and a test
that needs such data fails in CI when it is missing instead of skipping."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.external_data import running_in_ci

REPO = Path(__file__).resolve().parents[1]
CASES_NAME = "ivoa-lyonetia.json"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TAPD_ADQL_CASES")}
    env.update(extra)
    return env


def _clone(root: Path) -> Path:
    """A checkout at root/tapd holding CI's entry point and the cases finder."""
    checkout = root / "tapd"
    for name in (".ci/run", "scripts/find-adql-cases"):
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, checkout / name)
    return checkout


def _shared_cases(root: Path) -> Path:
    folder = root / "shared" / "reference" / "adql-cases"
    folder.mkdir(parents=True)
    (folder / CASES_NAME).write_text("[]")
    return folder


def test_cases_are_found_beside_a_clean_clone(tmp_path: Path) -> None:
    checkout = _clone(tmp_path)
    folder = _shared_cases(tmp_path)
    found = subprocess.run(
        [checkout / "scripts" / "find-adql-cases"], env=_clean_env(), capture_output=True, text=True
    )
    assert (found.returncode, found.stdout.strip()) == (0, str(folder))


def test_cases_are_found_from_a_checkout_reached_through_a_symlink(tmp_path: Path) -> None:
    checkout = _clone(tmp_path / "build")
    folder = _shared_cases(tmp_path / "build")
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "elsewhere" / "tapd"
    link.symlink_to(checkout)
    found = subprocess.run(
        [link / "scripts" / "find-adql-cases"], env=_clean_env(), capture_output=True, text=True
    )
    assert (found.returncode, found.stdout.strip()) == (0, str(folder))


def test_missing_cases_are_reported_with_the_place_looked_at(tmp_path: Path) -> None:
    checkout = _clone(tmp_path)
    found = subprocess.run(
        [checkout / "scripts" / "find-adql-cases"], env=_clean_env(), capture_output=True, text=True
    )
    assert found.returncode == 1 and found.stdout == ""
    assert f"no {CASES_NAME} in {tmp_path}/shared/reference/adql-cases" in found.stderr


def test_ci_run_exports_the_cases_and_ci_to_the_test_run(tmp_path: Path) -> None:
    checkout = _clone(tmp_path)
    folder = _shared_cases(tmp_path)
    fake_test = checkout / "scripts" / "test"
    fake_test.write_text('#!/bin/sh\necho "CI=$CI"\necho "TAPD_ADQL_CASES=$TAPD_ADQL_CASES"\n')
    fake_test.chmod(0o755)
    run = subprocess.run(
        [checkout / ".ci" / "run"], env=_clean_env(), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert "CI=true\n" in run.stdout
    assert f"TAPD_ADQL_CASES={folder}\n" in run.stdout


def _run_conformance_tests(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/adql/test_conformance.py",
        ],
        cwd=REPO,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
    )


def test_conformance_tests_fail_in_ci_when_the_cases_are_missing(tmp_path: Path) -> None:
    run = _run_conformance_tests(TAPD_ADQL_CASES=str(tmp_path / "none"), CI="true")
    assert run.returncode == 1, run.stdout
    assert "2 failed" in run.stdout and "skipped" not in run.stdout
    assert "CI=true: the data this test needs must be present" in run.stdout


def test_conformance_tests_skip_outside_ci_when_the_cases_are_missing(tmp_path: Path) -> None:
    run = _run_conformance_tests(TAPD_ADQL_CASES=str(tmp_path / "none"))
    assert run.returncode == 0, run.stdout
    assert "2 skipped" in run.stdout


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("True", True), ("1", True), ("yes", True), ("", False), ("false", False)],
)
def test_ci_is_recognised_from_the_ci_variable(value: str, expected: bool) -> None:
    assert running_in_ci({"CI": value}) is expected
    assert running_in_ci({}) is False
