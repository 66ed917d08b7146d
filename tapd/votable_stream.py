"""Reading an uploaded VOTable as a stream of rows, in bounded memory, whatever it declares.

``read_votable_stream(path, limits)`` parses with expat (a chunk of the file
at a time) and returns the FIELDs of the first TABLE and an iterator of its
rows (lists of Python values, one per FIELD). Nothing is allocated from what
the document declares: ``nrows`` is ignored, ``arraysize`` only says how to
split a binary stream, and every cell, row and table is checked against
``StreamLimits`` while it is read (``VotableError`` naming the limit). The
serialisations are TABLEDATA, BINARY and BINARY2 (base64 STREAMs inside the
document); FITS and external streams (``href``) are refused, as is a DOCTYPE
(no entity can be defined, none fetched).

Values: integers and booleans as int/bool, floating point as float (NaN for
NaN), text as str, arrays as lists; None for an empty TD, a ``VALUES null``
value, a BINARY2 null flag or a boolean ``?``.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.parsers import expat

from tapd.errors import TapdError

#: Bytes of the file fed to the parser at a time.
READ_CHUNK = 64 * 1024
#: Most FIELDs of an uploaded table (PostgreSQL allows 1600 columns).
MAX_FIELDS = 1000
#: Longest FIELD description kept, characters.
MAX_DESCRIPTION = 10_000


class VotableError(TapdError):
    """The document is not a usable VOTable (the message says why)."""


class VotableTooLarge(VotableError):
    """The table passes a limit (rows, cell, row); the message names it."""


@dataclass(frozen=True)
class StreamLimits:
    max_rows: int
    max_cell_bytes: int = 1_000_000
    #: A row's cells together (text or binary bytes): bounds the memory of one row.
    max_row_bytes: int = 4_000_000


@dataclass
class FieldInfo:
    """One FIELD: the attributes uploads use (the names of astropy's ``Field``)."""

    name: str | None
    ID: str | None
    datatype: str | None
    arraysize: str | None
    xtype: str | None
    unit: str | None
    ucd: str | None
    utype: str | None
    description: str | None = None
    null: str | None = None


def read_votable_stream(
    path: Path, limits: StreamLimits
) -> tuple[list[FieldInfo], Iterator[list[Any]]]:
    """The FIELDs of the first TABLE and an iterator of its rows (see the module)."""
    reader = _Reader(limits)
    source = path.open("rb")
    try:
        while not reader.header_done:
            chunk = source.read(READ_CHUNK)
            if not chunk:
                reader.finish()
                break
            reader.feed(chunk)
    except BaseException:
        source.close()
        raise
    if reader.table_depth is None:
        source.close()
        raise VotableError("the document has no TABLE")

    def rows() -> Iterator[list[Any]]:
        try:
            while True:
                if reader.rows:
                    batch, reader.rows = reader.rows, []
                    yield from batch
                if reader.done:
                    break
                chunk = source.read(READ_CHUNK)
                if not chunk:
                    reader.finish()
                    if not reader.rows:
                        break
                    continue
                reader.feed(chunk)
        finally:
            source.close()

    return reader.fields, rows()


# -- cell values from TABLEDATA text ------------------------------------------------------

_TRUE = frozenset({"t", "true", "1"})
_FALSE = frozenset({"f", "false", "0"})


def _boolean(text: str) -> bool | None:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    if word in ("", "?"):
        return None
    raise ValueError(f"{text!r} is not a boolean")


def _integer(text: str) -> int:
    word = text.strip()
    return int(word, 16) if word[:2].lower() == "0x" else int(word)


_SPECIAL_FLOATS = {"+inf": math.inf, "inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _float(text: str) -> float:
    word = text.strip()
    special = _SPECIAL_FLOATS.get(word.lower())
    return special if special is not None else float(word)


_TEXT_PARSERS: dict[str, Callable[[str], Any]] = {
    "boolean": _boolean,
    "bit": lambda t: _integer(t) != 0,
    "unsignedByte": _integer,
    "short": _integer,
    "int": _integer,
    "long": _integer,
    "float": _float,
    "double": _float,
}


def _is_array(info: FieldInfo) -> bool:
    return info.arraysize not in (None, "1") and info.datatype not in ("char", "unicodeChar")


def _text_cell(info: FieldInfo, text: str) -> Any:
    datatype = info.datatype or "char"
    if datatype in ("char", "unicodeChar"):
        return text
    parse = _TEXT_PARSERS.get(datatype)
    if parse is None:
        return text  # an unsupported type: the caller refuses the column by its datatype
    if _is_array(info):
        words = text.split()
        if not words:
            return None
        return [None if w == info.null else parse(w) for w in words]
    if not text.strip() or (info.null is not None and text.strip() == info.null):
        return None
    return parse(text)


# -- cell values from BINARY and BINARY2 streams ----------------------------------------------

#: datatype -> (bytes per element, struct format or None).
_BINARY: dict[str, tuple[int, str | None]] = {
    "boolean": (1, None),
    "bit": (1, None),
    "unsignedByte": (1, ">B"),
    "short": (2, ">h"),
    "int": (4, ">i"),
    "long": (8, ">q"),
    "float": (4, ">f"),
    "double": (8, ">d"),
    "char": (1, None),
    "unicodeChar": (2, None),
}


@dataclass
class _BinaryField:
    info: FieldInfo
    size: int  # bytes per element
    fixed: int | None  # elements when fixed, None when a count precedes them
    decode: Callable[[bytes, int], Any]


def _element_count(arraysize: str | None, label: str) -> int | None:
    """Elements of a fixed arraysize (``2x3`` = 6), None for variable (``*``, ``10*``)."""
    if arraysize in (None, ""):
        return 1
    if arraysize.endswith("*"):
        return None
    count = 1
    for part in arraysize.split("x"):
        if not part.isdigit():
            raise VotableError(f"FIELD {label} has an unreadable arraysize {arraysize!r}")
        count *= int(part)
    return count


def _binary_field(info: FieldInfo, limits: StreamLimits) -> _BinaryField:
    label = repr(info.name or info.ID)
    datatype = info.datatype or ""
    if datatype not in _BINARY:
        raise VotableError(f"FIELD {label} has datatype {datatype!r}, which cannot be read here")
    size, fmt = _BINARY[datatype]
    fixed = _element_count(info.arraysize, label)
    nbytes: int | None
    if datatype == "bit" and fixed is not None:
        nbytes = (fixed + 7) // 8
    else:
        nbytes = None if fixed is None else fixed * size
    if nbytes is not None and nbytes > limits.max_cell_bytes:
        raise VotableTooLarge(
            f"FIELD {label} declares cells of {nbytes} bytes; the limit is {limits.max_cell_bytes}"
        )
    is_array = fixed != 1 or datatype in ("char", "unicodeChar")

    def decode(data: bytes, count: int) -> Any:
        if datatype == "char":
            return data.split(b"\0", 1)[0].decode("utf-8", "replace")
        if datatype == "unicodeChar":
            return data.decode("utf-16-be", "replace").split("\0", 1)[0]
        if datatype == "boolean":
            values = [_binary_boolean(b) for b in data]
        elif datatype == "bit" and not is_array:
            values = [any(data)]  # astropy writes a single bit as 0x08, the standard 0x80
        elif datatype == "bit":
            values = [bool(data[i // 8] >> (7 - i % 8) & 1) for i in range(count)]
        else:
            assert fmt is not None
            values = list(struct.unpack(f">{count}{fmt[1]}", data))
            if info.null is not None and datatype not in ("float", "double"):
                null = _integer(info.null)
                values = [None if v == null else v for v in values]
        if not is_array:
            return values[0] if values else None
        return values

    return _BinaryField(info, size, fixed, decode)


def _binary_boolean(byte: int) -> bool | None:
    char = chr(byte)
    if char in "Tt1":
        return True
    if char in "Ff0":
        return False
    return None


class _BinaryRows:
    """Decodes rows from the bytes of a BINARY (``nulls=False``) or BINARY2 stream."""

    def __init__(self, fields: list[FieldInfo], limits: StreamLimits, nulls: bool) -> None:
        self.fields = [_binary_field(f, limits) for f in fields]
        self.limits = limits
        self.mask_bytes = (len(fields) + 7) // 8 if nulls else 0
        self.buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[list[Any]]:
        self.buffer += data
        position = 0
        while True:
            row, end = self._row(position)
            if row is None:
                break
            position = end
            yield row
        del self.buffer[:position]
        if len(self.buffer) > self.limits.max_row_bytes + 4 * len(self.fields) + self.mask_bytes:
            raise VotableTooLarge(
                f"a row is larger than the limit of {self.limits.max_row_bytes} bytes"
            )

    def _row(self, position: int) -> tuple[list[Any] | None, int]:
        buffer = self.buffer
        mask = b""
        if self.mask_bytes:
            if len(buffer) - position < self.mask_bytes:
                return None, position
            mask = bytes(buffer[position : position + self.mask_bytes])
            position += self.mask_bytes
        row: list[Any] = []
        row_bytes = 0
        for index, column in enumerate(self.fields):
            fixed = column.fixed
            if fixed is not None:
                count = fixed
            else:
                if len(buffer) - position < 4:
                    return None, position
                (count,) = struct.unpack_from(">i", buffer, position)
                position += 4
                if count < 0:
                    raise VotableError(f"a negative array length in column {index + 1}")
            nbytes = (count + 7) // 8 if column.info.datatype == "bit" else count * column.size
            if nbytes > self.limits.max_cell_bytes:
                raise VotableTooLarge(
                    f"a cell of column {column.info.name!r} has {nbytes} bytes;"
                    f" the limit is {self.limits.max_cell_bytes}"
                )
            row_bytes += nbytes
            if row_bytes > self.limits.max_row_bytes:
                raise VotableTooLarge(_row_too_large(self.limits))
            if len(buffer) - position < nbytes:
                return None, position
            data = bytes(buffer[position : position + nbytes])
            position += nbytes
            null = bool(mask) and bool(mask[index // 8] >> (7 - index % 8) & 1)
            row.append(None if null else column.decode(data, count))
        return row, position


# -- the document ---------------------------------------------------------------------------

_WHITESPACE = re.compile(rb"\s+")


@dataclass
class _Reader:
    limits: StreamLimits
    fields: list[FieldInfo] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    header_done: bool = False
    done: bool = False
    table_depth: int | None = None
    depth: int = 0
    row_count: int = 0

    def __post_init__(self) -> None:
        parser = expat.ParserCreate()
        parser.buffer_text = True
        parser.buffer_size = READ_CHUNK
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        parser.StartDoctypeDeclHandler = self._doctype
        parser.EntityDeclHandler = self._doctype
        self.parser = parser
        self.text: list[str] | None = None
        self.text_size = 0
        self.text_limit = 0
        self.element: str | None = None
        self.current: list[Any] | None = None
        self.row_bytes = 0
        self.binary: _BinaryRows | None = None
        self.base64_rest = b""
        self.field_open: FieldInfo | None = None

    # feeding

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        try:
            self.parser.Parse(data, False)
        except expat.ExpatError as exc:
            message = expat.errors.messages[exc.code]
            where = f"line {exc.lineno}, column {exc.offset + 1}"
            raise VotableError(f"not well-formed XML: {message} ({where})") from None
        except _Stop:
            self.done = True

    def finish(self) -> None:
        if self.done:
            return
        self.feed(b"")
        if not self.done:
            try:
                self.parser.Parse(b"", True)
            except expat.ExpatError as exc:
                raise VotableError(
                    f"the document ends too early: {expat.errors.messages[exc.code]}"
                ) from None
            except _Stop:
                pass
        self.done = True
        self.header_done = True

    # expat callbacks

    def _doctype(self, *args: Any) -> None:
        raise VotableError("a DOCTYPE or entity declaration is not allowed in an uploaded VOTable")

    def _start(self, qname: str, attrs: dict[str, str]) -> None:
        name = qname.rpartition(":")[2]
        self.depth += 1
        if self.table_depth is None:
            if name == "TABLE":
                self.table_depth = self.depth
            return
        if name == "FIELD" and not self.header_done and self.depth == self.table_depth + 1:
            if len(self.fields) >= MAX_FIELDS:
                raise VotableTooLarge(f"the table has more than {MAX_FIELDS} FIELDs")
            info = FieldInfo(
                name=attrs.get("name"),
                ID=attrs.get("ID"),
                datatype=attrs.get("datatype"),
                arraysize=attrs.get("arraysize"),
                xtype=attrs.get("xtype"),
                unit=attrs.get("unit"),
                ucd=attrs.get("ucd"),
                utype=attrs.get("utype"),
            )
            self.fields.append(info)
            self.field_open = info
        elif name == "VALUES" and self.field_open is not None:
            self.field_open.null = attrs.get("null")
        elif name == "DESCRIPTION" and self.field_open is not None:
            self._collect(MAX_DESCRIPTION, "a FIELD description")
        elif name == "DATA" and self.depth == self.table_depth + 1:
            self.header_done = True
        elif name == "TR" and self.header_done:
            self.current = []
            self.row_bytes = 0
        elif name == "TD" and self.current is not None:
            self._collect(self.limits.max_cell_bytes, "a cell")
        elif name in ("BINARY", "BINARY2") and self.header_done:
            self.binary = _BinaryRows(self.fields, self.limits, nulls=name == "BINARY2")
        elif name == "STREAM" and self.binary is not None:
            if attrs.get("href"):
                raise VotableError("a STREAM with href (data elsewhere) is not accepted")
            if attrs.get("encoding", "base64") != "base64":
                raise VotableError(f"STREAM encoding {attrs.get('encoding')!r} is not supported")
            self.element = "STREAM"
        elif name == "FITS" and self.header_done:
            raise VotableError("FITS data in a VOTable is not supported: send TABLEDATA or BINARY2")

    def _collect(self, limit: int, what: str) -> None:
        self.text = []
        self.text_size = 0
        self.text_limit = limit
        self.element = what

    def _text(self, data: str) -> None:
        if self.element == "STREAM":
            self._stream(data)
            return
        if self.text is None:
            return
        self.text_size += len(data)
        if self.text_size > self.text_limit:
            raise VotableTooLarge(
                f"{self.element} is longer than the limit of {self.text_limit} bytes"
            )
        self.text.append(data)

    def _stream(self, data: str) -> None:
        assert self.binary is not None
        encoded = self.base64_rest + _WHITESPACE.sub(b"", data.encode("ascii", "replace"))
        usable = len(encoded) - len(encoded) % 4
        self.base64_rest = encoded[usable:]
        if not usable:
            return
        try:
            decoded = base64.b64decode(encoded[:usable], validate=True)
        except binascii.Error:
            raise VotableError("the STREAM is not valid base64") from None
        for row in self.binary.feed(decoded):
            self._add_row(row)

    def _end(self, qname: str) -> None:
        name = qname.rpartition(":")[2]
        self.depth -= 1
        if self.table_depth is None:
            return
        if name == "FIELD":
            self.field_open = None
        elif name == "DESCRIPTION" and self.field_open is not None and self.text is not None:
            self.field_open.description = "".join(self.text).strip() or None
            self.text = None
        elif name == "TD" and self.current is not None and self.text is not None:
            self._cell("".join(self.text))
            self.text = None
        elif name == "TR" and self.current is not None:
            row = self.current
            self.current = None
            if len(row) < len(self.fields):
                row += [None] * (len(self.fields) - len(row))
            self._add_row(row)
        elif name == "STREAM" and self.binary is not None:
            self.element = None
            if self.base64_rest.strip(b"="):
                raise VotableError("the STREAM ends in the middle of a base64 group")
            if self.binary.buffer:
                raise VotableError("the STREAM ends in the middle of a row")
        elif name == "TABLE" and self.depth + 1 == self.table_depth:
            self.header_done = True
            raise _Stop

    def _cell(self, text: str) -> None:
        assert self.current is not None
        index = len(self.current)
        if index >= len(self.fields):
            raise VotableError(f"row {self.row_count + 1} has more cells than the table has FIELDs")
        self.row_bytes += len(text)
        if self.row_bytes > self.limits.max_row_bytes:
            raise VotableTooLarge(
                f"a row is larger than the limit of {self.limits.max_row_bytes} bytes"
            )
        info = self.fields[index]
        try:
            self.current.append(_text_cell(info, text))
        except ValueError:
            raise VotableError(
                f"row {self.row_count + 1}, column {info.name or info.ID!r}: {text[:40]!r}"
                f" is not a valid {info.datatype}"
            ) from None

    def _add_row(self, row: list[Any]) -> None:
        self.row_count += 1
        if self.row_count > self.limits.max_rows:
            raise VotableTooLarge(
                f"the table has more rows than the limit of {self.limits.max_rows}"
            )
        self.rows.append(row)


def _row_too_large(limits: StreamLimits) -> str:
    return f"a row is larger than the limit of {limits.max_row_bytes} bytes"


class _Stop(Exception):
    """The first TABLE has ended: nothing after it is read."""
