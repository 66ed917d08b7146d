"""The job store: tapd's PostgreSQL tables of UWS jobs and runner daemons.

``JobStore`` does all job-table I/O over one connection; ``initialise_schema``
creates or upgrades the schema; ``Job`` and ``JobPhase`` are the values.
"""

from tapd.store.connector import (
    ABORTABLE_PHASES,
    ANY_OWNER,
    RUNNABLE_PHASES,
    JobStore,
    job_application_name,
    normalise_parameters,
    phase_channel,
    queue_channel,
)
from tapd.store.errors import IllegalPhaseChange, JobNotFound, PhaseConflict, SchemaVersionError
from tapd.store.jobs import ErrorSummary, Job, ResultEntry, RunnerInfo, new_job_id
from tapd.store.migrate import initialise_schema, require_current_schema
from tapd.store.phases import FINAL_PHASES, JobPhase

__all__ = [
    "ABORTABLE_PHASES",
    "ANY_OWNER",
    "FINAL_PHASES",
    "RUNNABLE_PHASES",
    "ErrorSummary",
    "IllegalPhaseChange",
    "Job",
    "JobNotFound",
    "JobPhase",
    "JobStore",
    "PhaseConflict",
    "ResultEntry",
    "RunnerInfo",
    "SchemaVersionError",
    "initialise_schema",
    "job_application_name",
    "new_job_id",
    "normalise_parameters",
    "phase_channel",
    "queue_channel",
    "require_current_schema",
]
