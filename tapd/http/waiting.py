"""UWS WAIT (UWS 1.1 §2.2.1.2): block a job request until its phase changes, by LISTEN/NOTIFY.

One connection per HTTP process LISTENs on the store's phase channel
(``tapd.store.phase_channel``); each notification wakes the requests waiting
on that job. A waiting request holds neither a thread nor a pooled
connection. NOTIFY is only a hint (lost while reconnecting), so after every
(re)connect all waiters are woken to re-read the job, and every wait is capped
by ``wait_max``; the client re-polls after that anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import psycopg
from psycopg import sql

from tapd.log import get_logger
from tapd.store import Job

log = get_logger(component="http")

#: Longest pause between reconnection attempts, seconds.
MAX_BACKOFF = 5.0


class PhaseWaiter:
    """Wakes ``wait_for_change`` callers when their job's phase changes."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        *,
        bounds: Mapping[str, str] | None = None,
        on_change: Callable[[dict[str, Any]], None] | None = None,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        """``on_change`` sees every notification (the metrics count them);
        ``on_reconnect`` is called when LISTEN is active again after a loss."""
        self.dsn = dsn
        self.channel = channel
        # libpq time bounds: an idle LISTEN connection to a vanished server is
        # found dead by TCP keepalives (``tapd.store.connection.link_parameters``).
        self.bounds: dict[str, Any] = dict(bounds or {})
        self.on_change = on_change
        self.on_reconnect = on_reconnect
        self._lost = False
        self._waiters: dict[str, set[asyncio.Future[str | None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.listening = False

    async def start(self, timeout: float = 10.0) -> None:
        """Start listening; returns once LISTEN is active (or after ``timeout``)."""
        self._task = asyncio.create_task(self._listen_forever())
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self._wake_all()

    @contextlib.contextmanager
    def subscription(self, job_id: str) -> Iterator[asyncio.Future[str | None]]:
        """A future resolved (with the new phase) at the job's next change.

        Subscribe *before* reading the job, so a change between the read and
        the wait is not missed.
        """
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, set()).add(future)
        try:
            yield future
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[job_id]

    def _wake(self, job_id: str, phase: str | None) -> None:
        for future in self._waiters.get(job_id, ()):
            if not future.done():
                future.set_result(phase)

    def _wake_all(self) -> None:
        for job_id in list(self._waiters):
            self._wake(job_id, None)

    async def _listen_forever(self) -> None:
        backoff = 0.1
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.dsn, autocommit=True, **self.bounds
                )
            except psycopg.OperationalError as exc:
                log.warning("http.listen_failed", error=str(exc).strip(), retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            try:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                self.listening = True
                self._connected.set()
                backoff = 0.1
                if self._lost and self.on_reconnect is not None:
                    self.on_reconnect()
                # Changes made while we were not listening were not announced.
                self._wake_all()
                async for notify in conn.notifies():
                    self._dispatch(notify.payload)
            except psycopg.OperationalError as exc:
                log.warning("http.listen_lost", error=str(exc).strip())
            finally:
                self.listening = False
                self._lost = True
                with contextlib.suppress(Exception):
                    await conn.close()
            await asyncio.sleep(backoff)

    def _dispatch(self, payload: str) -> None:
        try:
            message: Any = json.loads(payload)
            job_id = message["job_id"]
        except (ValueError, KeyError, TypeError):
            return
        self._wake(str(job_id), message.get("phase"))
        if self.on_change is not None:
            self.on_change(message)


async def wait_for_phase_change(
    waiter: PhaseWaiter,
    job_id: str,
    read_job: Callable[[], Awaitable[Job]],
    seconds: float,
    blocks: Callable[[Job], bool],
) -> Job:
    """The job once its phase differs from the one first read, or after ``seconds``.

    Any wake-up (a notification, the listener reconnecting) only prompts a
    re-read: a wake-up that changed nothing waits on for the time left.
    Subscribing before each read means no change between read and wait is missed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    with waiter.subscription(job_id) as changed:
        job = await read_job()
        if not blocks(job):
            return job
        seen = job.phase
        woken = await wait_for_change(changed, deadline - loop.time())
    while woken:
        with waiter.subscription(job_id) as changed:
            job = await read_job()
            remaining = deadline - loop.time()
            if job.phase != seen or remaining <= 0:
                return job
            woken = await wait_for_change(changed, remaining)
    return job


async def wait_for_change(future: asyncio.Future[str | None], seconds: float) -> bool:
    """Wait up to ``seconds`` for ``future``; True when it fired."""
    try:
        await asyncio.wait_for(asyncio.shield(future), seconds)
    except TimeoutError:
        return False
    return True
