"""Rows of ``COPY (...) TO STDOUT`` from libpq, in batches, at the speed PostgreSQL sends them.

psycopg's ``Copy.read()`` costs several microseconds per row in the
pure-Python libpq binding Debian ships (a million rows: seven seconds where
PostgreSQL needs one). This module drives the COPY itself on the
connection's libpq handle with ``PQgetlineAsync``, which copies each row
straight into a large buffer: one foreign call per row, no Python object per
row. Batches are the buffer's bytes plus the offsets where rows start.

Three shapes of COPY are read (``mode``):

- ``lines``: every row ends with the only newline in it (COPY text format,
  or CSV whose values never need quoting);
- ``csv``: COPY CSV, whose quoted values may hold newlines;
- ``binary``: binary COPY; a row's range starts at its first field (the
  file header and each row's field count are skipped, the trailer dropped),
  ``tapd.formats.binarycopy`` splits the fields.

The connection is left as psycopg expects it (idle in the transaction);
server errors raise psycopg's exception classes; a COPY the consumer stops
reading early is cancelled.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import select
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import pq

#: Bytes PostgreSQL puts before the first row of a binary COPY (signature, flags, extension).
BINARY_HEADER_SIZE = 19
#: Bytes before the first field of a row in a binary COPY (the field count).
BINARY_ROW_PREFIX = 2
#: The last message of a binary COPY (field count -1).
BINARY_TRAILER = b"\xff\xff"

MODES = ("lines", "csv", "binary")

#: libpq reads the socket in chunks as large as its input buffer (16 KiB until a longer
#: message arrives). One long value grows it for the connection's lifetime, so the
#: COPY is read in up to 256 KiB chunks: 15 times fewer reads and server wake-ups.
INPUT_BUFFER = 256 << 10
_grown: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()

_COPY_OUT = pq.ExecStatus.COPY_OUT
_FATAL_ERROR = pq.ExecStatus.FATAL_ERROR


@dataclass(frozen=True)
class Batch:
    """Consecutive rows: a buffer and where each row's bytes start and end in it.

    Text rows are contiguous (``ends`` is None); binary rows are separated by
    the COPY's framing (each row's field count).
    """

    data: bytes
    starts: np.ndarray[Any, np.dtype[np.int64]]
    ends: np.ndarray[Any, np.dtype[np.int64]] | None = None

    @property
    def rows(self) -> int:
        return len(self.starts)

    def row_ends(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        if self.ends is not None:
            return self.ends
        return np.append(self.starts[1:], len(self.data)).astype(np.int64)

    def head(self, rows: int) -> Batch:
        """The first ``rows`` rows."""
        if rows >= self.rows:
            return self
        if self.ends is None:
            return Batch(self.data[: int(self.starts[rows])], self.starts[:rows])
        return Batch(self.data, self.starts[:rows], self.ends[:rows])

    def compact(self) -> Batch:
        """The same rows, contiguous (text rows without the framing between them)."""
        if self.ends is None:
            return self
        lengths = self.ends - self.starts
        return Batch(self.values(), np.cumsum(lengths) - lengths)

    def pieces(self, rows: int) -> Iterator[Batch]:
        """The batch in batches of at most ``rows`` rows."""
        if self.rows <= rows:
            yield self
            return
        for first in range(0, self.rows, rows):
            last = min(first + rows, self.rows)
            if self.ends is not None:
                yield Batch(self.data, self.starts[first:last], self.ends[first:last])
                continue
            begin = int(self.starts[first])
            end = int(self.starts[last]) if last < self.rows else len(self.data)
            yield Batch(self.data[begin:end], self.starts[first:last] - begin)

    def values(self) -> bytes:
        """Every row's bytes, one after the other."""
        if self.ends is None:
            return self.data
        data = np.frombuffer(self.data, dtype=np.uint8)
        keep = np.ones(len(data), dtype=bool)
        keep[between(self.starts, self.ends, len(data))] = False
        return data[keep].tobytes()


def between(starts: np.ndarray[Any, Any], ends: np.ndarray[Any, Any], length: int) -> Any:
    """Positions of the bytes outside the ranges ``[starts[i], ends[i])`` (the COPY framing).

    Cheap because the gaps are small: a boolean mask over the rest beats
    gathering every byte of every row.
    """
    gap_starts = np.concatenate(([0], ends))
    gap_ends = np.concatenate((starts, [length]))
    return gather_positions(gap_starts, gap_ends)


def gather_positions(starts: np.ndarray[Any, Any], ends: np.ndarray[Any, Any]) -> Any:
    """The positions ``starts[i] .. ends[i]-1`` of every range, concatenated."""
    lengths = ends - starts
    total = int(lengths.sum())
    before = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) + np.repeat(starts - before, lengths)


def gather(
    data: np.ndarray[Any, Any], starts: np.ndarray[Any, Any], ends: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """The byte ranges ``[starts[i], ends[i])`` of ``data``, concatenated."""
    picked: np.ndarray[Any, Any] = data[gather_positions(starts, ends)]
    return picked


def _psycopg_libpq() -> str | None:
    """The libpq psycopg's connections live in: the one its ctypes binding
    loaded, or with its C binding (which may bundle a libpq of its own) the
    only libpq mapped into this process; None when that is not certain."""
    if pq.__impl__ == "python":
        try:
            from psycopg.pq import _pq_ctypes

            return str(_pq_ctypes.pq._name)  # type: ignore[attr-defined]
        except (ImportError, AttributeError):
            return None
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    paths = set()
    for line in maps.splitlines():
        if "libpq" not in line:
            continue
        fields = line.split(None, 5)
        if len(fields) == 6 and fields[5].rpartition("/")[2].startswith("libpq"):
            paths.add(fields[5])
    return paths.pop() if len(paths) == 1 else None


def input_buffer_statement(conn: psycopg.Connection[Any]) -> str:
    """The statement that grows ``conn``'s libpq input buffer to ``INPUT_BUFFER``
    (its one long value), for a caller that sends it with statements of its own
    before the COPY; "" once the connection has had it."""
    if conn in _grown:
        return ""
    _grown.add(conn)
    return f"SELECT repeat('x', {INPUT_BUFFER})"


def warm_up() -> None:
    """Find libpq's ``PQgetlineAsync`` now (e.g. before forking: children inherit it)."""
    _getline_function()


@functools.cache
def _getline_function() -> Any:
    """libpq's ``PQgetlineAsync`` from the libpq psycopg uses, or None (built once)."""
    library = _psycopg_libpq()
    if library is None:
        return None
    try:
        # as a PyDLL: the call never blocks, so it may keep the GIL, which saves
        # a quarter of its cost
        function = ctypes.PyDLL(library)["PQgetlineAsync"]
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_spare = threading.local()


def _take_buffer(size: int) -> bytearray:
    """A read buffer of ``size`` bytes: this thread's spare one if it has one (zeroing a
    new megabyte costs more than a small query's whole COPY)."""
    buffer: bytearray | None = getattr(_spare, "buffer", None)
    if buffer is not None and len(buffer) == size:
        _spare.buffer = None
        return buffer
    return bytearray(size)


def _give_back_buffer(buffer: bytearray) -> None:
    """Keep ``buffer`` for this thread's next COPY (batches hold copies of its bytes)."""
    _spare.buffer = buffer


def _binary_rows(buffer: bytes, starts: list[int], end: int, first: bool) -> Batch:
    """Binary COPY rows as the ranges of their fields (header and field counts skipped)."""
    begin = np.asarray(starts, dtype=np.int64)
    ends = np.append(begin[1:], end).astype(np.int64)
    begin += BINARY_ROW_PREFIX
    if first:
        begin[0] += BINARY_HEADER_SIZE
    return Batch(buffer, begin, ends)


def _binary_row_complete(buffer: bytearray, start: int, end: int) -> bool:
    """Whether ``buffer[start:end]`` is one whole binary COPY row (or the trailer)."""
    if end - start < BINARY_ROW_PREFIX:
        return False
    fields = int.from_bytes(buffer[start : start + BINARY_ROW_PREFIX], "big", signed=True)
    position = start + BINARY_ROW_PREFIX
    for _ in range(max(fields, 0)):  # only for rows longer than the read buffer's space
        if end - position < 4:
            return False
        length = int.from_bytes(buffer[position : position + 4], "big", signed=True)
        position += 4 + max(length, 0)
    return position == end


class CopyInterrupted(Exception):
    """The caller asked the query to stop (``interrupted``) before its COPY began."""


#: Seconds between the cancel requests of an interrupted COPY (see ``CopyOut``).
RECANCEL_INTERVAL = 0.25


class CopyOut:
    """One ``COPY ... TO STDOUT`` on a psycopg connection, read in batches.

    ``interrupted`` (optional) says the caller wants the query stopped. PostgreSQL
    drops a cancel request that arrives while no statement runs (between the
    statements of a transaction, say), so the caller's own cancel may miss the
    COPY: it is not started once ``interrupted()`` holds (``CopyInterrupted``),
    and while waiting for the server the COPY sends a cancel request of its own
    every ``RECANCEL_INTERVAL`` seconds for as long as ``interrupted()`` holds.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        statement: str,
        *,
        mode: str = "lines",
        batch_rows: int = 10000,
        batch_bytes: int = 1 << 20,
        stall_seconds: float | None = None,
        off_socket: bool = True,
        interrupted: Callable[[], bool] | None = None,
    ) -> None:
        """``stall_seconds``: rows already read are handed over as a (small)
        batch when no more came for that long, so a slow query's rows reach
        the writer, and its progress, as they come."""
        if mode not in MODES:
            raise ValueError(f"unknown COPY mode {mode!r}")
        self._conn = conn
        self._pgconn = conn.pgconn
        self._statement = statement
        self._mode = mode
        self._batch_rows = batch_rows
        self._batch_bytes = batch_bytes
        self._stall = stall_seconds
        self._interrupted = interrupted
        self._poll = select.poll()
        self._in_copy = False
        self._rows_over = False  # libpq has read the COPY's end (only its results are left)
        self._socket_copy: Any = None  # a copysocket.SocketCopy reading the COPY instead of libpq
        self._off_socket = off_socket  # read off the socket where the connection allows it

    # -- the socket ------------------------------------------------------------------------

    def _wait(self, event: int, timeout: float | None = None) -> None:
        self._poll.register(self._pgconn.socket, event)
        try:
            if self._interrupted is None:
                self._poll.poll(None if timeout is None else max(1, int(timeout * 1000)))
                return
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                step = RECANCEL_INTERVAL
                if deadline is not None:
                    step = min(step, deadline - time.monotonic())
                if self._poll.poll(max(1, int(step * 1000))):
                    return
                if self._interrupted():
                    self._pgconn.get_cancel().cancel()
                if deadline is not None and time.monotonic() >= deadline:
                    return
        finally:
            self._poll.unregister(self._pgconn.socket)

    def _wait_readable(self, timeout: float | None = None) -> None:
        self._wait(select.POLLIN, timeout)
        self._pgconn.consume_input()

    def _stalled(self, pending: bool, since: float) -> bool:
        """Whether rows are waiting and none came for ``stall_seconds`` (after
        waiting for more up to then)."""
        if not pending or self._stall is None:
            self._wait_readable()
            return False
        left = self._stall - (time.monotonic() - since)
        if left <= 0:
            return True
        self._wait_readable(left)
        return False

    def _next_result(self) -> pq.abc.PGresult | None:
        while self._pgconn.is_busy():
            self._wait_readable()
        return self._pgconn.get_result()

    def _error(self, result: pq.abc.PGresult) -> psycopg.Error:
        return psycopg.errors.error_from_result(result, encoding=self._conn.info.encoding)

    def _finish(self) -> None:
        """Collect the COPY's final results; raise the server's error, if any."""
        error: psycopg.Error | None = None
        while (result := self._next_result()) is not None:
            if result.status == _FATAL_ERROR and error is None:
                error = self._error(result)
        if error is not None:
            raise error

    # -- the COPY --------------------------------------------------------------------------

    def _grow_input_buffer(self) -> None:
        statement = input_buffer_statement(self._conn)
        if statement:
            self._conn.execute(statement).fetchone()

    def start(self) -> None:
        """Send the statement; return when rows flow (errors found before that raise here).

        The statement goes alone through the extended protocol (Parse takes one
        statement): text stacked after the COPY is refused, never run.
        """
        from tapd.formats import copysocket

        if self._interrupted is not None and self._interrupted():
            raise CopyInterrupted()
        if self._off_socket and copysocket.usable(self._conn):
            self._socket_copy = copysocket.SocketCopy(
                self._conn,
                self._statement,
                mode=self._mode,
                batch_bytes=self._batch_bytes,
                stall_seconds=self._stall,
                interrupted=self._interrupted,
            )
            self._socket_copy.start()
            self._in_copy = True
            return
        self._grow_input_buffer()
        self._pgconn.send_query_params(self._statement.encode(self._conn.info.encoding), None)
        while self._pgconn.flush() != 0:
            self._wait(select.POLLOUT)
        try:
            result = self._next_result()
        except BaseException:  # e.g. a signal's handler raising (a job aborted)
            self._cancel_unstarted()
            raise
        if result is None or result.status != _COPY_OUT:
            error = (
                self._error(result)
                if result is not None and result.status == _FATAL_ERROR
                else psycopg.ProgrammingError("the statement is not a COPY TO STDOUT")
            )
            self._finish()
            raise error
        self._in_copy = True

    def _cancel_unstarted(self) -> None:
        """Cancel the statement before its rows came, leaving the connection usable."""
        with contextlib.suppress(psycopg.Error):
            self._pgconn.get_cancel().cancel()
            while (result := self._next_result()) is not None:
                if result.status == _COPY_OUT:  # the rows had begun after all
                    while self._pgconn.get_copy_data(0)[0] >= 0:
                        pass

    def batches(self) -> Generator[Batch, None, None]:
        """Batches of whole rows; ends when the COPY is complete."""
        if not self._in_copy:
            self.start()
        try:
            if self._socket_copy is not None:
                for batch in self._socket_copy.batches():
                    yield from batch.pieces(self._batch_rows)
                self._in_copy = False
                return
            getline = _getline_function()
            yield from self._read(getline) if getline is not None else self._read_portably()
            self._in_copy = False
            self._finish()
        finally:
            if self._in_copy:
                self._abandon()

    def _complete(self, buffer: bytearray, start: int, end: int, first: bool) -> bool:
        """Whether ``buffer[start:end]`` is a whole row (asked only when libpq filled the space)."""
        if self._mode == "binary":
            return _binary_row_complete(buffer, start + (BINARY_HEADER_SIZE if first else 0), end)
        if buffer[end - 1] != ord("\n"):
            return False
        return self._mode == "lines" or buffer.count(b'"', start, end) % 2 == 0

    def _batch(self, buffer: bytearray, end: int, starts: list[int], first: bool) -> Batch:
        if self._mode == "binary":
            return _binary_rows(bytes(buffer[:end]), starts, end, first)
        return Batch(bytes(buffer[:end]), np.asarray(starts, dtype=np.int64))

    def _read(self, getline: Any) -> Iterator[Batch]:
        handle = ctypes.c_void_p(self._pgconn.pgconn_ptr)  # type: ignore[attr-defined]
        capacity = self._batch_bytes + (256 << 10)
        buffer = _take_buffer(capacity)
        address = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
        full = capacity - (256 << 10)
        limit = self._batch_rows
        offset = 0  # end of the data in the buffer
        row_start = 0  # start of the row being read
        starts: list[int] = []
        first = True  # the batch holds the COPY's first row (binary header)
        record = starts.append
        since = time.monotonic()  # of the last batch handed over
        while True:
            space = capacity - offset
            got = getline(handle, address + offset, space)
            if got > 0:
                offset += got
                if got == space and not self._complete(
                    buffer, row_start, offset, first and not starts
                ):
                    # a row longer than the space left: make room and read on
                    grown = bytearray(capacity * 2)
                    grown[:offset] = buffer[:offset]
                    buffer, capacity = grown, capacity * 2
                    address = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
                    continue
                record(row_start)
                row_start = offset
                if offset >= full or len(starts) >= limit:
                    yield self._batch(buffer, offset, starts, first)
                    first = False
                    offset = row_start = 0
                    starts = []
                    record = starts.append
                    since = time.monotonic()
            elif got == 0:
                if self._stalled(bool(starts) and row_start == offset, since):
                    yield self._batch(buffer, offset, starts, first)
                    first = False
                    offset = row_start = 0
                    starts = []
                    record = starts.append
                    since = time.monotonic()
            else:
                self._rows_over = True
                break
        if (
            self._mode == "binary"
            and starts
            and offset - starts[-1]
            == len(BINARY_TRAILER) + (BINARY_HEADER_SIZE if first and len(starts) == 1 else 0)
        ):
            offset = starts.pop()  # the trailer is no row
        if starts:
            yield self._batch(buffer, offset, starts, first)
        if capacity == self._batch_bytes + (256 << 10):  # not one grown for a long row
            _give_back_buffer(buffer)

    def _read_portably(self) -> Iterator[Batch]:
        """The same through psycopg's ``get_copy_data`` (fast when psycopg's C binding is used)."""
        pending: list[bytes] = []
        size = 0
        first = True
        since = time.monotonic()  # of the last batch handed over
        while True:
            nbytes, data = self._pgconn.get_copy_data(1)
            if nbytes > 0:
                pending.append(bytes(data))
                size += nbytes
                if size >= self._batch_bytes or len(pending) >= self._batch_rows:
                    yield self._join(pending, first)
                    first, pending, size = False, [], 0
                    since = time.monotonic()
            elif nbytes == 0:
                if self._stalled(bool(pending), since):
                    yield self._join(pending, first)
                    first, pending, size = False, [], 0
                    since = time.monotonic()
            elif nbytes == -1:
                self._rows_over = True
                break
            else:
                raise psycopg.OperationalError(self._pgconn.error_message.decode(errors="replace"))
        if self._mode == "binary" and pending:
            if pending[-1] == BINARY_TRAILER:
                pending.pop()
            elif first and len(pending) == 1 and len(pending[0]) == BINARY_HEADER_SIZE + 2:
                return  # header and trailer: no rows at all
        if pending:
            yield self._join(pending, first)

    def _join(self, rows: list[bytes], first: bool) -> Batch:
        lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
        data = b"".join(rows)
        if self._mode == "binary":
            return _binary_rows(data, starts.tolist(), len(data), first)
        return Batch(data, starts)

    def cancel(self) -> None:
        """Stop a COPY that is still running (no-op once it is complete)."""
        if self._in_copy:
            self._abandon()

    def _abandon(self) -> None:
        """Cancel a COPY the consumer stopped reading, leaving the connection usable."""
        self._in_copy = False
        if self._socket_copy is not None:
            self._socket_copy.cancel()
            return
        try:
            if not self._rows_over:  # past the end libpq has no COPY to cancel or read
                self._pgconn.get_cancel().cancel()
                while self._pgconn.get_copy_data(0)[0] >= 0:
                    pass
            while self._next_result() is not None:
                pass
        except psycopg.Error:
            pass  # the connection is broken; the caller's own exception says why
