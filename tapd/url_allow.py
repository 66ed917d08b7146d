"""The URL allow-list of URL uploads (``http.upload_url_allow``): parsed, compared exactly.

An entry such as ``https://archive.org:8443/tables`` admits a URL only when
scheme, host and port are equal (the port defaults by scheme, the host is
compared case-insensitively without a trailing dot) and the URL's path starts
with the entry's path in whole segments: ``/tables`` admits ``/tables`` and
``/tables/x.vot``, never ``/tables.evil`` or ``/tablesX``. URLs with user
information, dot segments (``.``, ``..``, also percent-encoded), encoded
slashes or backslashes are refused outright, whatever the list says: a server
could resolve them to a path outside the entry.

Pure functions; ``tapd.uploads`` calls ``url_allowed`` for the URL and for
every redirect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}

#: Percent-encoded '/' and '\\' would let a server see a different path than we compare.
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c)", re.IGNORECASE)


class UrlRefused(ValueError):
    """A URL (or allow-list entry) that cannot be compared safely; the message says why."""


@dataclass(frozen=True)
class UrlPrefix:
    """One parsed allow-list entry."""

    scheme: str
    host: str
    port: int
    segments: tuple[str, ...]

    def admits(self, url: UrlPrefix) -> bool:
        return (url.scheme, url.host, url.port) == (
            self.scheme,
            self.host,
            self.port,
        ) and url.segments[: len(self.segments)] == self.segments


def parse_url(text: str) -> UrlPrefix:
    """Scheme, host, port and path segments of an http(s) URL; ``UrlRefused`` when unsafe."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"{text!r} is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlRefused(f"{text!r} is not an http or https URL")
    if "@" in parts.netloc:
        raise UrlRefused(f"{text!r} carries user information (user@host)")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UrlRefused(f"{text!r} has no host")
    return UrlPrefix(scheme, host, port or DEFAULT_PORTS[scheme], _segments(parts, text))


def _segments(parts: SplitResult, text: str) -> tuple[str, ...]:
    path = parts.path
    if "\\" in path or _ENCODED_SEPARATOR.search(path):
        raise UrlRefused(f"{text!r} has an encoded slash or a backslash in its path")
    segments = path.split("/")[1:] if path.startswith("/") else path.split("/")
    decoded = tuple(unquote(s) for s in segments)
    if any(s in (".", "..") for s in decoded):
        raise UrlRefused(f"{text!r} has '.' or '..' segments in its path")
    # "/a/" and "/a" name the same prefix; empty segments ("//") are not collapsed:
    # a server may treat them differently, so they must match as written.
    while decoded and decoded[-1] == "":
        decoded = decoded[:-1]
    return decoded


def parse_allow_list(entries: Iterable[str]) -> tuple[UrlPrefix, ...]:
    """The parsed entries; ``UrlRefused`` naming the first unusable one."""
    parsed = []
    for entry in entries:
        prefix = parse_url(entry)
        if urlsplit(entry.strip()).query or urlsplit(entry.strip()).fragment:
            raise UrlRefused(f"allow-list entry {entry!r} must not have a query or fragment")
        parsed.append(prefix)
    return tuple(parsed)


def url_allowed(url: str, entries: Iterable[str]) -> bool:
    """True when ``url`` is safe and some entry admits it (``UrlRefused`` when unsafe)."""
    target = parse_url(url)
    return any(prefix.admits(target) for prefix in parse_allow_list(entries))
