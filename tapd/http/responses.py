"""Response helpers: XML documents, text/plain atomics, 303 redirects, problem answers."""

from __future__ import annotations

from starlette.responses import RedirectResponse, Response

XML_TYPE = "text/xml"
TEXT_TYPE = "text/plain; charset=utf-8"

#: Job documents change at any moment; clients must never get a cached one.
NO_CACHE = {"Cache-Control": "no-cache"}

#: Results of one request and error answers: never kept by a cache at all.
NO_STORE = {"Cache-Control": "no-store"}


def xml(document: bytes, status: int = 200) -> Response:
    return Response(document, status_code=status, media_type=XML_TYPE, headers=NO_CACHE)


def text(value: str, status: int = 200) -> Response:
    return Response(value.encode(), status_code=status, media_type=TEXT_TYPE, headers=NO_CACHE)


def see_other(url: str) -> Response:
    """303 See Other to an absolute URL (UWS 1.1 §2.2.3, DALI 2.1)."""
    return RedirectResponse(url, status_code=303)


def problem(message: str, status: int) -> Response:
    """A refused request: status and one line saying what was wrong (never cached)."""
    body = (message.rstrip() + "\n").encode()
    return Response(body, status_code=status, media_type=TEXT_TYPE, headers=NO_STORE)
