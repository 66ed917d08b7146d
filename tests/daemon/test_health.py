"""The daemon's back-off decisions and what it says about its health, as tables."""

from __future__ import annotations

import pytest

from tapd.daemon.health import Backoff, Health, Operation, Step, decide
from tapd.store import faults
from tapd.store.faults import Action

BACKOFF = Backoff(first=0.5, cap=30.0)


def fault(cls: type[faults.DatabaseFault], sqlstate: str | None = None) -> faults.DatabaseFault:
    return cls(sqlstate, "the server's words")


@pytest.mark.parametrize(
    ("cls", "failures", "step"),
    [
        (faults.ConnectionLost, 1, Step(Action.RECONNECT)),
        (faults.ReadOnlyDatabase, 5, Step(Action.RECONNECT)),
        (faults.TransactionConflict, 1, Step(Action.RETRY)),
        (faults.TransactionConflict, 3, Step(Action.RETRY)),
        (faults.TransactionConflict, 4, Step(Action.BACK_OFF, 0.5, warn=True)),
        (faults.TransactionConflict, 5, Step(Action.BACK_OFF, 1.0, warn=True)),
        (faults.AccessDenied, 1, Step(Action.BACK_OFF, 0.5, warn=True)),
        (faults.AccessDenied, 2, Step(Action.BACK_OFF, 1.0, warn=True)),
        (faults.RaisedInDatabase, 4, Step(Action.BACK_OFF, 4.0, warn=True)),
        (faults.LockTimeout, 7, Step(Action.BACK_OFF, 30.0, warn=True)),
        (faults.ServerDiskFull, 60, Step(Action.BACK_OFF, 30.0, warn=True)),
        (faults.DatabaseFault, 1, Step(Action.BACK_OFF, 0.5, warn=True)),
    ],
)
def test_decisions(cls: type[faults.DatabaseFault], failures: int, step: Step) -> None:
    assert decide(fault(cls), failures, BACKOFF) == step


@pytest.mark.parametrize(
    ("first", "cap", "waits"),
    [
        (0.5, 30.0, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),
        (0.5, 2.0, [0.5, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]),
        (0.1, 0.1, [0.1] * 8),
    ],
)
def test_backoff_doubles_up_to_its_cap(first: float, cap: float, waits: list[float]) -> None:
    assert [Backoff(first, cap).delay(n) for n in range(1, 9)] == waits


def test_a_failing_operation_waits_its_turn_and_clears_on_success() -> None:
    health = Health(BACKOFF)
    denied = fault(faults.AccessDenied, "42501")
    assert health.failed(Operation.CLAIM, denied, now=100.0).delay == 0.5
    assert not health.due(Operation.CLAIM, 100.4)
    assert health.due(Operation.CLAIM, 100.5)
    assert health.due(Operation.SWEEP, 100.0)  # the others go on
    assert health.failed(Operation.CLAIM, denied, now=100.5).delay == 1.0
    assert health.next_attempt(after=100.5) == 101.5
    assert health.degraded() == (
        "claim: the database refused access (privileges or authentication)"
        " (SQLSTATE 42501): the server's words"
    )
    ended = health.succeeded(Operation.CLAIM)
    assert ended is not None and ended.failures == 2
    assert health.degraded() is None and health.next_attempt(after=0.0) is None
    assert health.succeeded(Operation.CLAIM) is None


def test_a_conflict_retried_at_once_does_not_count_as_degraded() -> None:
    health = Health(BACKOFF)
    health.failed(Operation.HEARTBEAT, fault(faults.TransactionConflict, "40001"), now=1.0)
    assert health.due(Operation.HEARTBEAT, 1.0)
    assert health.degraded() is None
    assert health.usable_slots(max_jobs=4, running=0, ready_spares=4) == 4


def test_claims_wait_while_the_heartbeat_cannot_be_written() -> None:
    health = Health(BACKOFF)
    assert health.may_claim(0.0)
    health.failed(Operation.HEARTBEAT, fault(faults.LockTimeout, "55P03"), now=0.0)
    assert health.due(Operation.CLAIM, 10.0)
    assert not health.may_claim(10.0)
    health.succeeded(Operation.HEARTBEAT)
    assert health.may_claim(10.0)


@pytest.mark.parametrize(
    ("failing", "running", "ready_spares", "usable"),
    [
        ((), 2, 2, 4),  # healthy: every slot
        ((), 0, 0, 4),  # spares still connecting after a job: they will
        ((Operation.SPARES,), 1, 0, 1),  # spares cannot connect: running jobs only
        ((Operation.SPARES,), 1, 2, 3),  # ... and the spares that did connect
        ((Operation.CLAIM,), 1, 3, 1),  # claims refused: no new job can start
        ((Operation.HEARTBEAT,), 0, 4, 0),
        ((Operation.SWEEP,), 0, 4, 4),  # a failing sweep does not stop jobs
    ],
)
def test_usable_slots(
    failing: tuple[str, ...], running: int, ready_spares: int, usable: int
) -> None:
    health = Health(BACKOFF)
    for operation in failing:
        health.failed(operation, fault(faults.AccessDenied), now=0.0)
    assert health.usable_slots(max_jobs=4, running=running, ready_spares=ready_spares) == usable
