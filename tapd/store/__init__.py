"""The job store: tapd's PostgreSQL tables of UWS jobs and runner daemons.

``JobStore`` does all job-table I/O over one connection; ``initialise_schema``
creates or upgrades the schema; ``Job`` and ``JobPhase`` are the values.

The names are loaded on first use (PEP 562): a command that only needs
``tapd.store.phases`` or ``tapd.store.jobdir`` does not pay for importing
psycopg (``tapd jobs --help`` must start about as fast as Python itself).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Where each public name lives (the package re-exports them).
_EXPORTS = {
    "tapd.store.connector": (
        "ABORTABLE_PHASES",
        "ANY_OWNER",
        "RUNNABLE_PHASES",
        "JobStore",
        "Quota",
        "job_application_name",
        "normalise_parameters",
        "phase_channel",
        "queue_channel",
    ),
    "tapd.store.errors": (
        "IllegalPhaseChange",
        "JobNotFound",
        "PhaseConflict",
        "QuotaExceeded",
        "SchemaVersionError",
    ),
    "tapd.store.jobs": (
        "AccountLoad",
        "Attempt",
        "ErrorSummary",
        "HostAddress",
        "Job",
        "Progress",
        "ResultEntry",
        "RunnerInfo",
        "ServiceInfo",
        "new_job_id",
    ),
    "tapd.store.migrate": ("initialise_schema", "require_current_schema"),
    "tapd.store.phases": ("FINAL_PHASES", "JobPhase"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "ABORTABLE_PHASES",
    "ANY_OWNER",
    "FINAL_PHASES",
    "RUNNABLE_PHASES",
    "AccountLoad",
    "Attempt",
    "ErrorSummary",
    "HostAddress",
    "IllegalPhaseChange",
    "Job",
    "JobNotFound",
    "JobPhase",
    "JobStore",
    "PhaseConflict",
    "Progress",
    "Quota",
    "QuotaExceeded",
    "ResultEntry",
    "RunnerInfo",
    "SchemaVersionError",
    "ServiceInfo",
    "initialise_schema",
    "job_application_name",
    "new_job_id",
    "normalise_parameters",
    "phase_channel",
    "queue_channel",
    "require_current_schema",
]

if TYPE_CHECKING:
    from tapd.store.connector import (
        ABORTABLE_PHASES,
        ANY_OWNER,
        RUNNABLE_PHASES,
        JobStore,
        Quota,
        job_application_name,
        normalise_parameters,
        phase_channel,
        queue_channel,
    )
    from tapd.store.errors import (
        IllegalPhaseChange,
        JobNotFound,
        PhaseConflict,
        QuotaExceeded,
        SchemaVersionError,
    )
    from tapd.store.jobs import (
        AccountLoad,
        Attempt,
        ErrorSummary,
        HostAddress,
        Job,
        Progress,
        ResultEntry,
        RunnerInfo,
        ServiceInfo,
        new_job_id,
    )
    from tapd.store.migrate import initialise_schema, require_current_schema
    from tapd.store.phases import FINAL_PHASES, JobPhase


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'tapd.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULE_OF})
