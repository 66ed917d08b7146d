"""Format names, aliases and the Content-Type served for each (TAP-12, TAP-13, TAP-40)."""

from __future__ import annotations

import importlib.util

import pytest

from tapd.formats import UnknownFormat, available_formats, resolve_format

HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None


@pytest.mark.parametrize(
    ("name", "key", "mime_type"),
    [
        (None, "votable", "application/x-votable+xml"),
        ("", "votable", "application/x-votable+xml"),
        ("votable", "votable", "application/x-votable+xml"),
        ("VOTable", "votable", "application/x-votable+xml"),
        ("votable/b2", "votable", "application/x-votable+xml"),
        ("application/x-votable+xml", "votable", "application/x-votable+xml"),
        ("text/xml", "votable", "text/xml"),
        (
            "application/x-votable+xml; serialization=BINARY2",
            "votable",
            "application/x-votable+xml;serialization=BINARY2",
        ),
        ("votable/b", "votable/b", "application/x-votable+xml;serialization=BINARY"),
        (
            "application/x-votable+xml;serialization=binary",
            "votable/b",
            "application/x-votable+xml;serialization=binary",
        ),
        ("votable/td", "votable/td", "application/x-votable+xml;serialization=TABLEDATA"),
        (
            "application/x-votable+xml;serialization=TABLEDATA",
            "votable/td",
            "application/x-votable+xml;serialization=TABLEDATA",
        ),
        ("csv", "csv", "text/csv;header=present"),
        ("text/csv", "csv", "text/csv;header=present"),
        ("text/csv;header=present", "csv", "text/csv;header=present"),
        ("tsv", "tsv", "text/tab-separated-values"),
        ("text/tab-separated-values", "tsv", "text/tab-separated-values"),
        ("fits", "fits", "application/fits"),
        ("application/fits", "fits", "application/fits"),
        ("json", "json", "application/json"),
        ("application/json", "json", "application/json"),
        ("html", "html", "text/html"),
        ("text/html", "html", "text/html"),
    ],
)
def test_each_name_selects_a_writer_and_the_content_type_to_serve(
    name: str | None, key: str, mime_type: str
) -> None:
    """(TAP-12, TAP-13)"""
    fmt = resolve_format(name)
    assert (fmt.key, fmt.mime_type) == (key, mime_type)


def test_unknown_format_names_the_supported_ones() -> None:
    with pytest.raises(UnknownFormat) as caught:
        resolve_format("bogus")
    message = caught.value.message
    assert "'bogus'" in message
    for alias in ("votable", "votable/td", "csv", "tsv", "fits", "json", "html"):
        assert alias in message


def test_unknown_votable_serialisation_is_refused() -> None:
    with pytest.raises(UnknownFormat):
        resolve_format("application/x-votable+xml;serialization=FITS")


def test_votable_is_the_default_and_listed_first() -> None:
    """(TAP-40)"""
    assert available_formats()[0].key == "votable"


def test_parquet_is_offered_exactly_where_pyarrow_is_installed() -> None:
    keys = {fmt.key for fmt in available_formats()}
    assert ("parquet" in keys) == HAS_PYARROW
    if HAS_PYARROW:
        assert resolve_format("parquet").mime_type == "application/vnd.apache.parquet"
    else:
        with pytest.raises(UnknownFormat):
            resolve_format("parquet")
