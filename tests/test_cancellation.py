"""The request stop switch: actions run once, late registrations run at once, and leaving
``on_cancel`` waits for an action still running (no cancel reaches the next query)."""

from __future__ import annotations

import threading

import pytest

from tapd.cancellation import Cancellation, RequestCancelled


def test_cancel_runs_the_registered_actions_once() -> None:
    calls: list[str] = []
    stop = Cancellation()
    with stop.on_cancel(lambda: calls.append("a")), stop.on_cancel(lambda: calls.append("b")):
        stop.cancel("client gone")
        stop.cancel("again")
    assert sorted(calls) == ["a", "b"]
    assert stop.reason == "client gone"
    with pytest.raises(RequestCancelled, match="client gone"):
        stop.check()


def test_an_action_registered_after_the_cancel_runs_at_once() -> None:
    calls: list[str] = []
    stop = Cancellation()
    stop.cancel()
    with stop.on_cancel(lambda: calls.append("late")):
        assert calls == ["late"]


def test_an_action_no_longer_registered_is_not_run() -> None:
    calls: list[str] = []
    stop = Cancellation()
    with stop.on_cancel(lambda: calls.append("x")):
        pass
    stop.cancel()
    assert calls == []


def test_leaving_waits_for_a_running_action_and_failures_are_contained() -> None:
    entered, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow() -> None:
        entered.set()
        release.wait(30)
        order.append("action done")

    def failing() -> None:
        raise OSError("already closed")

    stop = Cancellation()
    with stop.on_cancel(failing), stop.on_cancel(slow):
        canceller = threading.Thread(target=stop.cancel)
        canceller.start()
        assert entered.wait(30)
        threading.Timer(0.2, release.set).start()
    order.append("left")
    canceller.join(30)
    assert order == ["action done", "left"]
