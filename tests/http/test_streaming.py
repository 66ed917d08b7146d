"""ResultPipe: a worker thread's writes reach the event loop in order, bounded, cancellable."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from tapd.http.streaming import CHUNK_SIZE, MAX_CHUNKS, ClientGone, ResultPipe


def test_writes_arrive_in_order_and_the_end_is_signalled() -> None:
    async def main() -> bytes:
        pipe = ResultPipe(asyncio.get_running_loop())

        def work() -> None:
            for i in range(1000):
                pipe.write(f"{i:05d}\n".encode() * 50)
            pipe.finish()

        threading.Thread(target=work).start()
        first, error = await pipe.first()
        assert error is None and first is not None
        rest = [chunk async for chunk in pipe.rest()]
        return first + b"".join(rest)

    data = asyncio.run(main())
    assert data == b"".join(f"{i:05d}\n".encode() * 50 for i in range(1000))


def test_a_result_smaller_than_a_chunk_arrives_together_with_its_end() -> None:
    class UnhurriedLoop:
        """Hands each callback to the loop, then gives the loop time to run it."""

        def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
            self.loop = loop

        def call_soon_threadsafe(self, callback: Any, *args: Any) -> None:
            self.loop.call_soon_threadsafe(callback, *args)
            time.sleep(0.1)

    async def main() -> tuple[bytes | None, tuple[list[bytes], BaseException | None] | None]:
        pipe = ResultPipe(UnhurriedLoop(asyncio.get_running_loop()))  # type: ignore[arg-type]

        def work() -> None:
            pipe.write(b"<VOTABLE>")
            pipe.write(b"</VOTABLE>")
            pipe.finish()

        threading.Thread(target=work).start()
        first, error = await pipe.first()
        assert error is None
        return first, pipe.ready_rest()

    first, rest = asyncio.run(main())
    assert first == b"<VOTABLE></VOTABLE>"
    assert rest == ([], None)  # so /sync answers with one plain response, not a stream


def test_error_before_output_is_reported_without_data() -> None:
    async def main() -> tuple[bytes | None, BaseException | None]:
        pipe = ResultPipe(asyncio.get_running_loop())

        def work() -> None:
            pipe.write(b"<VOTABLE>")  # buffered, never sent: the answer will be an error
            pipe.finish(ValueError("bad query"))

        threading.Thread(target=work).start()
        return await pipe.first()

    chunk, error = asyncio.run(main())
    assert chunk is None
    assert isinstance(error, ValueError)


def test_a_slow_reader_holds_the_writer_back_and_cancel_stops_it() -> None:
    outcome: list[str] = []

    async def main() -> None:
        pipe = ResultPipe(asyncio.get_running_loop())
        wrote = threading.Event()

        def work() -> None:
            try:
                for _ in range(MAX_CHUNKS * 4):
                    pipe.write(b"x" * CHUNK_SIZE)
                    wrote.set()
                outcome.append("finished")
            except ClientGone:
                outcome.append("client gone")
            pipe.finish()

        thread = threading.Thread(target=work)
        thread.start()
        first, _ = await pipe.first()
        assert first is not None
        await asyncio.sleep(0.3)
        # Nothing read since the first chunk: the writer must be waiting, not done.
        assert outcome == []
        pipe.cancel()
        await asyncio.get_running_loop().run_in_executor(None, thread.join)

    asyncio.run(main())
    assert outcome == ["client gone"]


def test_the_pipe_looks_like_a_write_only_stream() -> None:
    async def main() -> None:
        pipe = ResultPipe(asyncio.get_running_loop())
        assert pipe.writable() and not pipe.readable() and not pipe.seekable()
        assert not pipe.closed
        pipe.write(b"abc")
        assert pipe.tell() == 3
        pipe.cancel()
        with pytest.raises(ClientGone):
            pipe.write(b"more")

    asyncio.run(main())
