"""One table from SQLSTATE to what tapd does about a database error."""

from __future__ import annotations

import psycopg
import pytest

from tapd.store import faults
from tapd.store.faults import Action, database_fault, fault_class


@pytest.mark.parametrize(
    ("sqlstate", "broken", "expected", "daemon", "job"),
    [
        # lost connections: reconnect; a running job goes back to the queue
        ("08006", False, faults.ConnectionLost, Action.RECONNECT, Action.REQUEUE),
        (None, True, faults.ConnectionLost, Action.RECONNECT, Action.REQUEUE),
        ("57P01", True, faults.ServerShuttingDown, Action.RECONNECT, Action.REQUEUE),
        ("57P03", False, faults.ServerShuttingDown, Action.RECONNECT, Action.REQUEUE),
        ("25006", False, faults.ReadOnlyDatabase, Action.RECONNECT, Action.FAIL_JOB),
        # a lost conflict: the transaction was rolled back, run it again
        ("40001", False, faults.TransactionConflict, Action.RETRY, Action.RETRY),
        ("40P01", False, faults.TransactionConflict, Action.RETRY, Action.RETRY),
        # refused, and refused again for a while: back off; a job fails with the reason
        ("55P03", False, faults.LockTimeout, Action.BACK_OFF, Action.FAIL_JOB),
        ("57014", False, faults.StatementCancelled, Action.BACK_OFF, Action.FAIL_JOB),
        ("42501", False, faults.AccessDenied, Action.BACK_OFF, Action.FAIL_JOB),
        ("28P01", False, faults.AccessDenied, Action.BACK_OFF, Action.FAIL_JOB),
        ("53100", False, faults.ServerDiskFull, Action.BACK_OFF, Action.FAIL_JOB),
        ("53200", False, faults.ServerOutOfMemory, Action.BACK_OFF, Action.FAIL_JOB),
        ("53300", False, faults.TooManyConnections, Action.BACK_OFF, Action.FAIL_JOB),
        ("53400", False, faults.ServerOutOfResources, Action.BACK_OFF, Action.FAIL_JOB),
        ("P0001", False, faults.RaisedInDatabase, Action.BACK_OFF, Action.FAIL_JOB),
        ("42P01", False, faults.SchemaMismatch, Action.BACK_OFF, Action.FAIL_JOB),
        ("3F000", False, faults.SchemaMismatch, Action.BACK_OFF, Action.FAIL_JOB),
        ("23514", False, faults.ConstraintViolation, Action.BACK_OFF, Action.FAIL_JOB),
        ("54000", False, faults.DatabaseLimitExceeded, Action.BACK_OFF, Action.FAIL_JOB),
        ("22012", False, faults.ValueRejected, Action.BACK_OFF, Action.FAIL_JOB),
        ("58030", False, faults.ServerFailure, Action.BACK_OFF, Action.FAIL_JOB),
        ("XX001", False, faults.ServerFailure, Action.BACK_OFF, Action.FAIL_JOB),
        ("42601", False, faults.DatabaseFault, Action.BACK_OFF, Action.FAIL_JOB),
        (None, False, faults.DatabaseFault, Action.BACK_OFF, Action.FAIL_JOB),
        # a broken connection is lost, whatever the error that revealed it
        ("53100", True, faults.ConnectionLost, Action.RECONNECT, Action.REQUEUE),
    ],
)
def test_sqlstate_to_fault_class_and_actions(
    sqlstate: str | None,
    broken: bool,
    expected: type[faults.DatabaseFault],
    daemon: Action,
    job: Action,
) -> None:
    found = fault_class(sqlstate, connection_broken=broken)
    assert found is expected
    assert (found.daemon_action, found.job_action) == (daemon, job)


def test_every_fault_class_has_its_own_sentence() -> None:
    classes = {faults.DatabaseFault, *faults.FAULT_CLASSES.values(), faults.CannotConnect}
    causes = [c.cause for c in classes]
    assert len(set(causes)) == len(causes)


def test_a_real_error_becomes_a_fault_naming_cause_code_and_server_words(
    conn: psycopg.Connection,
) -> None:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute("SELECT 1 / 0")
    fault = database_fault(caught.value, connection_broken=False)
    assert isinstance(fault, faults.ValueRejected)
    assert fault.sqlstate == "22012"
    assert fault.message == "the database rejected a value (SQLSTATE 22012): division by zero"
