"""What a database error means to tapd, decided once: SQLSTATE -> fault class.

psycopg has one exception class per SQLSTATE; tapd needs fewer answers. Is
the connection gone (reconnect; a running job goes back to the queue)? Did
the transaction lose a conflict (try again at once)? Or does the database
refuse the statement, and will it go on refusing it for a while (back off
and say why; a job whose own query it refuses fails with the server's
reason)? ``FAULT_CLASSES`` maps SQLSTATE codes and classes to a
``DatabaseFault`` subclass carrying those answers and the sentence an
operator reads; the longest matching prefix wins. Code that meets a
psycopg error asks ``database_fault`` and acts on the class it gets.
"""

from __future__ import annotations

import enum
from typing import ClassVar

import psycopg

from tapd.store.connection import one_line


class Action(enum.StrEnum):
    """What to do about a failed statement."""

    RETRY = "retry now"  # the transaction was rolled back by a conflict: run it again
    RECONNECT = "reconnect"  # this connection is useless: open a new one
    BACK_OFF = "back off"  # the database will refuse it again for a while: wait, say why
    REQUEUE = "requeue"  # (a job) not the job's fault: run it again later
    FAIL_JOB = "fail the job"  # (a job) the job ends in ERROR with the server's reason


class DatabaseFault(Exception):
    """A database error, classified. ``daemon_action``: what the runner daemon
    does when one of its own statements fails so; ``job_action``: what becomes
    of a job whose query fails so. ``cause`` is the operator's sentence."""

    cause: ClassVar[str] = "the database refused the statement"
    daemon_action: ClassVar[Action] = Action.BACK_OFF
    job_action: ClassVar[Action] = Action.FAIL_JOB

    def __init__(self, sqlstate: str | None, detail: str) -> None:
        self.sqlstate = sqlstate
        self.detail = detail  # the server's (or libpq's) message, on one line
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """Cause, SQLSTATE and the server's words, e.g. for a log line or STATUS=."""
        if self.sqlstate is None:  # libpq's own errors (e.g. connecting) have none
            return f"{self.cause}: {self.detail}"
        return f"{self.cause} (SQLSTATE {self.sqlstate}): {self.detail}"


class ConnectionLost(DatabaseFault):
    cause = "the connection to the database was lost"
    daemon_action = Action.RECONNECT
    job_action = Action.REQUEUE


class CannotConnect(DatabaseFault):
    """A new connection was refused or timed out (libpq gives no SQLSTATE)."""

    cause = "cannot connect to the database"


class ServerShuttingDown(ConnectionLost):
    cause = "the database server is shutting down, restarting or not yet accepting connections"


class ReadOnlyDatabase(DatabaseFault):
    # After a failover the daemon's old connection may lead to a standby: a new
    # one (libpq's target_session_attrs=read-write) finds the primary. A job
    # meets it only by writing (uploads), which tapd sends to the primary.
    cause = "the database is read-only (a standby, or default_transaction_read_only is on)"
    daemon_action = Action.RECONNECT


class TransactionConflict(DatabaseFault):
    # Includes a standby cancelling a query that conflicts with recovery: the
    # runner runs it again once replay has passed, then fails saying so.
    cause = "the transaction conflicted with another one and was rolled back"
    daemon_action = Action.RETRY
    job_action = Action.RETRY


class LockTimeout(DatabaseFault):
    cause = "a lock was not granted in time (someone holds a lock on tapd's tables)"


class StatementCancelled(DatabaseFault):
    cause = "the statement was cancelled (statement_timeout, or an administrator)"


class AccessDenied(DatabaseFault):
    cause = "the database refused access (privileges or authentication)"


class ServerOutOfResources(DatabaseFault):
    cause = "the database server is out of resources"


class ServerDiskFull(ServerOutOfResources):
    cause = "the database server's disk is full"


class ServerOutOfMemory(ServerOutOfResources):
    cause = "the database server is out of memory"


class TooManyConnections(ServerOutOfResources):
    cause = "the database server has no free connection slot"


class RaisedInDatabase(DatabaseFault):
    cause = "a trigger or function in the database raised an error"


class SchemaMismatch(DatabaseFault):
    cause = "tapd's tables are missing or differ from what this tapd expects (run tapd initdb)"


class ConstraintViolation(DatabaseFault):
    cause = "a constraint on tapd's tables refused the change"


class DatabaseLimitExceeded(DatabaseFault):
    cause = "a database limit was exceeded"


class ValueRejected(DatabaseFault):
    cause = "the database rejected a value"


class ServerFailure(DatabaseFault):
    cause = "the database server failed (an I/O error or damaged data)"


#: SQLSTATE prefix (a class of two characters or a full code) -> fault class.
#: Anything else is a plain ``DatabaseFault`` (back off; a job fails).
FAULT_CLASSES: dict[str, type[DatabaseFault]] = {
    "08": ConnectionLost,  # connection exception
    "57P01": ServerShuttingDown,  # admin_shutdown
    "57P02": ServerShuttingDown,  # crash_shutdown
    "57P03": ServerShuttingDown,  # cannot_connect_now
    "57P04": ConnectionLost,  # database_dropped
    "57P05": ConnectionLost,  # idle_session_timeout
    "25006": ReadOnlyDatabase,  # read_only_sql_transaction
    "40": TransactionConflict,  # serialization_failure, deadlock_detected, ...
    "55P03": LockTimeout,  # lock_not_available (lock_timeout, NOWAIT)
    "57014": StatementCancelled,  # query_canceled
    "28": AccessDenied,  # invalid_authorization_specification
    "42501": AccessDenied,  # insufficient_privilege
    "53": ServerOutOfResources,  # insufficient_resources
    "53100": ServerDiskFull,
    "53200": ServerOutOfMemory,
    "53300": TooManyConnections,
    "P0": RaisedInDatabase,  # RAISE EXCEPTION in PL/pgSQL (a trigger)
    "3F000": SchemaMismatch,  # invalid_schema_name
    "42P01": SchemaMismatch,  # undefined_table
    "42703": SchemaMismatch,  # undefined_column
    "42883": SchemaMismatch,  # undefined_function
    "23": ConstraintViolation,  # integrity_constraint_violation
    "54": DatabaseLimitExceeded,  # program_limit_exceeded
    "22": ValueRejected,  # data_exception
    "58": ServerFailure,  # system_error (I/O)
    "XX": ServerFailure,  # internal_error, data_corrupted, index_corrupted
}


def fault_class(sqlstate: str | None, *, connection_broken: bool = False) -> type[DatabaseFault]:
    """The fault class of an error with ``sqlstate``; a broken connection is
    lost whatever the code (the server's shutdown notice keeps its own class)."""
    found: type[DatabaseFault] = DatabaseFault
    if sqlstate:
        for length in (5, 2):
            match = FAULT_CLASSES.get(sqlstate[:length])
            if match is not None:
                found = match
                break
    if connection_broken and not issubclass(found, ConnectionLost):
        return ConnectionLost
    return found


def database_fault(exc: psycopg.Error, *, connection_broken: bool) -> DatabaseFault:
    """``exc`` as the ``DatabaseFault`` it stands for (``connection_broken``: the
    connection it came from is closed or broken)."""
    sqlstate = exc.sqlstate
    return fault_class(sqlstate, connection_broken=connection_broken)(sqlstate, one_line(exc))


__all__ = [
    "FAULT_CLASSES",
    "AccessDenied",
    "Action",
    "CannotConnect",
    "ConnectionLost",
    "ConstraintViolation",
    "DatabaseFault",
    "DatabaseLimitExceeded",
    "LockTimeout",
    "RaisedInDatabase",
    "ReadOnlyDatabase",
    "SchemaMismatch",
    "ServerDiskFull",
    "ServerFailure",
    "ServerOutOfMemory",
    "ServerOutOfResources",
    "ServerShuttingDown",
    "StatementCancelled",
    "TooManyConnections",
    "TransactionConflict",
    "ValueRejected",
    "database_fault",
    "fault_class",
]
