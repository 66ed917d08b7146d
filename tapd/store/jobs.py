"""What the job store holds about one UWS job, as frozen values.

Parameter names are stored upper-case (DALI 3.1: names are case-insensitive);
every parameter is a list of values because UPLOAD is multi-valued and a
repeated single-valued parameter must be reported when the job runs (DALI 3.2).
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from tapd.store.phases import JobPhase

#: Parameters whose values accumulate instead of replacing (TAP 1.1 §2.7.6).
MULTI_VALUED_PARAMETERS = frozenset({"UPLOAD"})


def new_job_id() -> str:
    """A fresh job id: 130 random bits, lower-case base32 (URL- and shell-safe)."""
    return base64.b32encode(secrets.token_bytes(20)).decode().lower()[:26]


@dataclass(frozen=True)
class ResultEntry:
    """One file in the job's result list (UWS ``<uws:result>``)."""

    result_id: str
    filename: str  # relative to the job directory
    mime_type: str
    size: int
    rows: int
    overflow: bool


@dataclass(frozen=True)
class ErrorSummary:
    """UWS errorSummary: ``type`` is ``fatal`` or ``transient``."""

    message: str
    type: str = "fatal"
    has_detail: bool = True


@dataclass(frozen=True)
class Attempt:
    """One run of a job, and the fencing token of everything that run does.

    Each claim starts a new attempt: it adds one to the job's ``attempts``
    counter, so ``number`` never repeats for a job, and records the claiming
    daemon as ``instance``. Endings and requeues name their attempt, and the
    store applies them only while the job is EXECUTING in that very attempt; a
    runner publishes files into the job directory only inside its accepted
    ending (``JobStore.ending``). Anything an attempt does after it lost the
    job (requeued, ended or taken over by someone else) is refused, from any
    host, without clocks or leases.
    """

    job_id: str
    number: int
    instance: str | None


@dataclass(frozen=True)
class Progress:
    """How far a running job has got: its result's rows and bytes written so far,
    as its daemon recorded them at ``recorded`` (every few seconds), and the rows
    PostgreSQL expects it to return (its plan's estimate; None if unknown)."""

    rows: int
    bytes: int
    recorded: dt.datetime
    expected_rows: int | None = None


@dataclass(frozen=True)
class Job:
    """A UWS job row."""

    job_id: str
    phase: JobPhase
    creation_time: dt.datetime
    execution_duration: int  # seconds, 0 = unlimited
    run_id: str | None = None
    owner: str | None = None
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    destruction: dt.datetime | None = None
    quote: dt.datetime | None = None
    parameters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    error: ErrorSummary | None = None
    results: tuple[ResultEntry, ...] = ()
    runner_host: str | None = None
    runner_pid: int | None = None
    runner_instance: str | None = None
    runner_backend_pid: int | None = None
    queued_time: dt.datetime | None = None
    attempts: int = 0  # claims so far; the number of the current (or last) attempt
    client_address: str | None = None  # anonymous jobs: the address they came from
    upload_host: str | None = None  # whose jobs directory holds the inline uploads
    progress: Progress | None = None  # how far it got, while EXECUTING

    @property
    def attempt(self) -> Attempt:
        """The attempt the job is in (meaningful while it is EXECUTING)."""
        return Attempt(self.job_id, self.attempts, self.runner_instance)

    def parameter(self, name: str) -> str | None:
        """The single value of a parameter (case-insensitive name), or None."""
        values = self.parameters.get(name.upper())
        return values[-1] if values else None

    def result(self, result_id: str) -> ResultEntry | None:
        """The result entry with this id, or None."""
        return next((r for r in self.results if r.result_id == result_id), None)


@dataclass(frozen=True)
class RunnerInfo:
    """A runner daemon's row in ``runners`` (its heartbeat)."""

    instance: str
    host: str
    boot_id: str
    pid: int
    started: dt.datetime
    heartbeat: dt.datetime
    heartbeat_age: float  # seconds since the last heartbeat, by the database clock
    max_jobs: int
    running: int
    stopping: bool
    usable_slots: int = 0  # slots running a job or able to take one now
    degraded: str | None = None  # why the daemon is not working normally (None: it is)
    degraded_since: dt.datetime | None = None
    reconnects: int = 0  # database reconnects since the daemon started

    def is_live(self, heartbeat_timeout: float) -> bool:
        """Alive and taking jobs: a fresh heartbeat and not stopping."""
        return self.heartbeat_age < heartbeat_timeout and not self.stopping


@dataclass(frozen=True)
class HostAddress:
    """Where another host of the fleet serves the job files in its jobs directory."""

    name: str
    internal_url: str
    token: str  # presented with every request to it


@dataclass(frozen=True)
class AccountLoad:
    """An account's share of the fleet: its jobs running and queued."""

    owner: str | None  # None: an anonymous client, known by its address
    address: str | None
    running: int
    queued: int

    @property
    def name(self) -> str:
        """The owner, or ``<address> (anonymous)``."""
        return self.owner if self.owner is not None else f"{self.address or '?'} (anonymous)"


@dataclass(frozen=True)
class ServiceInfo:
    """An HTTP service's row in ``services`` (its heartbeat)."""

    instance: str
    host: str
    pid: int
    url: str
    metrics_url: str | None
    started: dt.datetime
    heartbeat: dt.datetime
    heartbeat_age: float  # seconds, by the database clock


def progress_summary(job: Job, now: dt.datetime) -> str | None:
    """How far an EXECUTING job has got, for people (``tapd show``, the web job
    page): ``12,000 rows, 1.5 MB written, running 34 s (as of 2 s ago)``;
    None for a job that is not running."""
    if job.phase != JobPhase.EXECUTING or job.start_time is None:
        return None
    running = f"running {max(0.0, (now - job.start_time).total_seconds()):.0f} s"
    progress = job.progress
    if progress is None:
        return f"nothing written yet, {running}"
    expected = progress.expected_rows
    about = "" if expected is None else f"about {expected:,} row{'s' if expected != 1 else ''}"
    if progress.rows == 0:
        return (
            f"nothing written yet, {about} expected, {running}"
            if about
            else (f"nothing written yet, {running}")
        )
    age = max(0.0, (now - progress.recorded).total_seconds())
    of = f" of {about}" if about else ""
    return (
        f"{progress.rows:,} rows{of}, {progress.bytes / 1e6:.1f} MB written,"
        f" {running} (as of {age:.0f} s ago)"
    )
