"""Example queries: the operator's file is read strictly, and only examples that translate
against the published catalog are kept (the rest with the reason)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tapd.catalog import ensure_tap_schema, load_catalog
from tapd.demo import create_sample_catalog
from tapd.examples import (
    DEFAULT_EXAMPLES,
    DEMO_EXAMPLES,
    ExamplesError,
    check_examples,
    example_id,
    parse_examples,
    read_examples,
)

GOOD = """
[[example]]
name = "Cone search (1°)"
description = '''Two
   lines'''
query = "SELECT TOP 1 * FROM TAP_SCHEMA.tables"
"""


def test_example_fields_and_derived_id() -> None:
    (example,) = parse_examples(GOOD, "f.toml", Path("/x"))
    assert example.id == "cone-search-1"
    assert example.description == "Two lines"
    assert example.query == "SELECT TOP 1 * FROM TAP_SCHEMA.tables"
    assert example.upload is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Cone search", "cone-search"), ("2MASS match", "example-2mass-match"), ("ÄÖ", "example")],
)
def test_example_ids_are_xml_names(name: str, expected: str) -> None:
    assert example_id(name) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[example]]\nquery = 'SELECT 1'\n", "example 1: name is missing"),
        ("[[example]]\nname = 'a'\n", "example 1 ('a'): query is missing"),
        ("[[example]]\nname = 'a'\nquery = 'q'\nsql = 1\n", "unknown key 'sql'"),
        ("[[example]]\nname = 'a'\nquery = 1\n", "query must be a string"),
        ("[[examples]]\nname = 'a'\n", "unknown table 'examples'"),
        ("example = 3\n", "must be an array of tables"),
        ("[[example]\n", "not valid TOML"),
        ("[[example]]\nname = 'a'\nquery = 'q'\nid = '1a'\n", "id '1a' is not an XML name"),
        (
            "[[example]]\nname = 'a'\nquery = 'q'\n[[example]]\nname = 'A'\nquery = 'q'\n",
            "two examples have the id 'a'",
        ),
        (
            "[[example]]\nname = 'a'\nquery = 'q'\nupload = {table = 'x'}\n",
            "upload must be {table",
        ),
        (
            "[[example]]\nname = 'a'\nquery = 'q'\nupload = {table = '1x', file = 'f'}\n",
            "upload table '1x' is not an ADQL regular identifier",
        ),
    ],
)
def test_malformed_examples_file_is_refused_naming_the_entry(text: str, message: str) -> None:
    with pytest.raises(ExamplesError) as caught:
        parse_examples(text, "ex.toml", Path("/x"))
    assert message in caught.value.message
    assert caught.value.message.startswith("ex.toml: ")


def test_unreadable_examples_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ExamplesError, match=r"cannot read the examples file .*missing.toml"):
        read_examples(tmp_path / "missing.toml")


@pytest.fixture
def demo_catalog(dsn: str):  # type: ignore[no-untyped-def]
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_tap_schema(conn, "tapd_query")
        create_sample_catalog(conn, 50, "tapd_query")
        return load_catalog(conn)


def test_shipped_examples_all_pass_against_the_demo_catalog(demo_catalog) -> None:  # type: ignore[no-untyped-def]
    examples = read_examples(DEMO_EXAMPLES) + read_examples(DEFAULT_EXAMPLES)
    good, rejected = check_examples(examples, demo_catalog, max_rows=1000)
    assert rejected == ()
    assert len(good) == len(examples) >= 6
    assert any(e.upload is not None for e in good)  # the crossmatch with an upload


def test_failing_examples_are_rejected_with_line_and_column(tmp_path: Path, demo_catalog) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "t.vot").write_text((DEMO_EXAMPLES.parent / "demo_targets.vot").read_text())
    text = """
[[example]]
name = "Fine"
query = "SELECT TOP 3 name FROM demo.stars"
[[example]]
name = "Unknown column"
query = '''SELECT name,
  colour FROM demo.stars'''
[[example]]
name = "Upload column"
query = "SELECT t.nosuch FROM TAP_UPLOAD.targets AS t"
upload = {table = "targets", file = "t.vot"}
[[example]]
name = "Upload file missing"
query = "SELECT * FROM TAP_UPLOAD.other"
upload = {table = "other", file = "missing.vot"}
"""
    examples = parse_examples(text, "ex.toml", tmp_path)
    good, rejected = check_examples(examples, demo_catalog, max_rows=1000)
    assert [e.name for e in good] == ["Fine"]
    reasons = {r.example.name: r.reason for r in rejected}
    assert "line 2, column 3" in reasons["Unknown column"]
    assert "colour" in reasons["Unknown column"]
    assert "nosuch" in reasons["Upload column"]
    assert "missing.vot does not exist" in reasons["Upload file missing"]
