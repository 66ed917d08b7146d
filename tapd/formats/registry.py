"""Result format names, aliases and media types: the one table of them.

A client names a format by a short alias (``csv``, ``votable/td``) or by a
media type (``text/csv``, ``application/x-votable+xml;serialization=BINARY2``).
``resolve_format`` finds the format and says which Content-Type to serve: the
format's own media type for an alias, the client's media type when it asked for
one (DALI 3.4.3, checklist TAP-13), with ``;header=present`` added for CSV.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass, replace

from tapd.errors import TapdError


class UnknownFormat(TapdError):
    """RESPONSEFORMAT/FORMAT names nothing this service writes."""


@dataclass(frozen=True)
class ResultFormat:
    """One output format as a client may request it."""

    key: str  # the writer: votable, votable/b, votable/td, csv, tsv, fits, json, html, parquet
    mime_type: str  # Content-Type to serve (depends on the name the client used)
    aliases: tuple[str, ...]  # short names a client may use, first is canonical
    extension: str  # file name extension of the result file
    media_types: tuple[str, ...] = ()  # further media types that select this format
    needs: str | None = None  # importable module the writer needs (None: always available)

    @property
    def canonical_mime_type(self) -> str:
        """The media type declared for this format in capabilities."""
        return _BY_KEY[self.key].mime_type


_VOTABLE = "application/x-votable+xml"

#: Every format tapd can write; the first is the default (TAP-40).
FORMATS: tuple[ResultFormat, ...] = (
    ResultFormat(
        "votable",
        _VOTABLE,
        ("votable", "votable/b2"),
        "xml",
        media_types=(_VOTABLE, "text/xml", f"{_VOTABLE};serialization=binary2"),
    ),
    ResultFormat(
        "votable/b",
        f"{_VOTABLE};serialization=BINARY",
        ("votable/b",),
        "xml",
        media_types=(f"{_VOTABLE};serialization=binary",),
    ),
    ResultFormat(
        "votable/td",
        f"{_VOTABLE};serialization=TABLEDATA",
        ("votable/td",),
        "xml",
        media_types=(f"{_VOTABLE};serialization=tabledata",),
    ),
    ResultFormat("csv", "text/csv;header=present", ("csv",), "csv", media_types=("text/csv",)),
    ResultFormat(
        "tsv",
        "text/tab-separated-values",
        ("tsv",),
        "tsv",
        media_types=("text/tab-separated-values",),
    ),
    ResultFormat("fits", "application/fits", ("fits",), "fits", media_types=("application/fits",)),
    ResultFormat("json", "application/json", ("json",), "json", media_types=("application/json",)),
    ResultFormat("html", "text/html", ("html",), "html", media_types=("text/html",)),
    ResultFormat(
        "parquet",
        "application/vnd.apache.parquet",
        ("parquet",),
        "parquet",
        media_types=("application/vnd.apache.parquet",),
        needs="pyarrow",
    ),
)

_BY_KEY = {fmt.key: fmt for fmt in FORMATS}
DEFAULT_FORMAT = FORMATS[0]


def _is_available(fmt: ResultFormat) -> bool:
    return fmt.needs is None or importlib.util.find_spec(fmt.needs) is not None


def available_formats() -> tuple[ResultFormat, ...]:
    """The formats this host can write (Parquet only where pyarrow is installed)."""
    return tuple(fmt for fmt in FORMATS if _is_available(fmt))


def _parse_media_type(name: str) -> tuple[str, dict[str, str]]:
    """``Text/CSV; header=present`` -> (``text/csv``, {``header``: ``present``})."""
    base, *params = (part.strip() for part in name.split(";"))
    parsed: dict[str, str] = {}
    for param in params:
        key, _, value = param.partition("=")
        parsed[key.strip().lower()] = value.strip().strip('"').lower()
    return base.lower(), parsed


def _media_type_key(base: str, params: dict[str, str]) -> str:
    """The lookup key of a media type: its base plus the parameter that selects a writer."""
    if base == _VOTABLE and "serialization" in params:
        return f"{base};serialization={params['serialization']}"
    return base


@functools.cache
def _lookup() -> dict[str, ResultFormat]:
    table: dict[str, ResultFormat] = {}
    for fmt in available_formats():
        for name in fmt.aliases + fmt.media_types:
            table[name.lower()] = fmt
    return table


def supported_names() -> list[str]:
    """Short names of the available formats, for messages."""
    return [alias for fmt in available_formats() for alias in fmt.aliases]


def resolve_format(name: str | None) -> ResultFormat:
    """The format a RESPONSEFORMAT/FORMAT value selects; no value means VOTable.

    The returned ``mime_type`` is the Content-Type to serve for that name.
    Raises ``UnknownFormat`` naming the supported values.
    """
    if name is None or not name.strip():
        return DEFAULT_FORMAT
    text = name.strip()
    table = _lookup()
    fmt = table.get(text.lower())  # an alias, or a media type as we spell it
    if fmt is None and "/" in text:
        fmt = table.get(_media_type_key(*_parse_media_type(text)))
    if fmt is None:
        raise UnknownFormat(
            f"unsupported RESPONSEFORMAT {name!r}; supported: {', '.join(supported_names())}"
            f" (or their media types, e.g. {DEFAULT_FORMAT.mime_type}, text/csv)"
        )
    if text.lower() in fmt.aliases:
        return fmt
    return replace(fmt, mime_type=_served_media_type(fmt, text))


def _served_media_type(fmt: ResultFormat, requested: str) -> str:
    """Serve the media type the client asked for (TAP-13), CSV with its header parameter."""
    if fmt.key == "csv":
        return "text/csv;header=present"
    return "".join(requested.split())  # as asked, minus whitespace
