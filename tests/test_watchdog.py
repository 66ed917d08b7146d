"""The watchdog thread: actions at deadlines, disarming, and forked children."""

from __future__ import annotations

import os
import threading
import time

from tapd.watchdog import Watchdog, watchdog


def test_armed_action_runs_once_its_deadline_passes() -> None:
    fired = threading.Event()
    Watchdog().arm(0.01, fired.set)
    assert fired.wait(10)


def test_disarmed_action_never_runs() -> None:
    dog = Watchdog()
    ran: list[str] = []
    alarm = dog.arm(0.05, lambda: ran.append("early"))
    alarm.disarm()
    later = threading.Event()
    dog.arm(0.1, later.set)  # fires after the disarmed deadline has passed
    assert later.wait(10)
    assert ran == []


def test_actions_run_in_deadline_order_whatever_the_arming_order() -> None:
    dog = Watchdog()
    order: list[int] = []
    done = threading.Event()
    dog.arm(0.3, lambda: (order.append(3), done.set()))
    dog.arm(0.2, lambda: order.append(2))
    dog.arm(0.1, lambda: order.append(1))
    assert done.wait(10)
    assert order == [1, 2, 3]


def test_disarm_waits_for_an_action_already_running() -> None:
    dog = Watchdog()
    started = threading.Event()
    finished = threading.Event()

    def slow_action() -> None:
        started.set()
        time.sleep(0.2)
        finished.set()

    alarm = dog.arm(0, slow_action)
    assert started.wait(10)
    alarm.disarm()
    assert finished.is_set()


def test_a_failing_action_does_not_stop_later_ones() -> None:
    dog = Watchdog()
    fired = threading.Event()
    dog.arm(0, lambda: 1 / 0)  # type: ignore[func-returns-value]
    dog.arm(0.05, fired.set)
    assert fired.wait(10)


def test_many_disarmed_alarms_leave_live_ones_armed() -> None:
    dog = Watchdog()
    fired = threading.Event()
    keep = dog.arm(0.2, fired.set)
    for _ in range(1000):
        dog.arm(60, lambda: None).disarm()
    assert fired.wait(10)
    keep.disarm()


def test_a_forked_child_gets_a_working_watchdog_of_its_own() -> None:
    watchdog().arm(60, lambda: None)  # the parent's thread exists and sleeps
    pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if its own alarm fires
        fired = threading.Event()
        watchdog().arm(0.01, fired.set)
        os._exit(0 if fired.wait(10) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
