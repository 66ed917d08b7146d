"""TAP parameters are checked the way DALI and TAP 1.1 say."""

from __future__ import annotations

import pytest

from tapd.tap_parameters import ParameterError, parse_tap_parameters


def parse(**parameters: str | list[str]):
    grouped = {k: v if isinstance(v, list) else [v] for k, v in parameters.items()}
    return parse_tap_parameters(grouped, maxrec_default=1000, maxrec_max=5000)


def test_names_are_case_insensitive_and_defaults_apply() -> None:
    """(DALI-01, TAP-40)"""
    request = parse(lang="ADQL", Query="SELECT 1 FROM t")
    assert (request.lang, request.query) == ("ADQL", "SELECT 1 FROM t")
    assert (request.format_name, request.maxrec, request.maxrec_given) == ("votable", 1000, False)
    assert request.uploads == () and request.run_id is None


@pytest.mark.parametrize("lang", ["ADQL", "ADQL-2.0", "ADQL-2.1", "adql"])
def test_versioned_adql_is_accepted(lang: str) -> None:
    """(TAP-10)"""
    assert parse(LANG=lang, QUERY="q").lang == "ADQL"


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"QUERY": "q"}, "LANG is missing"),
        ({"LANG": "SQL", "QUERY": "q"}, "unknown query language 'SQL'"),
        ({"LANG": "ADQL"}, "QUERY is missing"),
        ({"LANG": "ADQL", "QUERY": "  "}, "QUERY is missing"),
        ({"LANG": "ADQL", "QUERY": ["a", "b"]}, "QUERY was given 2 times"),
        ({"LANG": "ADQL", "QUERY": "q", "MAXREC": "ten"}, "MAXREC must be a non-negative integer"),
        ({"LANG": "ADQL", "QUERY": "q", "MAXREC": "-1"}, "MAXREC must be a non-negative integer"),
        ({"LANG": "ADQL", "QUERY": "q", "REQUEST": "getCapabilities"}, "REQUEST must be doQuery"),
        (
            {"LANG": "ADQL", "QUERY": "q", "RESPONSEFORMAT": "csv", "FORMAT": "fits"},
            "disagree",
        ),
    ],
)
def test_bad_parameters_are_refused_with_a_message_naming_the_parameter(
    parameters: dict[str, str | list[str]], message: str
) -> None:
    """(DALI-02, TAP-10, TAP-12, TAP-17)"""
    with pytest.raises(ParameterError, match=message):
        parse(**parameters)


def test_format_synonym_maxrec_ceiling_uploads_and_spurious_parameters() -> None:
    """(DALI-03, TAP-12, TAP-14, TAP-17)"""
    request = parse(
        LANG="ADQL",
        QUERY="q",
        FORMAT="csv",
        MAXREC="999999",
        UPLOAD=["a,param:a", "b,http://x/b"],
        RUNID="mine",
        REQUEST="doQuery",
        FOO="ignored",
    )
    assert request.format_name == "csv"
    assert request.maxrec == 5000 and request.maxrec_given
    assert request.uploads == ("a,param:a", "b,http://x/b")
    assert request.run_id == "mine"


def test_maxrec_zero_is_allowed() -> None:
    """(TAP-15)"""
    assert parse(LANG="ADQL", QUERY="q", MAXREC="0").maxrec == 0
