"""A file-like pipe from a worker thread's blocking writer to an async HTTP response.

The runner's result writers write to a binary file object; ``ResultPipe``
collects their writes into chunks and hands them to the event loop with a
bounded number of chunks in flight, so a slow client slows the query down
instead of filling memory. When the client goes away, the next write raises
``ClientGone`` in the worker thread, which ends the query.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

#: Bytes collected before a chunk is handed to the response.
CHUNK_SIZE = 64 * 1024
#: Chunks in flight between the worker thread and the client.
MAX_CHUNKS = 8

_DATA = "data"
_END = "end"


class ClientGone(Exception):
    """The HTTP client disconnected; the query should stop."""


class ResultPipe:
    """Writable from one thread (``write``/``flush``/``finish``), readable from the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # Touched only on the loop's thread (the worker hands items over with
        # call_soon_threadsafe), so no lock is needed.
        self._items: collections.deque[tuple[str, Any]] = collections.deque()
        self._arrived = asyncio.Event()
        self._slots = threading.BoundedSemaphore(MAX_CHUNKS)
        self._buffer = bytearray()
        self._cancelled = threading.Event()
        self.bytes_written = 0
        self.started = threading.Event()

    # -- the worker thread's side: a write-only, non-seekable binary file ----------

    closed = False

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        """Bytes written so far (writers such as pyarrow's ask)."""
        return self.bytes_written + len(self._buffer)

    def close(self) -> None:
        """Writers may close their output; the pipe ends only with ``finish``."""
        self.flush()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._cancelled.is_set():
            raise ClientGone("the client disconnected")
        self._buffer += data
        if len(self._buffer) >= CHUNK_SIZE:
            self._send_buffer()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            self._send_buffer()

    def _take_buffer(self) -> tuple[str, bytes]:
        while not self._slots.acquire(timeout=0.5):
            if self._cancelled.is_set():
                raise ClientGone("the client disconnected")
        chunk = bytes(self._buffer)
        self._buffer.clear()
        self.bytes_written += len(chunk)
        self.started.set()
        return _DATA, chunk

    def _send_buffer(self) -> None:
        self._loop.call_soon_threadsafe(self._push, self._take_buffer())

    def finish(self, error: BaseException | None = None) -> None:
        """Called once by the worker when it is done (``error`` if it failed).

        The last chunk and the end arrive together, so a result smaller than a
        chunk is one plain response (``ready_rest``) rather than a stream.
        """
        items: list[tuple[str, Any]] = []
        if error is None and not self._cancelled.is_set() and self._buffer:
            with contextlib.suppress(ClientGone):
                items.append(self._take_buffer())
        items.append((_END, error))
        self._loop.call_soon_threadsafe(self._push_all, items)

    # -- the event loop's side ---------------------------------------------------

    def _push(self, item: tuple[str, Any]) -> None:
        self._items.append(item)
        self._arrived.set()

    def _push_all(self, items: list[tuple[str, Any]]) -> None:
        self._items.extend(items)
        self._arrived.set()

    async def _next(self) -> tuple[str, Any]:
        while not self._items:
            self._arrived.clear()
            await self._arrived.wait()
        kind, value = self._items.popleft()
        if kind == _DATA:
            self._slots.release()
        return kind, value

    async def first(self) -> tuple[bytes | None, BaseException | None]:
        """Wait for the first chunk or the end: (chunk, None), (None, error) or (None, None)."""
        kind, value = await self._next()
        if kind == _DATA:
            return value, None
        return None, value

    def ready_rest(self) -> tuple[list[bytes], BaseException | None] | None:
        """Everything after the first chunk if the worker has already finished, else None.

        Lets small results go out as one plain response instead of a stream.
        """
        if not self._items or self._items[-1][0] != _END:
            return None
        chunks: list[bytes] = []
        while True:
            kind, value = self._items.popleft()
            if kind == _END:
                return chunks, value
            self._slots.release()
            chunks.append(value)

    async def rest(self) -> AsyncIterator[bytes]:
        """The remaining chunks, until the worker finishes."""
        try:
            while True:
                kind, value = await self._next()
                if kind == _END:
                    return
                yield value
        finally:
            self.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop the worker at its next write (client gone, or response finished)."""
        self._cancelled.set()
