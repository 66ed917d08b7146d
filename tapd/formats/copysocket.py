"""A ``COPY ... TO STDOUT`` read straight off the connection's socket, a buffer at a time.

libpq hands over a COPY one row per call: on a narrow table the client then
spends more CPU per row (a foreign call, ~0.3 µs) than PostgreSQL spends
producing it. On a plain connection (no TLS or GSS encryption; libpq idle
with nothing unread) this module sends the statement itself, alone through
the extended protocol (``extended_query``), and reads the answer in large
``recv`` chunks; the CopyData messages of a chunk are framed with numpy (a
candidate start is checked against the length of the message before it, all
at once), so no Python work is done per row. A thread receives while the caller works on what
came before (``_Receiver``): the server sends at its own pace, as to
``psql``, instead of waiting on a full socket buffer for the writer.

libpq sees nothing of the exchange, so afterwards its idea of the
transaction status is brought up to date by an empty query when the
statement changed it (a COMMIT after the COPY, an error). Server errors
are raised as psycopg's exception of their SQLSTATE, with the diagnostic
fields; a lost connection as ``psycopg.OperationalError``. Messages the
exchange may carry besides (notices, a NOTIFY for a LISTEN on this
connection) are dropped: query connections do not LISTEN.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import queue
import select
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import psycopg
from psycopg import pq

from tapd.formats.copyout import (
    BINARY_HEADER_SIZE,
    BINARY_ROW_PREFIX,
    RECANCEL_INTERVAL,
    Batch,
    _psycopg_libpq,
)

_HEADER = struct.Struct("!cI")  # message type, length (itself included)
_STATUS = {b"I": pq.TransactionStatus.IDLE, b"T": pq.TransactionStatus.INTRANS}
_FAILED = pq.TransactionStatus.INERROR
_DATA = ord("d")
_READY = b"Z\x00\x00\x00\x05"  # ReadyForQuery, before its status byte
_READY_SIZE = len(_READY) + 1
_NEWLINE = ord("\n")
_QUEUED = 16  # reads the receiver keeps before the server has to wait
_RECEIVE_SIZE = 1 << 18  # bytes asked of one recv
#: Reported settings psycopg reads values by (libpq's idea of them must follow the server).
_LOADER_SETTINGS = (b"client_encoding", b"DateStyle", b"IntervalStyle", b"TimeZone")


@functools.cache
def _gss_function() -> Any:
    library = _psycopg_libpq()
    if library is None:
        return None
    try:
        function = ctypes.PyDLL(library)["PQgssEncInUse"]
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_void_p]
    function.restype = ctypes.c_int
    return function


def usable(conn: psycopg.Connection[Any]) -> bool:
    """Whether a COPY on ``conn`` may be read here: an unencrypted connection, idle (in or
    out of a transaction), with nothing written or received that libpq has not handled."""
    pgconn = conn.pgconn
    if pgconn.status != pq.ConnStatus.OK or pgconn.ssl_in_use or pgconn.pipeline_status:
        return False
    if pgconn.transaction_status not in (pq.TransactionStatus.IDLE, pq.TransactionStatus.INTRANS):
        return False
    gss = _gss_function()
    pointer = getattr(pgconn, "pgconn_ptr", None)
    if gss is None or pointer is None or gss(ctypes.c_void_p(pointer)):
        return False
    if pgconn.flush() != 0 or pgconn.is_busy():
        return False
    waiting = select.poll()
    waiting.register(pgconn.socket, select.POLLIN)
    return not waiting.poll(0)  # something unasked-for (a NOTIFY, a FATAL) is libpq's


def _loaded_alike(name: bytes, known: bytes | None, reported: bytes) -> bool | None:
    """Whether psycopg reads values alike under libpq's idea of a setting and the server's
    (None: libpq has none). DateStyle's order (ISO, MDY / YMD) changes no ISO output."""
    if known is None:
        return None
    if name == b"DateStyle" and known.startswith(b"ISO") and reported.startswith(b"ISO"):
        return True
    return known == reported


def _set_configs(names: Iterable[bytes], values: Iterable[bytes | None]) -> bytes:
    """One statement setting each of ``names`` to its value for the session."""
    calls = [
        b"set_config(" + _literal(name) + b", " + _literal(value or b"") + b", false)"
        for name, value in zip(names, values, strict=True)
    ]
    return b"SELECT " + b", ".join(calls)


def _literal(text: bytes) -> bytes:
    return b"'" + text.replace(b"'", b"''") + b"'"


def _error(fields: bytes, encoding: str) -> psycopg.Error:
    """psycopg's exception for an ErrorResponse's fields (code byte, text, NUL; ...)."""
    info: dict[int, bytes | None] = {}
    for field in fields.split(b"\0"):
        if field:
            info[field[0]] = field[1:]
    state = (info.get(ord("C")) or b"").decode("ascii", "replace")
    cls: type[psycopg.Error] = psycopg.DatabaseError
    for key in (state, state[:2] + "000"):
        try:
            cls = psycopg.errors.lookup(key)
            break
        except KeyError:
            continue
    message = (info.get(ord("M")) or b"").decode(encoding, "replace")
    return cls(message, info=info, encoding=encoding)


class _Receiver(threading.Thread):
    """Receives the exchange in the background while the writer works on what came before.

    A socket's buffer holds a few milliseconds of a COPY: read in turn with
    the writer's work, the server would wait for the writer most of the
    time. What is received waits here, up to ``_QUEUED`` reads (memory stays
    bounded: the server waits when they are all taken).
    """

    def __init__(self, sock: socket.socket, size: int) -> None:
        super().__init__(name="copy-receiver", daemon=True)
        self._socket = sock
        self._size = size
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUED)
        self._stopping = False
        self._wake_read, self._wake_write = os.pipe()

    def start(self) -> None:
        """Start the thread with every signal blocked in it: the kernel then delivers them to
        the thread that runs Python's handlers (a job's abort signal, waiting for rows)."""
        unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)

    def run(self) -> None:
        waiting = select.poll()
        waiting.register(self._socket, select.POLLIN)
        waiting.register(self._wake_read, select.POLLIN)
        while not self._stopping:
            try:
                data: bytes | None = self._socket.recv(self._size)
            except BlockingIOError:
                waiting.poll()
                continue
            except OSError:
                data = None
            self._queue.put(data or None)  # None: the connection is gone
            if not data:
                return

    def take(self, timeout: float | None = None) -> bytes | None:
        """What was received since the last call, at least one byte (None: connection lost;
        ``queue.Empty`` when nothing came within ``timeout`` seconds)."""
        first = self._queue.get(timeout=timeout)
        if first is None:
            return None
        parts = [first]
        while True:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self._queue.put(None)  # for the next call, once these are handled
                break
            parts.append(more)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def stop(self) -> None:
        """End the thread: the socket is libpq's again (what it received since is dropped)."""
        self._stopping = True
        os.write(self._wake_write, b"x")
        while self.is_alive():
            with contextlib.suppress(queue.Empty):  # a thread waiting for room in the queue
                self._queue.get(timeout=0.01)
        self.join()
        os.close(self._wake_read)
        os.close(self._wake_write)


def _message_bytes(kind: bytes, body: bytes) -> bytes:
    return _HEADER.pack(kind, 4 + len(body)) + body


def extended_query(statement: bytes) -> bytes:
    """``statement`` as the extended protocol's Parse, Bind, Execute and Sync messages
    (unnamed statement and portal, no parameters, text results). Parse takes exactly
    one statement: text stacked before or after it is refused, never run, where a
    simple Query message would run every statement it holds."""
    return b"".join(
        (
            _message_bytes(b"P", b"\0" + statement + b"\0" + struct.pack("!h", 0)),
            _message_bytes(b"B", b"\0\0" + struct.pack("!hhh", 0, 0, 0)),
            _message_bytes(b"E", b"\0" + struct.pack("!i", 0)),
            _message_bytes(b"S", b""),
        )
    )


class SocketCopy:
    """One COPY read off the socket; the same interface as ``CopyOut``'s libpq reading."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        statement: str,
        *,
        mode: str,
        batch_bytes: int,
        stall_seconds: float | None = None,
        interrupted: Callable[[], bool] | None = None,
    ) -> None:
        """``stall_seconds`` and ``interrupted`` as for ``CopyOut``: rows that came are
        handed over when no more came for that long; while nothing comes and
        ``interrupted()`` holds, a cancel request goes out every ``RECANCEL_INTERVAL``."""
        self._conn = conn
        self._interrupted = interrupted
        self._pgconn = conn.pgconn
        self._statement = statement
        self._mode = mode
        self._chunk = max(batch_bytes, 1 << 16)
        self._stall = stall_seconds
        self._socket: socket.socket | None = None
        self._reader: _Receiver | None = None
        self._buffer = bytearray(self._chunk)
        self._start = 0  # first byte not yet handled
        self._end = 0  # end of the bytes received
        self._error: psycopg.Error | None = None
        self._status: pq.TransactionStatus | None = None  # from ReadyForQuery: exchange over
        self._first_row = True
        self._in_copy = False
        self._field_count = b""
        self._reported: dict[bytes, bytes] = {}  # ParameterStatus messages of the exchange

    # -- the socket --------------------------------------------------------------------------

    def _wait(self, event: int) -> None:
        waiting = select.poll()
        assert self._socket is not None
        waiting.register(self._socket, event)
        waiting.poll()

    def _send(self, data: bytes) -> None:
        assert self._socket is not None
        view = memoryview(data)
        while view:
            try:
                view = view[self._socket.send(view) :]
            except BlockingIOError:
                self._wait(select.POLLOUT)

    def _receive(self, timeout: float | None = None) -> None:
        """Take what the server sent (at least one byte, or nothing after ``timeout``
        seconds), keeping unhandled bytes."""
        try:
            received = self._take(timeout)
        except queue.Empty:
            return
        if received is None:
            raise self._lost()
        pending = self._end - self._start
        needed = pending + len(received)
        if self._start:
            self._buffer[:pending] = self._buffer[self._start : self._end]
            self._start, self._end = 0, pending
        if needed > len(self._buffer):  # a row longer than the buffer, or a backlog
            self._buffer.extend(bytes(max(needed, 2 * len(self._buffer)) - len(self._buffer)))
        self._buffer[self._end : needed] = received
        self._end = needed

    def _take(self, timeout: float | None) -> bytes | None:
        """The receiver's next bytes (None: connection lost; ``queue.Empty`` after ``timeout``).
        An interrupted COPY re-sends its cancel while it waits: PostgreSQL drops one that
        came between statements."""
        assert self._reader is not None
        if self._interrupted is None:
            return self._reader.take(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = RECANCEL_INTERVAL
            if deadline is not None:
                step = max(0.0, min(step, deadline - time.monotonic()))
            try:
                return self._reader.take(step)
            except queue.Empty:
                pass
            if self._interrupted():
                self._pgconn.get_cancel().cancel()
            if deadline is not None and time.monotonic() >= deadline:
                raise queue.Empty

    def _lost(self) -> psycopg.OperationalError:
        self._close()
        self._status = _FAILED
        return psycopg.OperationalError("the connection to the server was lost during a COPY")

    def _close(self) -> None:
        if self._reader is not None:
            self._reader.stop()
            self._reader = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    # -- messages other than the rows ------------------------------------------------------

    def _message(self) -> tuple[bytes, bytes] | None:
        """The next whole message (type, body), or None until more arrives."""
        if self._end - self._start < _HEADER.size:
            return None
        kind, length = _HEADER.unpack_from(self._buffer, self._start)
        stop = self._start + 1 + length
        if stop > self._end:
            return None
        body = bytes(self._buffer[self._start + _HEADER.size : stop])
        self._start = stop
        return kind, body

    def _handle(self, kind: bytes, body: bytes) -> None:
        if kind == b"H":
            self._in_copy = True
            self._field_count = body[1:3]  # the format byte, then the column count
        elif kind == b"E":
            if self._error is None:
                self._error = _error(body, self._conn.info.encoding)
            self._in_copy = False
        elif kind == b"c":
            self._in_copy = False
        elif kind == b"Z":
            self._status = _STATUS.get(body[:1], _FAILED)
        elif kind == b"S":  # e.g. DateStyle back to the session's after a COMMIT
            name, value, *_ = body.split(b"\0")
            if name in _LOADER_SETTINGS:
                self._reported[name] = value
        # CommandComplete, notices, parameter status, NOTIFY: nothing to do

    def start(self) -> None:
        """Send the statement; return when rows flow (errors found before that raise here)."""
        self._socket = socket.socket(fileno=os.dup(self._pgconn.socket))
        self._socket.setblocking(False)
        self._send(extended_query(self._statement.encode(self._conn.info.encoding)))
        self._reader = _Receiver(self._socket, min(self._chunk, _RECEIVE_SIZE))
        self._reader.start()
        try:
            while not self._in_copy and self._status is None:
                message = self._message()
                if message is None:
                    self._receive()
                else:
                    self._handle(*message)
        except BaseException:  # e.g. a signal's handler raising (a job aborted)
            self.cancel()
            raise
        if not self._in_copy:
            self._finish()
            raise self._error or psycopg.ProgrammingError("the statement is not a COPY TO STDOUT")

    def _finish(self) -> None:
        """Read to the end of the exchange; bring libpq's transaction status up to date."""
        while self._status is None:
            message = self._message()
            if message is None:
                self._receive()
            else:
                self._handle(*message)
        self._close()
        if self._pgconn.status != pq.ConnStatus.OK:
            return
        if self._status != self._pgconn.transaction_status:
            self._libpq_query(b"")
        stale = {
            name: value
            for name, value in self._reported.items()
            if _loaded_alike(name, self._pgconn.parameter_status(name), value) is False
        }
        if stale and self._status != _FAILED:
            # the server reports a setting only when it changes: change it to what libpq
            # believes, then back, each in a statement of its own (reports come at its end)
            for values in ([self._pgconn.parameter_status(name) for name in stale], stale.values()):
                self._libpq_query(_set_configs(stale, values))

    def _libpq_query(self, statement: bytes) -> None:
        """Run ``statement`` through libpq, discarding its results."""
        self._pgconn.send_query(statement)
        while self._pgconn.flush() != 0:
            pass
        while True:
            while self._pgconn.is_busy():
                waiting = select.poll()
                waiting.register(self._pgconn.socket, select.POLLIN)
                waiting.poll()
                self._pgconn.consume_input()
            if self._pgconn.get_result() is None:
                break

    # -- the rows ----------------------------------------------------------------------------

    def batches(self) -> Iterator[Batch]:
        """Batches of whole rows, one per chunk received; ends when the COPY is complete."""
        since = time.monotonic()  # of the last batch handed over
        try:
            while self._in_copy:
                if not self._full():
                    left = self._stall_left(since)
                    if left is not None and left <= 0:
                        batch = self._rows()
                        if batch is not None:
                            since = time.monotonic()
                            yield batch
                            continue
                        left = None  # only part of a row: wait for the rest
                    self._receive(left)
                    continue
                batch = self._rows()
                if batch is not None:
                    since = time.monotonic()
                    yield batch
                else:
                    message = self._message()
                    if message is None:
                        self._receive()
                    elif message[0] == b"d":
                        raise psycopg.InternalError("a COPY row could not be framed")
                    else:
                        self._handle(*message)
            self._finish()
        finally:
            if self._socket is not None:
                self.cancel()
        if self._error is not None:
            raise self._error

    def _stall_left(self, since: float) -> float | None:
        """Seconds until bytes received are handed over anyway (None: only when a batch is
        full); at most ``stall_seconds`` after the last batch."""
        if self._stall is None or self._end == self._start:
            return None
        return self._stall - (time.monotonic() - since)

    def _full(self) -> bool:
        """Whether to frame what was received: half a chunk or more (large batches keep
        numpy's per-call costs small), or the end of the exchange (ReadyForQuery is last)."""
        if self._end - self._start >= self._chunk // 2:
            return True
        tail = self._buffer[self._end - _READY_SIZE : self._end]
        return len(tail) == _READY_SIZE and tail[:-1] == _READY

    def _rows(self) -> Batch | None:
        """The whole CopyData messages from the handled position on, as a batch."""
        data = np.frombuffer(self._buffer, dtype=np.uint8)[: self._end]
        starts = self._frame(data, self._start)
        if not len(starts):
            return None
        lengths = _lengths(data)[starts + 1]
        stops = starts + 1 + lengths
        first, stop = int(starts[0]), int(stops[-1])
        chunk = bytes(self._buffer[first:stop])
        self._start = stop
        payload = starts - first + _HEADER.size
        ends = stops - first
        if self._mode != "binary":
            return Batch(chunk, payload, ends).compact()
        if self._first_row:
            payload[0] += BINARY_HEADER_SIZE
            self._first_row = False
        counts = _field_counts(np.frombuffer(chunk, dtype=np.uint8))[payload[-1]]
        if ends[-1] - payload[-1] == BINARY_ROW_PREFIX and counts < 0:  # the trailer
            payload, ends = payload[:-1], ends[:-1]
            if not len(payload):
                return None
        return Batch(chunk, payload + BINARY_ROW_PREFIX, ends)

    def _frame(self, data: np.ndarray[Any, Any], start: int) -> np.ndarray[Any, Any]:
        """Starts of the whole CopyData messages in a row from ``start`` (empty: none there)."""
        end = len(data)
        if end - start < _HEADER.size or data[start] != _DATA:
            return np.zeros(0, dtype=np.int64)
        limit = end - _HEADER.size + 1  # a candidate needs its length in the buffer
        window = data[start:limit]
        marks = window == _DATA
        if self._mode == "binary" and len(self._field_count) == 2:
            # a row's message: 'd', its length, then the column count
            after = data[start + 5 : limit + 5]
            follow = data[start + 6 : limit + 6]
            marks[: len(after)] &= after == self._field_count[0]
            marks[: len(follow)] &= follow == self._field_count[1]
            marks[len(follow) :] = False
        else:
            marks[1:] &= data[start : limit - 1] == _NEWLINE  # a text row ends in a newline
        marks[0] = True
        candidates = np.flatnonzero(marks).astype(np.int64) + start
        following = candidates + 1 + _lengths(data)[candidates + 1]
        chain = []
        i = 0
        while i < len(candidates):
            # the candidates from i on that each start where the one before ends
            broken = np.flatnonzero(following[i:-1] != candidates[i + 1 :])
            last = i + (int(broken[0]) if len(broken) else len(candidates) - 1 - i)
            chain.append(candidates[i : last + 1])
            if last == len(candidates) - 1:
                break
            # a false candidate inside a message: go on from where that message ends
            resume = int(np.searchsorted(candidates, following[last]))
            if resume == len(candidates) or candidates[resume] != following[last]:
                break
            i = resume
        starts = np.concatenate(chain)
        complete: np.ndarray[Any, Any] = starts[starts + 1 + _lengths(data)[starts + 1] <= end]
        if len(complete) and data[complete[-1]] != _DATA:  # pragma: no cover - framing guard
            raise psycopg.InternalError("a COPY row could not be framed")
        return complete

    def cancel(self) -> None:
        """Stop a COPY that is still running, leaving the connection usable."""
        if self._socket is None:
            return
        try:
            if self._status is None:  # the statement still runs (before or during the rows)
                self._pgconn.get_cancel().cancel()
            while self._status is None:
                message = self._message()
                if message is None:
                    self._receive()
                else:
                    self._handle(*message)  # rows nobody reads, then the end
            self._finish()
        except psycopg.Error:
            pass  # the connection is broken; the caller's own exception says why
        finally:
            self._close()


def _lengths(data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``data`` as a big-endian int32 at every byte offset (index a message's start + 1)."""
    count = max(len(data) - 3, 0)
    view: np.ndarray[Any, Any] = np.ndarray(shape=(count,), dtype=">i4", buffer=data, strides=(1,))
    return view


def _field_counts(data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    count = max(len(data) - 1, 0)
    view: np.ndarray[Any, Any] = np.ndarray(shape=(count,), dtype=">i2", buffer=data, strides=(1,))
    return view
