"""A request's stop switch: work registers how to stop itself, and ``cancel`` stops it all.

A synchronous query's work runs in a worker thread (fetching URL uploads, the
database query, writing into the response pipe); the client leaving or the
time limit passing happen elsewhere (the event loop, the watchdog). Each
piece of work registers an action with ``on_cancel`` for as long as it runs
(cancel the backend query, shut the fetch's socket down, ...); ``cancel``
runs every registered action once, and an action registered after the
cancel runs at once. Leaving ``on_cancel`` waits for an action that is
running, so a cancel meant for one query never reaches the next one on the
same connection.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator

from tapd.errors import TapdError


class RequestCancelled(TapdError):
    """The work was stopped because its request was cancelled (client gone, time limit)."""


class Cancellation:
    """Thread-safe; ``cancel`` may be called from any thread, any number of times."""

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._actions: dict[int, Callable[[], None]] = {}
        self._keys = itertools.count()
        self._running = 0
        self.reason: str | None = None

    @property
    def cancelled(self) -> bool:
        return self.reason is not None

    def cancel(self, reason: str = "the request was cancelled") -> None:
        """Run every registered action (once per cancellation); later calls do nothing."""
        with self._condition:
            if self.reason is not None:
                return
            self.reason = reason
            actions = list(self._actions.values())
            self._running += 1
        try:
            for action in actions:
                _run_quietly(action)
        finally:
            with self._condition:
                self._running -= 1
                self._condition.notify_all()

    def check(self) -> None:
        """``RequestCancelled`` once cancelled (for work between its registered steps)."""
        if self.reason is not None:
            raise RequestCancelled(self.reason)

    @contextlib.contextmanager
    def on_cancel(self, action: Callable[[], None]) -> Iterator[None]:
        """While the block runs, ``cancel`` runs ``action`` (at once if already cancelled)."""
        with self._condition:
            key = next(self._keys)
            self._actions[key] = action
            already = self.reason is not None
        if already:
            _run_quietly(action)
        try:
            yield
        finally:
            with self._condition:
                del self._actions[key]
                while self._running:  # an action may be reaching our resource right now
                    self._condition.wait()


def _run_quietly(action: Callable[[], None]) -> None:
    # A failing action (a connection already closed, ...) must not stop the others.
    with contextlib.suppress(Exception):
        action()
