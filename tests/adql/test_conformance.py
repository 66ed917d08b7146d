"""The IVOA ADQL conformance cases (lyonetia): valid ones parse, invalid ones are refused.

The cases (GPL-3.0, not copied into tapd) are read from the file or folder named
by ``TAPD_ADQL_CASES`` (``.ci/run`` sets it), else from
``shared/reference/adql-cases`` beside the checkout or any folder above it. When
they are absent the test is skipped, and fails in CI (``CI=true``). Every case is
judged as the suite expects, except the ones in ``EXCEPTIONS`` (with the reason).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tapd.adql import AdqlError, parse_adql
from tests.external_data import missing_data

CASES_NAME = "ivoa-lyonetia.json"
CASES_FOLDER = Path("shared", "reference", "adql-cases")


def find_cases_file(environ: Mapping[str, str], checkout: Path) -> Path:
    """Where the cases file is, or should be (TAPD_ADQL_CASES: the file or its folder)."""
    given = environ.get("TAPD_ADQL_CASES")
    if given:
        path = Path(given)
        return path / CASES_NAME if path.is_dir() else path
    for folder in checkout.parents:
        if (folder / CASES_FOLDER / CASES_NAME).exists():
            return folder / CASES_FOLDER / CASES_NAME
    return checkout.parent / CASES_FOLDER / CASES_NAME


CASES_FILE = find_cases_file(os.environ, Path(__file__).resolve().parents[2])
MISSING = f"the IVOA conformance cases are not at {CASES_FILE} (set TAPD_ADQL_CASES)"

#: Case ids whose expected verdict tapd deliberately does not follow, and why.
EXCEPTIONS: dict[str, str] = {
    "ivoa/2_from/d4c3a72c-4458-11e6-96e2-28b2bdcff70b": (
        "'t1 INNER JOIN t2' without ON or USING is expected invalid, but ADQL 2.1's grammar "
        "(Appendix A, <qualified_join>) makes <join_specification> optional; tapd follows the "
        "grammar and runs it as a cross join (docs/adql.md)"
    ),
}


def _cases() -> list[Any]:
    if not CASES_FILE.is_file():
        return [pytest.param(None, id="cases-missing")]
    cases = json.loads(CASES_FILE.read_text())
    return [pytest.param(case, id=case["id"].split("/", 1)[1]) for case in cases]


@pytest.mark.parametrize("case", _cases())
def test_conformance_case(case: dict[str, Any] | None) -> None:
    """(TAP-05)"""
    if case is None:
        missing_data(MISSING)
    # an exception is a verdict too: tapd's is the opposite of the suite's
    if case["expected_valid"] != (case["id"] in EXCEPTIONS):
        parse_adql(case["query"], case["udfs"])
    else:
        with pytest.raises(AdqlError) as info:
            parse_adql(case["query"], case["udfs"])
        assert re.search(r"at line \d+, column \d+: ", str(info.value)), str(info.value)


def test_all_196_cases_are_present() -> None:
    if not CASES_FILE.is_file():
        missing_data(MISSING)
    assert len(json.loads(CASES_FILE.read_text())) == 196


def test_the_cases_are_named_by_their_file_or_their_folder(tmp_path: Path) -> None:
    (tmp_path / CASES_NAME).write_text("[]")
    checkout = tmp_path / "nowhere" / "tapd"
    for given in (tmp_path, tmp_path / CASES_NAME):
        assert find_cases_file({"TAPD_ADQL_CASES": str(given)}, checkout) == tmp_path / CASES_NAME


def test_the_cases_are_found_above_the_checkout(tmp_path: Path) -> None:
    (tmp_path / CASES_FOLDER).mkdir(parents=True)
    (tmp_path / CASES_FOLDER / CASES_NAME).write_text("[]")
    checkout = tmp_path / "ci" / "tapd"
    assert find_cases_file({}, checkout) == tmp_path / CASES_FOLDER / CASES_NAME
