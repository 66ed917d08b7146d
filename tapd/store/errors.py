"""What can go wrong in the job store, as messages for the person who asked."""

from __future__ import annotations

from tapd.errors import TapdError


class JobNotFound(TapdError):
    """No job has this id (never had, or it was destroyed). HTTP: 404."""

    exit_code = 4

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class PhaseConflict(TapdError):
    """The request is not allowed in the job's current phase. HTTP: 403."""

    exit_code = 5


class QuotaExceeded(TapdError):
    """The owner (or anonymous client) already has as many jobs as allowed. HTTP: 403."""

    exit_code = 5


class IllegalPhaseChange(PhaseConflict):
    """The UWS state machine forbids this phase change (checked by the database)."""


class SchemaVersionError(TapdError):
    """The database's tapd schema is missing, or newer than this tapd."""

    exit_code = 2
