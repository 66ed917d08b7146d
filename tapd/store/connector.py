"""``JobStore``: all reading and writing of tapd's job tables, over one connection.

The logic above it (HTTP, CLI, daemon, runner) deals in ``Job`` values and
named operations; the SQL is in ``queries.sql``. Each method is one short
transaction of its own (a savepoint if the caller already opened one), so a
store can wrap an autocommit connection or one from a pool.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tapd.store.errors import IllegalPhaseChange, JobNotFound, PhaseConflict, QuotaExceeded
from tapd.store.jobs import (
    MULTI_VALUED_PARAMETERS,
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
from tapd.store.phases import JobPhase
from tapd.store.queries import schema_queries

#: Pass as ``owner`` to ``list_jobs`` to list the jobs of every owner.
ANY_OWNER: Any = object()

#: Phases from which a client's PHASE=RUN queues the job.
RUNNABLE_PHASES = frozenset({JobPhase.PENDING, JobPhase.HELD})
#: Phases from which PHASE=ABORT (or destruction) aborts the job.
ABORTABLE_PHASES = frozenset(
    {JobPhase.PENDING, JobPhase.QUEUED, JobPhase.EXECUTING, JobPhase.HELD, JobPhase.SUSPENDED}
)


def phase_channel(schema: str) -> str:
    """NOTIFY channel of phase changes: payload JSON {job_id, phase, old_phase, runner}."""
    return f"{schema}.phase"


def queue_channel(schema: str) -> str:
    """NOTIFY channel that wakes runners when a job enters QUEUED (empty payload)."""
    return f"{schema}.queue"


#: ``application_name`` of a job runner's sessions, before the job id.
JOB_APPLICATION_PREFIX = "tapd job "


def job_application_name(job_id: str) -> str:
    """``application_name`` of a job runner's database sessions (how they are found)."""
    return JOB_APPLICATION_PREFIX + job_id


def normalise_parameters(
    parameters: Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]],
) -> dict[str, list[str]]:
    """Parameters as ``{NAME: [values]}``: names upper-cased (DALI 3.1), values in order.

    Accepts a mapping (a value may be a string or a sequence of strings) or
    a sequence of (name, value) pairs as an HTTP form gives them.
    """
    pairs: Iterable[tuple[str, str | Sequence[str]]]
    pairs = parameters.items() if isinstance(parameters, Mapping) else parameters
    merged: dict[str, list[str]] = {}
    for name, value in pairs:
        values = [value] if isinstance(value, str) else list(value)
        merged.setdefault(name.upper(), []).extend(values)
    return merged


def job_from_row(row: Mapping[str, Any]) -> Job:
    """A ``Job`` from a row of the jobs table (as a dict)."""
    error = None
    if row["error_message"] is not None:
        error = ErrorSummary(
            message=row["error_message"],
            type=row["error_type"] or "fatal",
            has_detail=row["error_has_detail"],
        )
    return Job(
        job_id=row["job_id"],
        phase=JobPhase(row["phase"]),
        creation_time=row["creation_time"],
        execution_duration=row["execution_duration"],
        run_id=row["run_id"],
        owner=row["owner"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        destruction=row["destruction"],
        quote=row["quote"],
        parameters={name: tuple(values) for name, values in row["parameters"].items()},
        error=error,
        results=tuple(
            ResultEntry(
                result_id=r["id"],
                filename=r["filename"],
                mime_type=r["mime_type"],
                size=r["size"],
                rows=r["rows"],
                overflow=r["overflow"],
            )
            for r in row["results"]
        ),
        runner_host=row["runner_host"],
        runner_pid=row["runner_pid"],
        runner_instance=row["runner_instance"],
        runner_backend_pid=row["runner_backend_pid"],
        queued_time=row["queued_time"],
        attempts=row["attempts"],
        client_address=row.get("client_address"),
        upload_host=row.get("upload_host"),
        progress=(
            Progress(
                row["progress_rows"],
                row["progress_bytes"],
                row["progress_time"],
                row.get("progress_expected_rows"),
            )
            if row.get("progress_time") is not None
            else None
        ),
    )


def _ending_parameters(
    attempt: Attempt,
    phase: JobPhase,
    results: Sequence[ResultEntry],
    error: ErrorSummary | None,
) -> dict[str, Any]:
    """The parameters of the ``finish_job`` query."""
    return {
        "job_id": attempt.job_id,
        "attempt": attempt.number,
        "instance": attempt.instance,
        "phase": phase.value,
        "results": _results_json(results),
        "error_type": error.type if error else None,
        "error_message": error.message if error else None,
        "error_has_detail": error.has_detail if error else False,
    }


def _results_json(results: Sequence[ResultEntry]) -> Jsonb:
    return Jsonb(
        [
            {
                "id": r.result_id,
                "filename": r.filename,
                "mime_type": r.mime_type,
                "size": r.size,
                "rows": r.rows,
                "overflow": r.overflow,
            }
            for r in results
        ]
    )


@dataclass(frozen=True)
class Quota:
    """The jobs a new job is counted with: an owner's, or anonymous jobs (``owner``
    None) from one ``client_address`` (None: all of them); at most ``limit``."""

    owner: str | None
    client_address: str | None
    limit: int
    message: str

    @property
    def key(self) -> str:
        return f"quota {self.owner!r} {self.client_address!r}"


class JobStore:
    """The job tables of one schema, reached through ``conn``."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str = "tapd") -> None:
        self.conn = conn
        self.schema = schema
        self._queries = schema_queries(schema)

    # -- plumbing -----------------------------------------------------------

    def _rows(self, name: str, **params: Any) -> list[dict[str, Any]]:
        # Every named query is one statement: on an idle autocommit connection
        # it is its own transaction (one round trip instead of three).
        conn = self.conn
        if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
            return self._execute(name, params)
        with conn.transaction():
            return self._execute(name, params)

    def _execute(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            self._checked(cur, self._queries[name], params)
            return cur.fetchall() if cur.description else []

    @staticmethod
    def _checked(cur: psycopg.Cursor[Any], query: bytes, params: dict[str, Any]) -> None:
        """Execute, turning the trigger's refusal of a phase change into ``IllegalPhaseChange``."""
        try:
            cur.execute(query, params)
        except psycopg.errors.CheckViolation as exc:
            if exc.diag.constraint_name == "phase_transition":
                raise IllegalPhaseChange(exc.diag.message_primary or str(exc)) from None
            raise

    def _job_or_none(self, name: str, **params: Any) -> Job | None:
        rows = self._rows(name, **params)
        return job_from_row(rows[0]) if rows else None

    # -- jobs: what HTTP and the CLI do ------------------------------------

    def create_job(
        self,
        parameters: Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]] = (),
        *,
        execution_duration: int,
        destruction: dt.datetime | None,
        owner: str | None = None,
        queue: bool = False,
        job_id: str | None = None,
        client_address: str | None = None,
        quota: Quota | None = None,
        upload_host: str | None = None,
    ) -> Job:
        """A new job, PENDING (or QUEUED with ``queue``, which wakes the runners);
        ``upload_host``: the host whose jobs directory holds its inline uploads.

        With ``quota``, counting the quota's jobs and inserting are one step
        (``QuotaExceeded`` when it is full), whatever runs concurrently.
        """
        params = normalise_parameters(parameters)
        run_ids = params.get("RUNID")
        values = {
            "job_id": job_id or new_job_id(),
            "run_id": run_ids[-1] if run_ids else None,
            "owner": owner,
            "client_address": client_address,
            "phase": JobPhase.QUEUED if queue else JobPhase.PENDING,
            "execution_duration": execution_duration,
            "destruction": destruction,
            "parameters": Jsonb(params),
            "upload_host": upload_host,
        }
        if quota is None:
            job = self._job_or_none("create_job", **values)
        else:
            with self.conn.transaction():
                self._rows("lock_quota", key=f"{self.schema} {quota.key}")
                (row,) = self._rows(
                    "count_quota_jobs",
                    owner=quota.owner,
                    client_address=quota.client_address,
                    any_address=quota.client_address is None,
                )
                if row["jobs"] >= quota.limit:
                    raise QuotaExceeded(quota.message)
                job = self._job_or_none("create_job", **values)
        assert job is not None
        return job

    def get_job(self, job_id: str) -> Job:
        """The job, or ``JobNotFound``."""
        job = self._job_or_none("get_job", job_id=job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def list_jobs(
        self,
        *,
        owner: str | None = ANY_OWNER,
        phases: Iterable[JobPhase | str] = (),
        after: dt.datetime | None = None,
        last: int | None = None,
        client_address: str | None = ANY_OWNER,
    ) -> list[Job]:
        """Jobs newest first (UWS 1.1 §2.2.2.1): all phases but ARCHIVED unless ``phases``;
        only ``owner``'s (None: anonymous) and only those from ``client_address`` when given."""
        phase_list = [JobPhase(p).value for p in phases] or None
        any_owner = owner is ANY_OWNER
        any_address = client_address is ANY_OWNER
        rows = self._rows(
            "list_jobs",
            any_owner=any_owner,
            owner=None if any_owner else owner,
            any_address=any_address,
            client_address=None if any_address else client_address,
            phases=phase_list,
            after=after,
            last=last,
        )
        return [job_from_row(r) for r in rows]

    def set_parameters(
        self,
        job_id: str,
        parameters: Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]],
        *,
        upload_host: str | None = None,
    ) -> Job:
        """Add parameters to a PENDING job: a name given again replaces its values,
        except UPLOAD, whose values accumulate (TAP-18, DALI 3.2). ``upload_host``
        (if given): the host that now holds all of the job's inline uploads."""
        params = normalise_parameters(parameters)
        replaced = {n: v for n, v in params.items() if n not in MULTI_VALUED_PARAMETERS}
        appended = {n: v for n, v in params.items() if n in MULTI_VALUED_PARAMETERS}
        run_ids = params.get("RUNID")
        job = self._job_or_none(
            "set_parameters",
            job_id=job_id,
            replaced=Jsonb(replaced),
            appended=Jsonb(appended),
            set_run_id=run_ids is not None,
            run_id=run_ids[-1] if run_ids else None,
            upload_host=upload_host,
        )
        if job is None:
            current = self.get_job(job_id)
            raise PhaseConflict(
                f"job {job_id} is {current.phase}: its parameters can only change while PENDING"
            )
        return job

    @contextlib.contextmanager
    def pending_job_locked(self, job_id: str) -> Iterator[Job]:
        """The PENDING job, its row locked for the block (one transaction, committed at
        its end): changes made inside, to the row and to the job's files, happen
        before any PHASE=RUN of the job can. ``PhaseConflict`` when not PENDING."""
        with self.conn.transaction():
            job = self._job_or_none("lock_pending_job", job_id=job_id)
            if job is None:
                current = self.get_job(job_id)
                raise PhaseConflict(
                    f"job {job_id} is {current.phase}: its parameters can only change while PENDING"
                )
            yield job

    def set_execution_duration(self, job_id: str, seconds: int) -> Job:
        """A new executionDuration (clamp it first: ``tapd.store.policy``)."""
        job = self._job_or_none("set_execution_duration", job_id=job_id, execution_duration=seconds)
        if job is None:
            current = self.get_job(job_id)
            raise PhaseConflict(
                f"job {job_id} is {current.phase}: its executionDuration can no longer change"
            )
        return job

    def set_destruction(self, job_id: str, when: dt.datetime) -> Job:
        """A new destruction time (clamp it first: ``tapd.store.policy``)."""
        job = self._job_or_none("set_destruction", job_id=job_id, destruction=when)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def queue_job(self, job_id: str) -> Job:
        """PHASE=RUN. A job already queued or running is left as it is; a
        finished one cannot run again (``PhaseConflict``)."""
        job = self._job_or_none("queue_job", job_id=job_id)
        if job is not None:
            return job
        current = self.get_job(job_id)
        if current.phase in (JobPhase.QUEUED, JobPhase.EXECUTING, JobPhase.SUSPENDED):
            return current
        raise PhaseConflict(f"job {job_id} is {current.phase}: it cannot be run again")

    def abort_job(self, job_id: str, message: str = "The job was aborted on request.") -> Job:
        """PHASE=ABORT. Aborting an ABORTED job is a no-op; a COMPLETED or ERROR
        job cannot be aborted (``PhaseConflict``). A running job's daemon stops it."""
        job = self._job_or_none("abort_job", job_id=job_id, message=message)
        if job is not None:
            return job
        current = self.get_job(job_id)
        if current.phase == JobPhase.ABORTED:
            return current
        raise PhaseConflict(f"job {job_id} is {current.phase}: there is nothing to abort")

    def delete_job(self, job_id: str) -> Job:
        """Abort the job if it has not ended, then forget it; returns its last state.
        The job directory is the caller's to remove (``tapd.store.jobdir``)."""
        with self.conn.transaction():
            self._rows("abort_job", job_id=job_id, message="The job was deleted on request.")
            job = self._job_or_none("delete_job", job_id=job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def existing_jobs(self, job_ids: Sequence[str]) -> set[str]:
        """The ids among ``job_ids`` that still have a job."""
        return {r["job_id"] for r in self._rows("existing_jobs", job_ids=list(job_ids))}

    # -- hosts of a fleet ---------------------------------------------------

    def advertise_host(self, name: str, internal_url: str, token: str) -> None:
        """Record where host ``name`` serves its job files to the other hosts."""
        self._rows("advertise_host", host=name, internal_url=internal_url, token=token)

    def host_address(self, name: str) -> HostAddress | None:
        """Where host ``name`` serves its job files; None if it never said."""
        rows = self._rows("host_address", host=name)
        if not rows:
            return None
        return HostAddress(rows[0]["name"], rows[0]["internal_url"], rows[0]["token"])

    def phase_counts(self) -> dict[JobPhase, int]:
        """Number of jobs in each phase (phases without jobs are left out)."""
        return {JobPhase(r["phase"]): r["jobs"] for r in self._rows("phase_counts")}

    def heaviest_accounts(self, limit: int = 5) -> list[AccountLoad]:
        """The accounts with the most jobs running or queued, heaviest first."""
        return [
            AccountLoad(r["owner"], r["address"], r["running"], r["queued"])
            for r in self._rows("heaviest_accounts", limit=limit)
        ]

    def abort_account_jobs(
        self,
        *,
        owner: str | None,
        client_address: str | None = None,
        message: str = "The job was aborted on request.",
    ) -> list[str]:
        """Abort every unfinished job of ``owner`` (None: of the anonymous client
        ``client_address``); returns their ids."""
        rows = self._rows(
            "abort_account_jobs", owner=owner, client_address=client_address, message=message
        )
        return [r["job_id"] for r in rows]

    def oldest_queued_age(self) -> float | None:
        """Seconds the oldest QUEUED job has waited; None when the queue is empty."""
        age = self._rows("oldest_queued_age")[0]["age"]
        return None if age is None else float(age)

    # -- jobs: what the runner daemon and its children do -------------------

    def claim_jobs(
        self,
        instance: str,
        host: str,
        limit: int,
        runners: Sequence[tuple[int, int | None]] = (),
        *,
        running_per_owner: int | None = None,
        heartbeat_timeout: float = 30.0,
    ) -> list[Job]:
        """Take up to ``limit`` QUEUED jobs (now EXECUTING), fairly: the oldest
        jobs of the accounts (owners, anonymous client addresses) running the
        fewest, none of an account already running ``running_per_owner`` jobs
        (0: half the slots of the daemons alive within ``heartbeat_timeout``,
        at least 1; None: no limit). Returned oldest first.

        ``runners``: (pid, backend pid) of the processes that will run them, one
        per job (at most that many jobs are claimed); each claimed job records
        one of them as ``runner_pid``/``runner_backend_pid``.
        """
        pids = backend_pids = None
        if runners:
            limit = min(limit, len(runners))
            pids = [pid for pid, _ in runners]
            backend_pids = [backend_pid for _, backend_pid in runners]
        params = {
            "instance": instance,
            "host": host,
            "limit": limit,
            "pids": pids,
            "backend_pids": backend_pids,
            "running_per_owner": running_per_owner,
            "heartbeat_timeout": heartbeat_timeout,
        }
        # The claims' turn (BEGIN rides with it), then the claim, then COMMIT.
        conn = self.conn
        if conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE:
            conn.execute(b"BEGIN;\n" + self._queries["claim_lock"])
            try:
                rows = self._execute("claim_jobs", params)
                conn.execute(b"COMMIT")
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(b"ROLLBACK")
                raise
        else:
            with conn.transaction():
                self._execute("claim_lock", {})
                rows = self._execute("claim_jobs", params)
        jobs = [job_from_row(r) for r in rows]
        jobs.sort(key=lambda j: (j.queued_time or j.creation_time, j.job_id))
        return jobs

    def start_job(
        self,
        job_id: str,
        instance: str,
        pid: int,
        backend_pid: int | None,
        *,
        application_name: str | None = None,
    ) -> Job | None:
        """Record the child's pid and backend pid on its claimed job and name this
        session ``application_name`` (default: ``job_application_name(job_id)``);
        None if the job is no longer this daemon's to run."""
        return self._job_or_none(
            "start_job",
            job_id=job_id,
            instance=instance,
            pid=pid,
            backend_pid=backend_pid,
            application_name=application_name or job_application_name(job_id),
        )

    def finish_job(
        self,
        attempt: Attempt,
        phase: JobPhase,
        *,
        results: Sequence[ResultEntry] = (),
        error: ErrorSummary | None = None,
    ) -> bool:
        """End ``attempt`` of its job; False if the attempt no longer holds the
        job (someone else ended, requeued or took it over first)."""
        return bool(self._rows("finish_job", **_ending_parameters(attempt, phase, results, error)))

    @contextlib.contextmanager
    def ending(
        self,
        attempt: Attempt,
        phase: JobPhase,
        *,
        results: Sequence[ResultEntry] = (),
        error: ErrorSummary | None = None,
    ) -> Iterator[bool]:
        """``finish_job`` in a transaction kept open for the ``with`` block, which
        learns whether the attempt still held the job. While it did, the job's
        row stays locked until the block ends: nobody can requeue, end, claim or
        delete the job meanwhile, so what the block does (putting the attempt's
        files in place) is fenced like the ending itself. Commits when the block
        ends; an exception rolls the ending back.

        On an idle autocommit connection BEGIN rides with the ending (client-side
        binding, one round trip), and COMMIT is the second.
        """
        parameters = _ending_parameters(attempt, phase, results, error)
        conn = self.conn
        if not (conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE):
            with conn.transaction():
                yield bool(self._execute("finish_job", parameters))
            return
        try:
            with psycopg.ClientCursor(conn) as cur:
                self._checked(cur, b"BEGIN; " + self._queries["finish_job"], parameters)
                cur.nextset()  # past BEGIN's result
                owned = bool(cur.fetchall())
            yield owned
        except BaseException:
            if not conn.closed and not conn.broken:
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
            raise
        conn.commit()

    def rehearse_job(self, instance: str) -> None:
        """Create, start and complete a throwaway job in a transaction that is
        rolled back, so nobody sees it. A fresh session pays several
        milliseconds the first time it changes a job's phase (the trigger
        compiled, the table's catalog entries loaded); a spare child pays
        them while it waits instead of while its job's user does."""
        result = ResultEntry("result", "result.xml", "application/x-votable+xml", 1, 1, False)
        with self.conn.transaction(force_rollback=True):
            job = self.create_job((), execution_duration=0, destruction=None, queue=True)
            (started,) = self._rows("rehearse_start", job_id=job.job_id, instance=instance)
            attempt = Attempt(job.job_id, started["attempts"], instance)
            with self.ending(attempt, JobPhase.COMPLETED, results=[result]):
                pass

    def record_progress(self, progress: Sequence[tuple[Attempt, int, int, int | None]]) -> None:
        """How far running jobs got: (attempt, rows, bytes written so far, rows
        expected or None) each, recorded while the attempt still holds its job
        (attempts of one daemon)."""
        if not progress:
            return
        self._rows(
            "record_progress",
            job_ids=[a.job_id for a, _, _, _ in progress],
            numbers=[a.number for a, _, _, _ in progress],
            rows=[rows for _, rows, _, _ in progress],
            bytes=[written for _, _, written, _ in progress],
            expected=[expected for _, _, _, expected in progress],
            instance=progress[0][0].instance,
        )

    def requeue_jobs(self, attempts: Sequence[Attempt]) -> list[str]:
        """Put attempts back at the head of the queue, each only while it still
        holds its job, ending their database sessions; returns the ids of the
        jobs requeued."""
        rows = self._rows(
            "requeue_jobs",
            job_ids=[a.job_id for a in attempts],
            numbers=[a.number for a in attempts],
            instances=[a.instance for a in attempts],
            application_prefix=JOB_APPLICATION_PREFIX,
        )
        return [r["job_id"] for r in rows]

    def runner_jobs(self, instance: str, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{job_id: {phase, runner_instance, runner_pid, attempts}}`` for the jobs ``instance``
        runs by the database's account and for ``job_ids``."""
        rows = self._rows("runner_jobs", instance=instance, job_ids=list(job_ids))
        return {r["job_id"]: r for r in rows}

    def orphaned_jobs(self) -> list[Job]:
        """EXECUTING jobs whose daemon is not registered (dead or given up for dead)."""
        return [job_from_row(r) for r in self._rows("orphaned_jobs")]

    def terminate_job_backends(self, job_id: str) -> int:
        """End the job runner's database sessions; returns how many were signalled."""
        rows = self._rows("terminate_job_backends", application_name=job_application_name(job_id))
        return len(rows)

    def cancel_job_queries(self, job_id: str) -> int:
        """Cancel the statements the job's runner is running; returns how many."""
        rows = self._rows("cancel_job_queries", application_name=job_application_name(job_id))
        return len(rows)

    def job_sessions(self, job_id: str) -> list[dict[str, Any]]:
        """The job runner's open database sessions (pid, state, query)."""
        return self._rows("job_sessions", application_name=job_application_name(job_id))

    # -- runner daemons -----------------------------------------------------

    def register_runner(
        self, instance: str, *, host: str, boot_id: str, pid: int, max_jobs: int
    ) -> None:
        self._rows(
            "register_runner",
            instance=instance,
            host=host,
            boot_id=boot_id,
            pid=pid,
            max_jobs=max_jobs,
        )

    def heartbeat(
        self,
        instance: str,
        *,
        running: int,
        max_jobs: int,
        stopping: bool = False,
        usable_slots: int | None = None,
        degraded: str | None = None,
        reconnects: int = 0,
    ) -> int | None:
        """Refresh the daemon's heartbeat and its health (``usable_slots``, None:
        all of ``max_jobs``; ``degraded``: why it is not working normally, None
        when it is); returns the number of QUEUED jobs, or None when the
        daemon's row is gone (it must register again)."""
        rows = self._rows(
            "heartbeat",
            instance=instance,
            running=running,
            max_jobs=max_jobs,
            stopping=stopping,
            usable_slots=usable_slots,
            degraded=degraded,
            reconnects=reconnects,
        )
        return int(rows[0]["queued"]) if rows else None

    def unregister_runner(self, instance: str) -> None:
        self._rows("unregister_runner", instance=instance)

    def list_runners(self) -> list[RunnerInfo]:
        """Every registered runner daemon (for /availability and reconciliation)."""
        return [
            RunnerInfo(
                instance=r["instance"],
                host=r["host"],
                boot_id=r["boot_id"],
                pid=r["pid"],
                started=r["started"],
                heartbeat=r["heartbeat"],
                heartbeat_age=r["heartbeat_age"],
                max_jobs=r["max_jobs"],
                running=r["running"],
                stopping=r["stopping"],
                usable_slots=r["usable_slots"],
                degraded=r["degraded"],
                degraded_since=r["degraded_since"],
                reconnects=r["reconnects"],
            )
            for r in self._rows("list_runners")
        ]

    def forget_runners(self, instances: Sequence[str]) -> list[str]:
        """Remove the rows of daemons known to be dead."""
        rows = self._rows("forget_runners", instances=list(instances))
        return [r["instance"] for r in rows]

    def expire_runners(self, timeout: float, keep: str | None = None) -> list[str]:
        """Remove daemons silent for longer than ``timeout`` seconds (except ``keep``)."""
        rows = self._rows("expire_runners", timeout=timeout, keep=keep)
        return [r["instance"] for r in rows]

    # -- HTTP services ----------------------------------------------------------

    def register_service(
        self, instance: str, *, host: str, pid: int, url: str, metrics_url: str | None
    ) -> None:
        self._rows(
            "register_service",
            instance=instance,
            host=host,
            pid=pid,
            url=url,
            metrics_url=metrics_url,
        )

    def service_heartbeat(self, instance: str) -> bool:
        """Refresh an HTTP service's heartbeat; False when its row is gone."""
        return bool(self._rows("service_heartbeat", instance=instance))

    def unregister_service(self, instance: str) -> None:
        self._rows("unregister_service", instance=instance)

    def list_services(self, within: float) -> list[ServiceInfo]:
        """HTTP services seen in the last ``within`` seconds."""
        return [
            ServiceInfo(
                instance=r["instance"],
                host=r["host"],
                pid=r["pid"],
                url=r["url"],
                metrics_url=r["metrics_url"],
                started=r["started"],
                heartbeat=r["heartbeat"],
                heartbeat_age=r["heartbeat_age"],
            )
            for r in self._rows("list_services", within=within)
        ]

    # -- destruction ----------------------------------------------------------

    def abort_expired_jobs(self) -> list[str]:
        """Abort unfinished jobs past their destruction time."""
        return [r["job_id"] for r in self._rows("abort_expired_jobs")]

    def delete_expired_jobs(self, limit: int = 500) -> list[str]:
        """Forget finished jobs past their destruction time; returns their ids."""
        return [r["job_id"] for r in self._rows("delete_expired_jobs", limit=limit)]
