"""Response helpers: XML documents, text/plain atomics, 303 redirects, problem answers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import BinaryIO

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response, StreamingResponse

from tapd.http.problems import NotFound

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


#: Bytes read from a served file at a time.
FILE_CHUNK = 256 * 1024


def file_response(
    path: Path, *, media_type: str, missing: str, headers: Mapping[str, str] | None = None
) -> Response:
    """The file at ``path``, opened now: a deletion racing the download (DELETE, the
    sweep) leaves either a 404 (``NotFound(missing)``) or the whole file, never a
    half-sent answer; the open descriptor keeps the content readable."""
    try:
        file = path.open("rb")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise NotFound(missing) from None
    size = os.fstat(file.fileno()).st_size
    return StreamingResponse(
        _chunks(file, size),
        media_type=media_type,
        headers={**(headers or {}), "Content-Length": str(size)},
    )


async def _chunks(file: BinaryIO, size: int) -> AsyncIterator[bytes]:
    try:
        left = size
        while left > 0:
            chunk = await run_in_threadpool(file.read, min(FILE_CHUNK, left))
            if not chunk:  # cannot happen with tapd's writers (they rename complete files)
                raise OSError(f"{file.name} shrank while it was served")
            left -= len(chunk)
            yield chunk
    finally:
        file.close()


def see_other(url: str) -> Response:
    """303 See Other to an absolute URL (UWS 1.1 §2.2.3, DALI 2.1)."""
    return RedirectResponse(url, status_code=303)


def problem(message: str, status: int) -> Response:
    """A refused request: status and one line saying what was wrong (never cached)."""
    body = (message.rstrip() + "\n").encode()
    return Response(body, status_code=status, media_type=TEXT_TYPE, headers=NO_STORE)
