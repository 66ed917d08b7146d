"""Reading a request's parameters: query string, urlencoded or multipart body, with limits.

DALI 2.2: parameters may come in the query string or a POST body encoded as
``application/x-www-form-urlencoded`` or ``multipart/form-data``. The body is
read as a stream and refused (413) once it exceeds ``request_max_bytes``;
multipart parts that carry a file name, or that an ``UPLOAD=name,param:part``
refers to, are written to files in a spool directory and refused (413) above
``upload_max_bytes``. Everything else is a text parameter.

The multipart parser is python-multipart's low-level ``MultipartParser``, which
Debian 12 (0.0.5, module ``multipart``) and current PyPI (module
``python_multipart``) both have with the same callbacks.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import parse_qsl

from tapd.http.problems import BadRequest, PayloadTooLarge, UnsupportedMediaType
from tapd.store.jobdir import SPOOL_PREFIX

try:  # current PyPI
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header
except ImportError:  # Debian 12's python3-multipart 0.0.5
    from multipart.exceptions import FormParserError  # type: ignore[no-redef]
    from multipart.multipart import MultipartParser, parse_options_header  # type: ignore[no-redef]

#: Upload part names usable as file names: ``param:<name>`` (DALI 3.4.5).
PART_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")


#: Largest text (non-file) form field kept in memory, bytes.
MAX_TEXT_FIELD = 1_000_000


@dataclass
class UploadedPart:
    """A multipart part spooled to a file."""

    name: str
    filename: str | None
    path: Path
    size: int


@dataclass
class RequestForm:
    """All parameters of one request, in the order they came."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    parts: dict[str, UploadedPart] = field(default_factory=dict)

    def values(self, name: str) -> list[str]:
        """Every value of the (case-insensitive) parameter ``name``."""
        wanted = name.upper()
        return [v for k, v in self.fields if k.upper() == wanted]

    def last(self, name: str) -> str | None:
        found = self.values(name)
        return found[-1] if found else None

    def discard_files(self) -> None:
        """Delete the spooled part files (after they were moved or used)."""
        for part in self.parts.values():
            part.path.unlink(missing_ok=True)


#: ASGI scope key of the request's list of spooled files (see ``RemoveSpooledFiles``).
SPOOLED_KEY = "tapd.spooled"


def request_spool(scope: MutableMapping[str, Any]) -> list[Path]:
    """The list of files spooled for this request (created on first use)."""
    spooled: list[Path] = scope.setdefault(SPOOLED_KEY, [])
    return spooled


class RemoveSpooledFiles:
    """ASGI middleware: when a request ends, every part spooled for it that was not
    moved into a job is deleted, on every path (answers, errors, disconnects)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        async def send_after_cleanup(message: MutableMapping[str, Any]) -> None:
            # Before the last byte goes out: a client must never see its answer while
            # the request's files are still there.
            if message["type"] == "http.response.body" and not message.get("more_body"):
                _remove_spooled(scope)
            await send(message)

        try:
            await self.app(scope, receive, send_after_cleanup)
        finally:
            _remove_spooled(scope)


def _remove_spooled(scope: MutableMapping[str, Any]) -> None:
    for path in scope.get(SPOOLED_KEY, ()):
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


#: Most parameters one request may carry (each is stored with an async job).
MAX_PARAMETERS = 1000


@dataclass
class Limits:
    request_max_bytes: int
    upload_max_bytes: int
    query_max_bytes: int = 100_000
    parameter_max_bytes: int = 10_000

    @property
    def form_max_bytes(self) -> int:
        """Most bytes of text parameters held in memory (a urlencoded body, the text
        fields of a multipart body): what the parameter limits allow, no more."""
        return min(
            self.request_max_bytes,
            self.query_max_bytes + MAX_PARAMETERS * self.parameter_max_bytes + 65536,
        )


def parse_query_string(query: bytes | str) -> list[tuple[str, str]]:
    """Name/value pairs of a query string; malformed UTF-8 is a 400."""
    if isinstance(query, bytes):
        query = query.decode("latin-1")
    try:
        return parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("the query string is not valid UTF-8 after percent-decoding") from None


def referenced_parts(fields: list[tuple[str, str]]) -> set[str]:
    """Part names that ``UPLOAD=table,param:part`` values refer to."""
    names = set()
    for key, value in fields:
        if key.upper() != "UPLOAD":
            continue
        for item in value.split(";"):
            _, _, uri = item.partition(",")
            if uri.strip().startswith("param:"):
                names.add(uri.strip()[len("param:") :])
    return names


async def read_form(
    content_type: str | None,
    content_length: str | None,
    body: AsyncIterator[bytes],
    query_string: bytes,
    limits: Limits,
    spool_dir: Path,
    spooled: list[Path] | None = None,
) -> RequestForm:
    """Parse the query string and body of a request into a ``RequestForm``.

    Every file spooled is also appended to ``spooled`` (the request's list, which
    the app empties when the request ends, whatever happened in between).
    """
    form = RequestForm(fields=parse_query_string(query_string))
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise BadRequest(f"Content-Length {content_length!r} is not a number") from None
        if declared > limits.request_max_bytes:
            raise PayloadTooLarge(
                f"request body of {declared} bytes exceeds the limit of "
                f"{limits.request_max_bytes} bytes"
            )
    media, options = parse_options_header(content_type or "")
    media_type = media.decode("latin-1").lower() if isinstance(media, bytes) else str(media).lower()
    if media_type == "multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise BadRequest(
                "malformed multipart/form-data request: the Content-Type has no boundary"
            )
        await _read_multipart(form, boundary, body, limits, spool_dir, spooled)
    elif media_type == "application/x-www-form-urlencoded":
        data = await _read_all(body, limits.form_max_bytes)
        form.fields += parse_query_string(data)
    else:
        data = await _read_all(body, limits.request_max_bytes)
        if data.strip():
            raise UnsupportedMediaType(
                f"cannot read a request body of type {media_type or 'unknown'!r}: "
                "send application/x-www-form-urlencoded or multipart/form-data"
            )
    try:
        check_text_fields(form.fields, limits)
    except BaseException:
        form.discard_files()
        raise
    return form


def check_text_fields(fields: list[tuple[str, str]], limits: Limits) -> None:
    """400 for a NUL character in a parameter name or value (no text field may hold one);
    413 for too many parameters or a value longer than its limit."""
    if len(fields) > MAX_PARAMETERS:
        raise PayloadTooLarge(f"the request has {len(fields)} parameters; at most "
                              f"{MAX_PARAMETERS} are accepted")  # fmt: skip
    for name, value in fields:
        if "\x00" in name:
            raise BadRequest(f"parameter name {name!r} contains a NUL character")
        if "\x00" in value:
            raise BadRequest(f"parameter {name} contains a NUL character in its value")
        is_query = name.upper() == "QUERY"
        limit = limits.query_max_bytes if is_query else limits.parameter_max_bytes
        if len(name) > limits.parameter_max_bytes or len(value.encode()) > limit:
            setting = "limits.query_max_bytes" if is_query else "limits.parameter_max_bytes"
            raise PayloadTooLarge(
                f"parameter {name[:100]} is longer than {limit} bytes (setting {setting})"
            )


async def _read_all(body: AsyncIterator[bytes], limit: int) -> bytes:
    chunks = []
    size = 0
    async for chunk in body:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class _Part:
    name: str | None = None
    filename: str | None = None
    file: IO[bytes] | None = None
    path: Path | None = None
    data: bytearray = field(default_factory=bytearray)
    size: int = 0
    oversize: bool = False


class _MultipartCollector:
    """python-multipart callbacks gathering parts into a ``RequestForm``."""

    def __init__(self, limits: Limits, spool_dir: Path, spooled: list[Path]) -> None:
        self.limits = limits
        self.spool_dir = spool_dir
        self.spooled = spooled
        self.parts: list[_Part] = []
        self.current = _Part()
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.finished = False
        self.counter = 0
        self.token = secrets.token_hex(8)
        self.part_count = 0
        self.in_memory = 0  # bytes of text parts held in memory

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": lambda d, s, e: self.header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self.header_value.extend(d[s:e]),
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self.current = _Part()
        self.headers = {}
        self.part_count += 1
        if self.part_count > MAX_PARAMETERS:
            raise PayloadTooLarge(f"the request has more than {MAX_PARAMETERS} parts")

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        filename = options.get(b"filename")
        self.current.name = name.decode("utf-8", "replace") if name is not None else None
        self.current.filename = (
            filename.decode("utf-8", "replace") if filename is not None else None
        )
        if self.current.filename is not None:
            self._spill()

    def _spill(self) -> None:
        """Move the current part to a file (file uploads, or text grown too big)."""
        self.counter += 1
        # A random token, not id(self): ids are reused once a collector is freed,
        # while the parts it spooled may still be in use by their request.
        path = self.spool_dir / f"{SPOOL_PREFIX}{os.getpid()}-{self.token}-{self.counter}"
        self.spooled.append(path)
        self.current.path = path
        self.current.file = path.open("wb")
        self.current.file.write(self.current.data)
        self.current.data = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.current
        part.size += end - start
        if part.oversize:
            return
        if part.size > self.limits.upload_max_bytes:
            part.oversize = True
            return
        if part.file is None and part.size > MAX_TEXT_FIELD:
            self.in_memory -= len(part.data)
            self._spill()
        if part.file is not None:
            part.file.write(data[start:end])
            return
        self.in_memory += end - start
        if self.in_memory > self.limits.form_max_bytes:
            raise PayloadTooLarge(
                f"the request's text parameters exceed {self.limits.form_max_bytes} bytes"
            )
        else:
            part.data.extend(data[start:end])

    def on_part_end(self) -> None:
        if self.current.file is not None:
            self.current.file.close()
        self.parts.append(self.current)

    def on_end(self) -> None:
        self.finished = True

    def cleanup(self) -> None:
        for part in [*self.parts, self.current]:
            if part.file is not None:
                part.file.close()
            if part.path is not None:
                part.path.unlink(missing_ok=True)


async def _read_multipart(
    form: RequestForm,
    boundary: bytes,
    body: AsyncIterator[bytes],
    limits: Limits,
    spool_dir: Path,
    spooled: list[Path] | None,
) -> None:
    collector = _MultipartCollector(limits, spool_dir, [] if spooled is None else spooled)
    parser = MultipartParser(boundary, cast(Any, collector.callbacks()))
    size = 0
    try:
        async for chunk in body:
            size += len(chunk)
            if size > limits.request_max_bytes:
                raise PayloadTooLarge(
                    f"request body exceeds the limit of {limits.request_max_bytes} bytes"
                )
            parser.write(chunk)
        parser.finalize()
        if not collector.finished:
            raise BadRequest(
                "malformed multipart/form-data request: the body ended before the closing boundary"
            )
        _collect(form, collector, limits, spool_dir)
    except FormParserError as exc:
        collector.cleanup()
        raise BadRequest(f"malformed multipart/form-data request: {exc}") from None
    except BaseException:
        collector.cleanup()
        raise


def _collect(
    form: RequestForm, collector: _MultipartCollector, limits: Limits, spool_dir: Path
) -> None:
    for part in collector.parts:
        if part.oversize:
            what = f"uploaded table {part.name!r}" if part.name else "a multipart part"
            raise PayloadTooLarge(
                f"{what} is larger than the upload limit of {limits.upload_max_bytes} bytes"
            )
    text_fields: list[tuple[str, str]] = []
    text_parts: list[_Part] = []
    for part in collector.parts:
        if part.name is None:
            continue
        if part.path is None:
            text_parts.append(part)
    referenced = referenced_parts(
        form.fields + [(p.name or "", p.data.decode("utf-8", "replace")) for p in text_parts]
    )
    for part in collector.parts:
        if part.name is None:
            continue
        if part.path is None and part.name not in referenced:
            try:
                text_fields.append((part.name, part.data.decode("utf-8")))
            except UnicodeDecodeError:
                raise BadRequest(
                    f"multipart field {part.name!r} is not UTF-8 text "
                    "(send files with a filename, or reference them in UPLOAD as param:NAME)"
                ) from None
            continue
        if part.filename is None and part.name not in referenced:
            raise PayloadTooLarge(
                f"multipart field {part.name!r} is longer than {MAX_TEXT_FIELD} bytes"
            )
        if part.path is None:
            collector.current = part
            collector._spill()
            part.file.close()  # type: ignore[union-attr]
        if not PART_NAME.match(part.name):
            raise BadRequest(
                f"multipart part name {part.name!r} is not usable: "
                "use letters, digits, '_', '.' or '-'"
            )
        assert part.path is not None
        if part.name in form.parts:
            raise BadRequest(
                f"multipart part {part.name!r} is sent twice: an uploaded table needs a name "
                "of its own"
            )
        form.parts[part.name] = UploadedPart(part.name, part.filename, part.path, part.size)
    form.fields += text_fields
