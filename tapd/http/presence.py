"""This HTTP service's row in the store (``services``), so ``tapd status`` lists it.

Registered when the service starts, refreshed every ``HEARTBEAT`` seconds,
removed when it stops. A database that cannot be reached only delays the
row: the service itself does not depend on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid

import psycopg
from psycopg_pool import PoolTimeout

from tapd.http.service import TapService
from tapd.log import get_logger

log = get_logger(component="http")

#: Seconds between heartbeats of an HTTP service.
HEARTBEAT = 15.0


class ServicePresence:
    """Keeps the service's row fresh while it runs."""

    def __init__(self, service: TapService, url: str, metrics_url: str | None) -> None:
        self.service = service
        self.instance = uuid.uuid4().hex
        self.url = url
        self.metrics_url = metrics_url
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._register()
        self._task = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(psycopg.Error, PoolTimeout):
            await self.service.store(lambda s: s.unregister_service(self.instance))

    async def _register(self) -> None:
        try:
            await self.service.store(
                lambda s: s.register_service(
                    self.instance,
                    host=self.service.host,
                    pid=os.getpid(),
                    url=self.url,
                    metrics_url=self.metrics_url,
                )
            )
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("http.presence_failed", error=str(exc).strip())

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                known = await self.service.store(lambda s: s.service_heartbeat(self.instance))
            except (psycopg.Error, PoolTimeout) as exc:
                log.warning("http.presence_failed", error=str(exc).strip())
                continue
            if not known:  # the row was lost (e.g. the schema recreated)
                await self._register()
