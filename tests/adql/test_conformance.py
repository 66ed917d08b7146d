"""The IVOA ADQL conformance cases (lyonetia): valid ones parse, invalid ones are refused.

The cases are read from ../shared/reference/adql-cases (GPL-3.0, not copied
into tapd); the test is skipped when that file is absent. There are no
exceptions: every case is judged as the suite expects.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tapd.adql import AdqlError, parse_adql

CASES_FILE = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "reference"
    / "adql-cases"
    / "ivoa-lyonetia.json"
)

#: Case ids whose expected verdict tapd deliberately does not follow (none).
EXCEPTIONS: dict[str, str] = {}


def _cases() -> list[Any]:
    if not CASES_FILE.exists():
        return [
            pytest.param(
                None, marks=pytest.mark.skip(reason=f"conformance cases not found at {CASES_FILE}")
            )
        ]
    cases = json.loads(CASES_FILE.read_text())
    return [pytest.param(case, id=case["id"].split("/", 1)[1]) for case in cases]


@pytest.mark.parametrize("case", _cases())
def test_conformance_case(case: dict[str, Any]) -> None:
    if case["id"] in EXCEPTIONS:
        pytest.skip(EXCEPTIONS[case["id"]])
    if case["expected_valid"]:
        parse_adql(case["query"], case["udfs"])
    else:
        with pytest.raises(AdqlError) as info:
            parse_adql(case["query"], case["udfs"])
        assert re.search(r"at line \d+, column \d+: ", str(info.value)), str(info.value)


def test_all_196_cases_are_present() -> None:
    if not CASES_FILE.exists():
        pytest.skip(f"conformance cases not found at {CASES_FILE}")
    assert len(json.loads(CASES_FILE.read_text())) == 196
