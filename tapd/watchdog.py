"""One long-lived thread that runs actions at deadlines (e.g. cancel a query at its time limit).

A ``threading.Timer`` per query starts a thread every time (about a
millisecond on a loaded machine, as much as the query itself). The watchdog
keeps a heap of deadlines and sleeps until the earliest; arming and
disarming are a lock and a heap push. ``Alarm.disarm`` returns only when the
action cannot run any more, so a cancel meant for one query never reaches
the next query on the same connection.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable

#: Disarmed alarms kept in the heap before it is rebuilt without them.
_COMPACT_AFTER = 64


class Alarm:
    """An action due at a deadline (``time.monotonic()``); ``disarm`` when no longer needed."""

    __slots__ = ("_action", "_disarmed", "_firing", "_watchdog", "deadline")

    def __init__(self, watchdog: Watchdog, deadline: float, action: Callable[[], None]) -> None:
        self.deadline = deadline
        self._action = action
        self._watchdog = watchdog
        self._disarmed = False
        self._firing = False

    def disarm(self) -> None:
        """Cancel the alarm; if its action is running, wait until it has finished."""
        self._watchdog._disarm(self)


class Watchdog:
    """Runs each armed alarm's action once, at its deadline, on one daemon thread."""

    def __init__(self, name: str = "tapd-watchdog") -> None:
        self._name = name
        self._condition = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Alarm]] = []
        self._order = itertools.count()
        self._disarmed = 0
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, action: Callable[[], None]) -> Alarm:
        """Run ``action()`` in ``seconds`` unless the returned alarm is disarmed first."""
        alarm = Alarm(self, time.monotonic() + seconds, action)
        with self._condition:
            self._ensure_thread()
            earliest = self._heap[0][0] if self._heap else None
            heapq.heappush(self._heap, (alarm.deadline, next(self._order), alarm))
            if earliest is None or alarm.deadline < earliest:
                self._condition.notify_all()  # the thread sleeps until a later deadline
        return alarm

    def _disarm(self, alarm: Alarm) -> None:
        with self._condition:
            if not alarm._disarmed:
                alarm._disarmed = True
                self._disarmed += 1
                self._drop_disarmed()
            while alarm._firing:
                self._condition.wait()

    def _drop_disarmed(self) -> None:
        heap = self._heap
        while heap and heap[0][2]._disarmed:
            heapq.heappop(heap)
            self._disarmed -= 1
        if self._disarmed > _COMPACT_AFTER and self._disarmed * 2 > len(heap):
            self._heap = [entry for entry in heap if not entry[2]._disarmed]
            heapq.heapify(self._heap)
            self._disarmed = 0

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        with self._condition:
            while True:
                self._drop_disarmed()
                if not self._heap:
                    self._condition.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                alarm = heapq.heappop(self._heap)[2]
                alarm._disarmed = True  # fires once; later disarms only wait for it
                alarm._firing = True
                self._condition.release()
                try:
                    alarm._action()
                except Exception:  # an action's failure must not stop the others
                    pass
                finally:
                    self._condition.acquire()
                    alarm._firing = False
                    self._condition.notify_all()


_watchdog: Watchdog | None = None
_watchdog_lock = threading.Lock()


def _forget_after_fork() -> None:
    # The parent's thread may have held the lock at the fork: the child starts afresh.
    global _watchdog, _watchdog_lock
    _watchdog = None
    _watchdog_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def watchdog() -> Watchdog:
    """The process's shared watchdog (its thread starts with the first alarm)."""
    global _watchdog
    if _watchdog is None:
        with _watchdog_lock:
            if _watchdog is None:
                _watchdog = Watchdog()
    return _watchdog
