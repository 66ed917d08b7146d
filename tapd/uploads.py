"""TAP_UPLOAD: user tables sent with a query, visible as ``TAP_UPLOAD.name`` to that query only.

``UPLOAD=name,URI`` (TAP 1.1 §2.7.6, DALI 3.4.5) names a VOTable either sent
in the same multipart request (``param:part``, stored as a file) or fetched
from an http(s) URL on the configured allow-list. ``load_uploads`` parses each
VOTable with astropy, creates a temporary table for it on the query's
connection (read-write transaction, before the read-only one: PostgreSQL
refuses CREATE in read-only transactions), copies the rows in, grants SELECT to
the query role, and returns the ``CatalogTable``s to pass to
``Catalog.with_uploads``. Temporary tables die with the session;
``drop_uploads`` removes them earlier (pooled connections).

Type mapping (VOTable -> PostgreSQL) is data, as in ``tapd.sqltypes``; DALI
geometry xtypes become pgsphere types so uploaded positions can be joined
with CONTAINS/DISTANCE, and ``timestamp`` becomes ``timestamp``.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import re
import shutil
import socket
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from tapd.cancellation import Cancellation, RequestCancelled
from tapd.catalog import CatalogColumn, CatalogTable
from tapd.columns import ColumnMeta
from tapd.errors import TapdError
from tapd.store.jobdir import UPLOADS_DIR
from tapd.upload_copy import copy_rows, text_value
from tapd.upload_indexes import index_upload_positions
from tapd.url_allow import UrlRefused, parse_allow_list, url_allowed
from tapd.votable_stream import (
    StreamLimits,
    VotableError,
    VotableTooLarge,
    read_votable_stream,
)
from tapd.watchdog import watchdog

#: DALI 3.4.5: an upload name is an ADQL regular identifier without schema.
UPLOAD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
PART_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")
REGULAR_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

#: Scalar VOTable datatypes -> PostgreSQL column types.
SCALAR_TYPES: dict[str, str] = {
    "boolean": "boolean",
    "bit": "boolean",
    "unsignedByte": "smallint",
    "short": "smallint",
    "int": "integer",
    "long": "bigint",
    "float": "real",
    "double": "double precision",
    "char": "text",
    "unicodeChar": "text",
}

#: DALI xtypes that have a pgsphere type.
GEOMETRY_TYPES: dict[str, str] = {"point": "spoint", "circle": "scircle", "polygon": "spoly"}


class UploadError(TapdError):
    """An UPLOAD that cannot be used; the message names the upload."""


@dataclass(frozen=True)
class UploadSpec:
    """One ``name,URI`` item of the UPLOAD parameter."""

    table: str
    uri: str


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_rows: int
    url_allow: tuple[str, ...] = ()
    #: Seconds a URL fetch may take in all (a server trickling bytes is cut off).
    fetch_timeout: float = 30.0
    #: Largest cell of an uploaded table (text or binary bytes), checked while reading.
    max_cell_bytes: int = 1_000_000
    #: Stops a fetch when the request is cancelled (its client left, its time is up).
    cancellation: Cancellation | None = None


def parse_upload_parameter(values: Sequence[str]) -> list[UploadSpec]:
    """The uploads an UPLOAD parameter asks for (values accumulate; ``;`` separates items)."""
    specs: list[UploadSpec] = []
    seen: set[str] = set()
    for value in values:
        for item in value.split(";"):
            if not item.strip():
                continue
            name, comma, uri = item.partition(",")
            name, uri = name.strip(), uri.strip()
            if not comma or not uri:
                raise UploadError(f"UPLOAD {item.strip()!r} must have the form name,URI")
            if not UPLOAD_NAME.match(name):
                raise UploadError(
                    f"UPLOAD table name {name!r} is not an ADQL regular identifier "
                    "(a letter, then letters, digits or '_')"
                )
            if name.lower() in seen:
                raise UploadError(f"UPLOAD table name {name!r} is given twice")
            seen.add(name.lower())
            specs.append(UploadSpec(name, uri))
    return specs


def part_path(job_dir: Path, part: str) -> Path:
    """Where the inline upload part ``part`` of a job is stored."""
    if not PART_NAME.match(part):
        raise UploadError(f"upload part name {part!r} is not usable")
    return job_dir / UPLOADS_DIR / part


def fetch_url(url: str, limits: UploadLimits, directory: Path) -> Path:
    """Download an allowed http(s) URL into ``directory``: size-limited, redirects checked."""
    if not url.lower().startswith(("http://", "https://")):
        raise UploadError(f"UPLOAD URI {url!r} is not supported: use param:NAME or an http(s) URL")
    if not limits.url_allow:
        raise UploadError(
            f"UPLOAD from {url!r} is not allowed: this service fetches no uploads from URLs"
            " (setting http.upload_url_allow is empty); send the table inline instead"
        )
    _check_allowed(url, limits.url_allow)
    if limits.cancellation is not None:
        limits.cancellation.check()
    sockets = _FetchSockets()
    opener = urllib.request.build_opener(
        _AllowListRedirects(limits.url_allow),
        _TrackedHTTPHandler(sockets),
        _TrackedHTTPSHandler(sockets),
    )
    target = Path(tempfile.mkstemp(dir=directory, prefix="upload-url-")[1])
    # The socket timeout bounds one read; the alarm bounds the whole fetch (a server
    # sending a byte now and then never trips the former).
    alarm = watchdog().arm(limits.fetch_timeout, lambda: sockets.shut("time"))
    stop = limits.cancellation or Cancellation()
    try:
        with (
            stop.on_cancel(lambda: sockets.shut("cancelled")),
            opener.open(url, timeout=limits.fetch_timeout) as response,
            target.open("wb") as out,
        ):
            size = 0
            while chunk := response.read(65536):
                size += len(chunk)
                if size > limits.max_bytes:
                    raise UploadError(
                        f"UPLOAD from {url!r} is larger than the limit of {limits.max_bytes} bytes"
                    )
                out.write(chunk)
            if sockets.reason is not None:  # shut down: what was read is not the whole file
                raise OSError("the connection was shut down")
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        target.unlink(missing_ok=True)
        if sockets.reason == "time":
            raise UploadError(
                f"UPLOAD from {url!r} took longer than {limits.fetch_timeout:g} s"
                " (setting limits.upload_fetch_timeout)"
            ) from None
        if sockets.reason == "cancelled":
            raise RequestCancelled(f"UPLOAD from {url!r} was stopped: {stop.reason}") from None
        reason = getattr(exc, "reason", exc)
        raise UploadError(f"UPLOAD from {url!r} could not be fetched: {reason}") from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    finally:
        alarm.disarm()
    return target


class _FetchSockets:
    """The sockets of one fetch, shut down from another thread to stop it at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.reason: str | None = None

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.reason is None:
                return
        _shut(sock)

    def shut(self, reason: str) -> None:
        with self._lock:
            if self.reason is None:
                self.reason = reason
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # shutdown() wakes a recv() blocked in another thread (close() would not).
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _tracked(connection_class: type[http.client.HTTPConnection], sockets: _FetchSockets) -> Any:
    def connection(host: str, **kwargs: Any) -> http.client.HTTPConnection:
        conn = connection_class(host, **kwargs)
        connect = conn.connect

        def tracked_connect() -> None:
            connect()
            sockets.add(conn.sock)

        conn.connect = tracked_connect  # type: ignore[method-assign]
        return conn

    return connection


class _TrackedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, sockets: _FetchSockets) -> None:
        super().__init__()
        self.sockets = sockets

    def http_open(self, req: Any) -> Any:
        return self.do_open(_tracked(http.client.HTTPConnection, self.sockets), req)


class _TrackedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, sockets: _FetchSockets) -> None:
        super().__init__()
        self.sockets = sockets

    def https_open(self, req: Any) -> Any:
        return self.do_open(
            _tracked(http.client.HTTPSConnection, self.sockets),
            req,
            context=self._context,  # type: ignore[attr-defined]
        )


def _check_allowed(url: str, entries: Sequence[str], via: str | None = None) -> None:
    """``UploadError`` unless ``url`` is safe and on the allow-list (``tapd.url_allow``)."""
    try:
        parse_allow_list(entries)
    except UrlRefused as exc:
        raise UploadError(
            f"UPLOAD from URLs is not possible: setting http.upload_url_allow is unusable: {exc}"
        ) from None
    what = f"UPLOAD from {via!r} redirects to {url!r}, which" if via else f"UPLOAD from {url!r}"
    try:
        allowed = url_allowed(url, entries)
    except UrlRefused as exc:
        raise UploadError(f"{what} is not allowed: {exc}") from None
    if not allowed:
        raise UploadError(
            f"{what} is not allowed: this service fetches uploads only from "
            f"{', '.join(entries)} (setting http.upload_url_allow)"
        )


class _AllowListRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, prefixes: Sequence[str]) -> None:
        self.prefixes = prefixes

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        _check_allowed(newurl, self.prefixes, via=req.full_url)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@dataclass(frozen=True)
class UploadColumn:
    """A column of an uploaded table: its ADQL name, PostgreSQL type and VOTable metadata."""

    name: str  # as ADQL sees it (quotes included when not a regular identifier)
    sql_name: str
    pg_type: str
    meta: ColumnMeta
    convert: Callable[[Any], Any]


def read_votable(
    path: Path, label: str, limits: StreamLimits
) -> tuple[list[UploadColumn], Iterator[list[Any]]]:
    """Columns and rows (an iterator, read as it is consumed: ``UploadError`` for a
    limit passed or a malformed row) of the first table of a VOTable file."""
    try:
        fields, rows = read_votable_stream(path, limits)
    except VotableError as exc:
        raise _upload_error(label, exc) from None
    columns = [_column(field, label) for field in fields]
    seen: set[str] = set()
    for column in columns:
        key = column.sql_name.lower()
        if key in seen:
            raise UploadError(f"UPLOAD {label}: column name {column.sql_name!r} appears twice")
        seen.add(key)
    if not columns:
        raise UploadError(f"UPLOAD {label}: the table has no columns")
    return columns, _labelled(rows, label)


def upload_table_of_file(table: str, path: Path, limits: StreamLimits) -> CatalogTable:
    """The catalog entry ``TAP_UPLOAD.<table>`` of a VOTable file, from its columns alone
    (for checking a query before anything runs; the rows are not read)."""
    columns, rows = read_votable(path, table, limits)
    close = getattr(rows, "close", None)
    if close is not None:
        close()  # a generator holding the open file
    return upload_catalog_table(table, columns)


def _labelled(rows: Iterator[list[Any]], label: str) -> Iterator[list[Any]]:
    try:
        yield from rows
    except VotableError as exc:
        raise _upload_error(label, exc) from None


def _upload_error(label: str, exc: VotableError) -> UploadError:
    if isinstance(exc, VotableTooLarge):
        return UploadError(f"UPLOAD {label}: {exc.message}")
    return UploadError(f"UPLOAD {label}: not a readable VOTable: {exc.message}")


def _column(field: Any, label: str) -> UploadColumn:
    datatype = field.datatype
    arraysize = field.arraysize
    xtype = field.xtype
    name = field.name or field.ID
    if not name:
        raise UploadError(f"UPLOAD {label}: a FIELD has no name")
    adql_name = name if REGULAR_IDENTIFIER.match(name) else '"' + name.replace('"', '""') + '"'
    meta = ColumnMeta(
        name=name,
        datatype=datatype,
        arraysize=arraysize if arraysize not in (None, "1") else None,
        xtype=xtype,
        unit=str(field.unit) if field.unit is not None else None,
        ucd=field.ucd,
        utype=field.utype,
        description=field.description,
    )
    is_char = datatype in ("char", "unicodeChar")
    if xtype in GEOMETRY_TYPES and datatype in ("double", "float"):
        pg_type = GEOMETRY_TYPES[xtype]
        convert = _GEOMETRY_CONVERTERS[xtype]
    elif xtype == "timestamp" and is_char:
        pg_type, convert = "timestamp", _text
    elif datatype not in SCALAR_TYPES:
        raise UploadError(f"UPLOAD {label}: column {name!r} has unsupported datatype {datatype!r}")
    elif is_char:
        pg_type, convert = "text", _text
    elif arraysize not in (None, "1"):
        pg_type, convert = SCALAR_TYPES[datatype] + "[]", _array
    else:
        pg_type, convert = SCALAR_TYPES[datatype], _scalar
    return UploadColumn(adql_name, name, pg_type, meta, convert)


def _scalar(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _text(value: Any) -> Any:
    return text_value(value)


def _numbers(value: Any) -> list[float] | None:
    if not isinstance(value, list):
        return None
    items = value
    if not items or any(v is None for v in items):
        return None
    values = [float(v) for v in items]
    return None if any(math.isnan(v) for v in values) else values


def _array(value: Any) -> Any:
    if not isinstance(value, list):
        return None
    items = value
    if not items:  # an empty TD is a null, also for arrays (VOTable 1.4 §5.1)
        return None
    return [None if isinstance(v, float) and math.isnan(v) else v for v in items]


def _point(value: Any) -> str | None:
    numbers = _numbers(value)
    if numbers is None or len(numbers) != 2:
        return None
    return f"({numbers[0]!r}d, {numbers[1]!r}d)"


def _circle(value: Any) -> str | None:
    numbers = _numbers(value)
    if numbers is None or len(numbers) != 3:
        return None
    return f"<({numbers[0]!r}d, {numbers[1]!r}d), {numbers[2]!r}d>"


def _polygon(value: Any) -> str | None:
    numbers = _numbers(value)
    if numbers is None or len(numbers) < 6 or len(numbers) % 2:
        return None
    pairs = ", ".join(f"({a!r}d, {b!r}d)" for a, b in zip(numbers[::2], numbers[1::2], strict=True))
    return "{" + pairs + "}"


_GEOMETRY_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "point": _point,
    "circle": _circle,
    "polygon": _polygon,
}


def _rows(columns: list[UploadColumn], rows: Iterator[list[Any]]) -> Iterator[list[Any]]:
    converters = [c.convert for c in columns]
    for record in rows:
        yield [convert(v) for convert, v in zip(converters, record, strict=True)]


def sql_table_name(upload: str) -> str:
    """The temporary table holding upload ``upload``."""
    return f"tap_upload_{upload.lower()}"


def create_upload_table(
    conn: Any, upload: str, columns: list[UploadColumn], rows: Any, query_role: str | None
) -> CatalogTable:
    """Create and fill the temporary table for one parsed upload; return its catalog entry."""
    table = sql_table_name(upload)
    definition = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c.sql_name), sql.SQL(c.pg_type)) for c in columns
    )
    conn.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(table)))
    conn.execute(sql.SQL("CREATE TEMP TABLE {} ({})").format(sql.Identifier(table), definition))
    copy = sql.SQL("COPY pg_temp.{} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c.sql_name) for c in columns)
    )
    try:
        with conn.cursor().copy(copy) as writer:
            for chunk in copy_rows(_rows(columns, rows)):
                writer.write(chunk)
    except Exception as exc:
        if type(exc).__module__.startswith("psycopg"):
            first = str(exc).strip().splitlines()[0]
            raise UploadError(f"UPLOAD {upload}: a value could not be stored: {first}") from None
        raise
    # Autovacuum never analyses temporary tables: without this the planner guesses the
    # upload's size and distributions, and may drive a crossmatch from the wrong side.
    conn.execute(sql.SQL("ANALYZE pg_temp.{}").format(sql.Identifier(table)))
    if query_role:
        conn.execute(
            sql.SQL("GRANT SELECT ON pg_temp.{} TO {}").format(
                sql.Identifier(table), sql.Identifier(query_role)
            )
        )
    return upload_catalog_table(upload, columns)


def upload_catalog_table(upload: str, columns: Sequence[UploadColumn]) -> CatalogTable:
    """The catalog entry ``TAP_UPLOAD.<upload>`` of a table with ``columns``."""
    catalog_columns = tuple(
        CatalogColumn(name=c.name, sql_name=c.sql_name, pg_type=c.pg_type, meta=c.meta)
        for c in columns
    )
    return CatalogTable(
        schema_name="TAP_UPLOAD",
        table_name=f"TAP_UPLOAD.{upload}",
        sql_schema="pg_temp",
        sql_table=sql_table_name(upload),
        columns=catalog_columns,
    )


def load_uploads(
    conn: Any,
    upload_values: Sequence[str],
    *,
    resolve_part: Callable[[str], Path],
    limits: UploadLimits,
    query_role: str | None,
) -> tuple[CatalogTable, ...]:
    """Create the temporary tables of every UPLOAD on ``conn`` (in a read-write transaction).

    ``resolve_part(name)`` gives the file of inline part ``param:name`` (raise
    ``UploadError`` when it is missing). Returns the tables for
    ``Catalog.with_uploads``.
    """
    specs = parse_upload_parameter(upload_values)
    if not specs:
        return ()
    tables = []
    scratch = Path(tempfile.mkdtemp(prefix="tapd-upload-"))
    try:
        for spec in specs:
            if spec.uri.startswith("param:"):
                path = resolve_part(spec.uri[len("param:") :])
                if not path.exists():
                    raise UploadError(
                        f"UPLOAD {spec.table}: {spec.uri} refers to no part of the request"
                    )
                if path.stat().st_size > limits.max_bytes:
                    raise UploadError(
                        f"UPLOAD {spec.table} is larger than the limit of {limits.max_bytes} bytes"
                    )
            else:
                path = fetch_url(spec.uri, limits, scratch)
            stream_limits = StreamLimits(limits.max_rows, limits.max_cell_bytes)
            columns, rows = read_votable(path, spec.table, stream_limits)
            tables.append(create_upload_table(conn, spec.table, columns, rows, query_role))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    index_upload_positions(conn, tables)
    return tuple(tables)


def drop_uploads(conn: Any, tables: Sequence[CatalogTable]) -> None:
    """Drop the temporary tables of a finished query (connections that go back to a pool)."""
    for table in tables:
        conn.execute(
            sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(sql.Identifier(table.sql_table))
        )
