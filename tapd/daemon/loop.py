"""The runner daemon: claim queued jobs, fork a child per job, reap, recover.

One thread, one select() loop over the database socket (LISTEN) and a
self-pipe that signals write to. Each turn: read notifications, reap
children, enforce deadlines, then the periodic work (claim when woken or the
poll is due, heartbeat, reconciliation, destruction sweep). The database
connection is autocommit: no transaction stays open while jobs run. If it
breaks, children keep running, their endings wait in memory, and the daemon
reconnects with back-off, LISTENs again and catches up.

Signals: SIGHUP reloads the configuration; SIGTERM/SIGINT stop claiming and
give running jobs ``runner.shutdown_grace`` seconds, then abort them or put
them back in the queue (``runner.shutdown_policy``: a job goes back only once
its child is gone); a second SIGTERM skips the grace period.

Every ending the daemon records names the attempt it belongs to
(``tapd.store.Attempt``), and what it records is decided by the pure
functions of ``tapd.daemon.endings`` from the facts gathered here.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import importlib
import json
import os
import selectors
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

import psycopg
from psycopg import sql

from tapd import log as tapd_log
from tapd.config import Config
from tapd.daemon.child import GIVE_BACK_SIGNAL, Assignment, SpareSpec, run_spare
from tapd.daemon.endings import (
    EXIT_DONE,
    EXIT_SPARE_NO_DATABASE,
    SHUTDOWN_ABORT,
    ChildExit,
    Disposition,
    Ending,
    child_ending,
    finish,
    unattended_ending,
)
from tapd.daemon.health import Backoff, Health, Operation
from tapd.daemon.progress import PROGRESS_INTERVAL, ProgressSlot, Reading
from tapd.daemon.recovery import boot_id, reconcile_runners
from tapd.daemon.systemd import SystemdNotifier
from tapd.errors import DatabaseUnavailable, TapdError
from tapd.log import get_logger
from tapd.peers import host_name
from tapd.store import (
    Attempt,
    ErrorSummary,
    JobPhase,
    JobStore,
    phase_channel,
    queue_channel,
    require_current_schema,
)
from tapd.store.connection import LinkTimeouts, connect, dsn_parameters, one_line
from tapd.store.faults import Action, CannotConnect, DatabaseFault, database_fault
from tapd.store.jobdir import (
    ORPHAN_DIR_GRACE,
    AttemptFiles,
    check_jobs_dir,
    job_dir,
    remove_job_dir,
    remove_orphaned_spool_files,
    stale_job_dirs,
)

log = get_logger()

#: Modules the children use, imported (and their ``warm_up()`` run) before forking.
WARM_MODULES = (
    "tapd.formats",
    "tapd.formats.parquet",  # imported lazily by the writer registry; pyarrow is slow to load
    "tapd.adql",
    "tapd.catalog",
    "tapd.uploads",
)

#: Seconds a child gets after SIGTERM before SIGKILL.
STOP_GRACE = 5.0
#: Seconds past a job's deadline before the daemon kills its child itself
#: (the child's own alarm should have ended it at the deadline).
DEADLINE_GRACE = 3.0
#: Reconnect back-off: first and longest wait, seconds.
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
#: Seconds between refreshes of the daemon's copy of TAP_SCHEMA.
CATALOG_REFRESH = 30.0
#: The daemon's own statements are short; a lock held by someone else (LOCK
#: TABLE, a migration) or a stuck server must not block its main loop until
#: systemd's watchdog (WatchdogSec=20s) kills it: they fail and back off instead.
SESSION_SETTINGS = (
    "SELECT set_config('lock_timeout', '2s', false), set_config('statement_timeout', '10s', false)"
)
#: Every this many destruction sweeps (and at the first), look for job
#: directories whose job is gone.
ORPHAN_SWEEPS = 10


@dataclass
class Child:
    """A forked child: a spare waiting for a job (``job_id`` None), then running one."""

    pid: int
    pipe: int | None  # write end of its job pipe, until a job (or retirement) is sent
    ready: int | None = None  # read end of its ready pipe, until it reports
    backend_pid: int | None = None  # reported once connected: the spare can take a job
    forked: float = 0.0  # time.monotonic() of the fork (a spare must be ready in time)
    failure: str | None = None  # why the spare could not connect, in its own words
    job_id: str | None = None
    attempt: int = 0  # the attempt of the job it runs (the claim's attempts counter)
    execution_duration: int = 0
    started: float = 0.0  # time.monotonic() of the assignment
    deadline: float | None = None
    stop_reason: str | None = None  # why the daemon signalled it
    stop_sent: float | None = None
    still_ours: bool = True  # False once the job was found ended or taken elsewhere
    giving_back: bool = False  # asked to give its job back (the daemon stops, requeue)
    killed_at_deadline: bool = False  # the daemon killed it (SIGKILL) past the deadline
    killed_unresponsive: bool = False  # ... or because it did not stop when asked
    killed_not_ready: bool = False  # a spare killed for not becoming ready in time
    progress: ProgressSlot | None = None  # how far its job got, as the child tells it
    progress_recorded: Reading = (0, 0, None)  # last written to the store

    @property
    def busy(self) -> bool:
        return self.job_id is not None

    @property
    def killed(self) -> bool:
        return self.killed_at_deadline or self.killed_unresponsive or self.killed_not_ready

    def exit_facts(self, code: int | None, signum: int | None) -> ChildExit:
        """What ``tapd.daemon.endings.child_ending`` needs to know of its exit."""
        return ChildExit(
            code=code,
            signal=signum,
            attempt=self.attempt,
            still_ours=self.still_ours,
            giving_back=self.giving_back,
            killed_at_deadline=self.execution_duration if self.killed_at_deadline else None,
            killed_unresponsive=self.stop_reason if self.killed_unresponsive else None,
        )


@dataclass(frozen=True)
class PendingEnd:
    """An ending decided for one attempt, kept until the database takes it (or
    refuses it: the attempt no longer holds the job)."""

    attempt: Attempt
    ending: Ending


@dataclass
class _Timers:
    poll: float = 0.0
    heartbeat: float = 0.0
    sweep: float = 0.0
    catalog: float = 0.0
    progress: float = 0.0
    watchdog: float = 0.0
    reconnect: float = 0.0
    backoff: float = BACKOFF_FIRST


def warm_up_for_children() -> None:
    """Import what children need, build the ADQL parser and its lexer before
    forking, so each child starts warm (any of these costs more than a job)."""
    for name in WARM_MODULES:
        with contextlib.suppress(ImportError):
            module = importlib.import_module(name)
            warm_up = getattr(module, "warm_up", None)
            if callable(warm_up):
                warm_up()
    with contextlib.suppress(Exception):
        from tapd.adql import parse_adql

        parse_adql("SELECT TOP 1 a AS b FROM s.t WHERE a > 1 ORDER BY 1")
    gc.freeze()  # keep the warm heap shared copy-on-write with the children


def _warm_type_names(conn: psycopg.Connection[Any]) -> None:
    """Cache the names of the types a result column can have (base, domain,
    enum, range types and their arrays), so children describe results without
    asking the database."""
    try:
        from tapd.formats.query import type_names
    except ImportError:
        return
    rows = conn.execute("SELECT oid::int8 FROM pg_type WHERE typtype IN ('b', 'd', 'e', 'r', 'm')")
    type_names(conn, [oid for (oid,) in rows.fetchall()])


def exit_cause(status: int) -> tuple[int | None, int | None]:
    """(exit code, signal number) of a waitpid status."""
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status), None
    return None, None


class RunnerDaemon:
    """``tapd run``: the long-lived main process of the systemd service."""

    def __init__(
        self,
        config: Config,
        *,
        reload_config: Callable[[], Config] | None = None,
        notifier: SystemdNotifier | None = None,
    ) -> None:
        self.config = config
        self.reload_config = reload_config
        self.notifier = notifier or SystemdNotifier()
        self.instance = uuid.uuid4().hex
        self.host = host_name()
        self.boot = boot_id()
        self.children: dict[int, Child] = {}
        self.pending_ends: list[PendingEnd] = []
        self.conn: psycopg.Connection[Any] | None = None
        self.store: JobStore | None = None
        self.catalog: Any | None = None
        self.wake = True
        self.backlog = False  # the last claim took a job for every idle spare
        self.check_own = False  # a notification says a job we run may be ours no more
        self.stopping = False
        self.stop_deadline: float | None = None
        self.timers = _Timers()
        self.health = Health(Backoff(cap=config.retry_backoff_max))
        self.queued = 0
        self.reconnects = 0  # reported in the heartbeat (metrics, tapd status)
        self.sweeps = 0
        self.connected_at = 0.0  # time.monotonic() of the last (re)connection
        self._signals: list[int] = []
        self._selector = selectors.DefaultSelector()
        self._wakeup_r, self._wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._db_fd: int | None = None

    # -- life cycle ----------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; returns the exit status."""
        check_jobs_dir(self.config.jobs_path)
        try:
            self._connect()  # a broken configuration or database fails here, in one line
        except psycopg.Error as exc:
            fault = database_fault(exc, connection_broken=True)
            raise DatabaseUnavailable(f"cannot start: {fault.message}") from None
        self._install_signals()
        self._selector.register(self._wakeup_r, selectors.EVENT_READ, "signals")
        self._warm_up()
        log.info(
            "daemon.started",
            instance=self.instance,
            host=self.host,
            max_jobs=self.config.max_jobs,
            pid=os.getpid(),
            psycopg=psycopg.pq.__impl__,
        )
        self.notifier.ready(self._status_text())
        while not (self.stopping and not self.children):
            self._turn()
        self._finish()
        return 0

    def _turn(self) -> None:
        now = time.monotonic()
        timeout = max(0.0, self._next_deadline() - now)
        for key, _ in self._selector.select(timeout):
            if key.data == "signals":
                self._drain_wakeup()
            elif key.data == "database":
                self._guarded(Operation.NOTIFICATIONS, self._read_notifications)
            else:
                self._spare_reported(key.data)
        self._handle_signals()
        self._reap()
        self._enforce_deadlines()
        if self.conn is None:
            if time.monotonic() >= self.timers.reconnect and not self._stop_now():
                self._try_reconnect()
        else:
            self._periodic()
            self._fork_spares()
        if self.stopping:
            self._advance_shutdown()
        self._watchdog()

    def _finish(self) -> None:
        if self.store is not None:
            self._guarded(Operation.ENDINGS, self._flush_pending_ends)
        if self.store is not None:
            with contextlib.suppress(psycopg.Error):
                self.store.unregister_runner(self.instance)
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
        log.info("daemon.stopped", instance=self.instance)
        self.notifier.close()

    def _stop_now(self) -> bool:
        return self.stopping and not self.children

    # -- signals ---------------------------------------------------------------

    def _install_signals(self) -> None:
        signal.set_wakeup_fd(self._wakeup_w, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    def _drain_wakeup(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wakeup_r, 512):
                pass

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum in (signal.SIGTERM, signal.SIGINT):
                self._begin_shutdown(signum)
            elif signum == signal.SIGHUP:
                self._reload()

    # -- the database connection ---------------------------------------------

    def _connect(self) -> None:
        conn = connect(
            self.config.dsn,
            application_name=f"tapd runner {self.host}",
            timeouts=LinkTimeouts.of(self.config),
        )
        try:
            conn.execute(SESSION_SETTINGS)
            require_current_schema(conn, self.config.schema)
            store = JobStore(conn, self.config.schema)
            for channel in (queue_channel(self.config.schema), phase_channel(self.config.schema)):
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            conn.add_notify_handler(lambda n: self._on_notify(n.channel, n.payload))
            store.register_runner(
                self.instance,
                host=self.host,
                boot_id=self.boot,
                pid=os.getpid(),
                max_jobs=self.config.max_jobs,
            )
        except BaseException:
            conn.close()
            raise
        self.conn, self.store = conn, store
        self._db_fd = conn.fileno()
        self._selector.register(self._db_fd, selectors.EVENT_READ, "database")
        self.timers.backoff = BACKOFF_FIRST
        self.connected_at = time.monotonic()
        # Catch up: what happened while we were not listening.
        self._guarded(Operation.ENDINGS, self._flush_pending_ends)
        self._guarded(Operation.DEAD_DAEMONS, self._reconcile_runners)
        self._guarded(Operation.OWN_JOBS, self._reconcile_own)
        self.wake = True
        self.timers.poll = self.timers.heartbeat = 0.0
        self._guarded(Operation.HEARTBEAT, self._heartbeat)

    def _try_reconnect(self) -> None:
        try:
            self._connect()
            if self.conn is not None:
                self.reconnects += 1
                log.info("daemon.database_reconnected", instance=self.instance)
        except (TapdError, psycopg.Error) as exc:
            message = exc.message if isinstance(exc, TapdError) else one_line(exc)
            log.warning(
                "daemon.reconnect_failed", error=message, retry_in_s=round(self.timers.backoff, 2)
            )
            self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        self.timers.reconnect = time.monotonic() + self.timers.backoff
        self.timers.backoff = min(BACKOFF_MAX, self.timers.backoff * 2)
        self.notifier.status(f"database unavailable, reconnecting; {self._running()} running")

    def _lost_connection(self, exc: BaseException) -> None:
        log.warning("daemon.database_lost", error=one_line(exc), running=self._running())
        if self._db_fd is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(self._db_fd)
            self._db_fd = None
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
        self.conn = self.store = None
        self.timers.backoff = BACKOFF_FIRST
        self._schedule_reconnect()

    def _connection_broken(self) -> bool:
        conn = self.conn
        return (
            conn is None
            or conn.closed
            or conn.broken
            or conn.pgconn.status != psycopg.pq.ConnStatus.OK
        )

    def _attempt(self, operation: str, action: Callable[[], None]) -> None:
        """``_guarded``, unless ``operation`` is waiting out a back-off."""
        if self.health.due(operation, time.monotonic()):
            self._guarded(operation, action)

    def _retry_due(self, operation: str, now: float) -> bool:
        """Whether a failing ``operation`` is due again (before its regular time)."""
        return not self.health.ok(operation) and self.health.due(operation, now)

    def _guarded(self, operation: str, action: Callable[[], None]) -> None:
        """Run one database operation; a failure is classified
        (``tapd.store.faults``) and answered as ``tapd.daemon.health`` decides."""
        if self.conn is None:
            return
        try:
            action()
        except psycopg.Error as exc:
            fault = database_fault(exc, connection_broken=self._connection_broken())
            self._failed(operation, fault, exc)
            return
        self._succeeded(operation)

    def _succeeded(self, operation: str) -> None:
        ended = self.health.succeeded(operation)
        if ended is not None and ended.warned:
            log.info("daemon.recovered", operation=operation, failures=ended.failures)
            self._health_changed()

    def _failed(
        self, operation: str, fault: DatabaseFault, exc: BaseException | None = None
    ) -> None:
        step = self.health.failed(operation, fault, time.monotonic())
        if step.action is Action.RECONNECT:
            self._lost_connection(exc or fault)
        elif step.action is Action.RETRY:
            log.info(
                "daemon.retrying", operation=operation, sqlstate=fault.sqlstate, error=fault.detail
            )
        else:
            log.warning(
                "daemon.degraded",
                operation=operation,
                sqlstate=fault.sqlstate,
                cause=fault.cause,
                error=fault.detail,
                failures=self.health.failing[operation].failures,
                retry_in_s=round(step.delay, 2),
            )
            self._health_changed()

    def _health_changed(self) -> None:
        """Say so at once: STATUS= now, the runners row at the next turn."""
        self.notifier.status(self._status_text())
        self.timers.heartbeat = 0.0

    def _read_notifications(self) -> None:
        assert self.conn is not None
        pgconn = self.conn.pgconn
        pgconn.consume_input()  # raises when the server closed the connection
        while (notify := pgconn.notifies()) is not None:
            self._on_notify(notify.relname.decode(), notify.extra.decode())
        if self._connection_broken():
            raise psycopg.OperationalError("the database connection was closed")

    def _on_notify(self, channel: str, payload: str) -> None:
        if channel == queue_channel(self.config.schema):
            self.wake = True
            return
        try:
            change = json.loads(payload)
        except ValueError:
            return
        phase = change.get("phase")
        # A job queued, or one ended anywhere: an account at its running limit
        # may now start its next job.
        if phase in (JobPhase.QUEUED, JobPhase.COMPLETED, JobPhase.ERROR, JobPhase.ABORTED):
            self.wake = True
        # COMPLETED is only ever set by the child itself; any other change of a
        # job we run may mean someone ended it. The payload does not say which
        # attempt changed (it may be our own requeue of an earlier one), so the
        # database is asked (_reconcile_own) before any child is stopped.
        if phase not in (JobPhase.EXECUTING, JobPhase.COMPLETED) and self._child_of(
            change.get("job_id")
        ):
            self.check_own = True

    # -- periodic work ---------------------------------------------------------

    def _next_deadline(self) -> float:
        now = time.monotonic()
        candidates = [now + 1.0]
        if self.conn is not None:
            claimable = self.wake and not self.stopping and self.health.may_claim(now)
            if claimable and self._idle_spares():
                candidates.append(now)
            candidates += [self.timers.poll, self.timers.heartbeat, self.timers.sweep]
            retry = self.health.next_attempt(after=now)
            if retry is not None:
                candidates.append(retry)
        else:
            candidates.append(self.timers.reconnect)
        for child in self.children.values():
            if child.ready is not None and not child.killed:
                candidates.append(child.forked + self.config.spare_ready_timeout)
            if child.deadline is not None and not child.killed:
                candidates.append(child.deadline + DEADLINE_GRACE)
            if child.stop_sent is not None and not child.killed:
                candidates.append(child.stop_sent + STOP_GRACE)
        if self.stop_deadline is not None:
            candidates.append(self.stop_deadline)
        if self.notifier.watchdog_interval:
            candidates.append(self.timers.watchdog)
        return min(candidates)

    def _periodic(self) -> None:
        """The database work that is due; each operation backs off on its own."""
        now = time.monotonic()
        if now >= self.timers.poll or self.check_own or self._retry_due(Operation.OWN_JOBS, now):
            if now >= self.timers.poll:
                self.timers.poll = now + self.config.poll_interval
                self.wake = True
            self._attempt(Operation.OWN_JOBS, self._reconcile_own)
        if now >= self.timers.heartbeat or self._retry_due(Operation.HEARTBEAT, now):
            self.timers.heartbeat = now + self.config.heartbeat_interval
            self._attempt(Operation.HEARTBEAT, self._heartbeat)
            self._attempt(Operation.DEAD_DAEMONS, self._reconcile_runners)
        elif self._retry_due(Operation.DEAD_DAEMONS, now):
            self._attempt(Operation.DEAD_DAEMONS, self._reconcile_runners)
        if now >= self.timers.sweep or self._retry_due(Operation.SWEEP, now):
            self.timers.sweep = now + self.config.sweep_interval
            self._attempt(Operation.SWEEP, self._sweep)
        if now >= self.timers.catalog or self._retry_due(Operation.CATALOG, now):
            self.timers.catalog = now + CATALOG_REFRESH
            self._attempt(Operation.CATALOG, self._refresh_catalog)
        if now >= self.timers.progress or self._retry_due(Operation.PROGRESS, now):
            self.timers.progress = now + PROGRESS_INTERVAL
            self._attempt(Operation.PROGRESS, self._record_progress)
        if self.pending_ends and self._retry_due(Operation.ENDINGS, now):
            self._attempt(Operation.ENDINGS, self._flush_pending_ends)
        if self.wake and not self.stopping and self.health.may_claim(now):
            self._attempt(Operation.CLAIM, self._claim)

    def _record_progress(self) -> None:
        """The rows and bytes each running job has written (and the rows it
        expects), for those that moved since last time: one statement for all
        (no database write per row)."""
        assert self.store is not None
        moved = [
            (child, child.progress.read())
            for child in self.children.values()
            if child.busy and child.still_ours and child.progress is not None
        ]
        moved = [(child, now) for child, now in moved if now != child.progress_recorded]
        if not moved:
            return
        self.store.record_progress(
            [
                (Attempt(child.job_id, child.attempt, self.instance), rows, written, expected)
                for child, (rows, written, expected) in moved
                if child.job_id is not None
            ]
        )
        for child, now in moved:
            child.progress_recorded = now

    def _heartbeat(self) -> None:
        assert self.store is not None
        running = self._running()
        queued = self.store.heartbeat(
            self.instance,
            running=running,
            max_jobs=self.config.max_jobs,
            stopping=self.stopping,
            usable_slots=self.health.usable_slots(
                max_jobs=self.config.max_jobs,
                running=running,
                ready_spares=len(self._idle_spares()),
            ),
            degraded=self.health.degraded(),
            reconnects=self.reconnects,
        )
        if queued is None:  # given up for dead while we were away: come back
            self.store.register_runner(
                self.instance,
                host=self.host,
                boot_id=self.boot,
                pid=os.getpid(),
                max_jobs=self.config.max_jobs,
            )
            queued = 0
        self.queued = queued
        self.notifier.status(self._status_text())

    def _status_text(self) -> str:
        state = "stopping, " if self.stopping else ""
        degraded = self.health.degraded()
        if degraded:
            state = f"degraded: {degraded}; {state}"
        return (
            f"{state}{self._running()} running, {self.queued} queued, {self.config.max_jobs} slots"
        )

    def _reconcile_runners(self) -> None:
        assert self.store is not None
        reconcile_runners(
            self.store,
            instance=self.instance,
            host=self.host,
            boot=self.boot,
            heartbeat_timeout=self.config.heartbeat_timeout,
            expire=self._may_expire_others(),
        )

    def _may_expire_others(self) -> bool:
        """Whether silent daemons elsewhere may be given up: only once this one has
        been connected for a heartbeat timeout. After an outage (a failover) every
        heartbeat is old; the daemons back later are not dead."""
        return time.monotonic() - self.connected_at >= float(self.config.heartbeat_timeout)

    def _reconcile_own(self) -> None:
        """Settle attempts claimed in our name that have no child and no pending
        ending; stop children whose attempt the database no longer has us
        running (a missed abort NOTIFY, a takeover)."""
        assert self.store is not None
        self.check_own = False
        by_job = {c.job_id: c for c in self.children.values() if c.job_id is not None}
        pending = {end.attempt.job_id for end in self.pending_ends}
        # A claim whose answer was lost (the connection broke) names a spare
        # that is still waiting: that attempt never started.
        waiting = {c.pid for c in self.children.values() if not c.busy}
        seen = self.store.runner_jobs(self.instance, list(by_job))
        for job_id, row in seen.items():
            if (
                job_id in by_job
                or job_id in pending
                or row["phase"] != JobPhase.EXECUTING
                or row["runner_instance"] != self.instance
            ):
                continue
            attempt = Attempt(job_id, row["attempts"], self.instance)
            had_child = row["runner_pid"] is not None and row["runner_pid"] not in waiting
            self._settle(attempt, unattended_ending(had_child=had_child, attempt=attempt.number))
        for job_id, child in by_job.items():
            now = seen.get(job_id)
            if (
                now is None
                or now["phase"] != JobPhase.EXECUTING
                or now["runner_instance"] != self.instance
                or now["attempts"] != child.attempt
            ):
                phase = now["phase"] if now else "deleted"
                self._stop_job(child, f"the job became {phase}")

    def _sweep(self) -> None:
        assert self.store is not None
        for job_id in self.store.abort_expired_jobs():
            log.info(
                "job.phase",
                job_id=job_id,
                phase=JobPhase.ABORTED.value,
                reason="destruction time reached",
            )
        for job_id in self.store.delete_expired_jobs():
            remove_job_dir(self.config.jobs_path, job_id)
            log.info("job.destroyed", job_id=job_id)
        for path in remove_orphaned_spool_files(self.config.jobs_path):
            log.info("daemon.orphan_removed", path=str(path))
        self.sweeps += 1
        if self.sweeps % ORPHAN_SWEEPS == 1:
            self._remove_orphaned_dirs()

    def _remove_orphaned_dirs(self) -> None:
        """Remove directories of jobs that no longer exist: destroyed or deleted
        by another host of a fleet, or by one that could not reach this host."""
        assert self.store is not None
        stale = stale_job_dirs(self.config.jobs_path, time.time() - ORPHAN_DIR_GRACE)
        for start in range(0, len(stale), 1000):
            batch = stale[start : start + 1000]
            existing = self.store.existing_jobs(batch)
            for job_id in batch:
                if job_id not in existing:
                    remove_job_dir(self.config.jobs_path, job_id)
                    log.info("job.files_removed", job_id=job_id, reason="the job no longer exists")

    def _warm_up(self) -> None:
        warm_up_for_children()

    def _refresh_catalog(self) -> None:
        assert self.conn is not None
        from tapd.runner import load_job_catalog, query_search_path

        try:
            self.catalog = load_job_catalog(self.conn)
        except ImportError:
            self.catalog = None
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:  # no TAP_SCHEMA yet: children load their own
            log.debug("daemon.catalog_unavailable", error=one_line(exc))
            self.catalog = None
        query_search_path(self.conn)
        _warm_type_names(self.conn)

    # -- jobs and children -----------------------------------------------------

    def _running(self) -> int:
        return sum(1 for c in self.children.values() if c.busy)

    def _spares(self) -> list[Child]:
        """Children without a job that can still be given one (ready or not)."""
        return [c for c in self.children.values() if not c.busy and c.pipe is not None]

    def _idle_spares(self) -> list[Child]:
        """Spares that are connected and waiting: a claim can name them."""
        return [c for c in self._spares() if c.backend_pid is not None]

    def _claim(self) -> None:
        """Claim one job per idle spare, recording the spare on it, and hand it over."""
        assert self.store is not None
        spares = self._idle_spares()
        if not spares:
            return
        jobs = self.store.claim_jobs(
            self.instance,
            self.host,
            len(spares),
            runners=[(c.pid, c.backend_pid) for c in spares],
            running_per_owner=self.config.running_per_owner,
            heartbeat_timeout=self.config.heartbeat_timeout,
        )
        if len(jobs) < len(spares):
            self.wake = False
        self.backlog = len(jobs) == len(spares)
        for job in jobs:
            spare = self.children.get(job.runner_pid) if job.runner_pid is not None else None
            if spare is None or spare.busy or spare.pipe is None:  # cannot happen: put it back
                self.store.requeue_jobs([job.attempt])
                self.wake = True
                continue
            self._assign(job, spare)

    def _spare_reported(self, pid: int) -> None:
        """A spare wrote its backend pid (connected: it can take a job), or failed."""
        child = self.children.get(pid)
        if child is None or child.ready is None:
            return
        try:
            data = os.read(child.ready, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        self._close_ready(child)
        if data.startswith(b"!"):  # it cannot connect, and says why; it exits 76
            child.failure = data[1:].decode(errors="replace").strip()
            return
        with contextlib.suppress(ValueError):
            child.backend_pid = int(data)  # nothing (end of file): it failed and exits
        if child.backend_pid is not None:
            self._succeeded(Operation.SPARES)  # spares connect (again)

    def _close_ready(self, child: Child) -> None:
        if child.ready is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(child.ready)
            os.close(child.ready)
            child.ready = None

    def _fork_spares(self) -> None:
        """Keep one child per free slot, forked and connected before it has a job;
        while spares cannot connect, one at a time after each back-off step."""
        if self.stopping or not self.health.due(Operation.SPARES, time.monotonic()):
            return
        probing = not self.health.healthy(Operation.SPARES)
        if probing and any(c.ready is not None for c in self.children.values()):
            return  # the probe of this step is still connecting
        while len(self.children) < self.config.max_jobs:
            self._fork_spare()
            if probing:
                return

    def _fork_spare(self) -> None:
        for dsn in (self.config.dsn, self.config.query_conninfo):
            if dsn:
                with contextlib.suppress(TapdError):
                    dsn_parameters(dsn)  # parsed here once, not in every child
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        ready_read, ready_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        spec = SpareSpec(
            instance=self.instance,
            config=self.config,
            parent_pid=os.getpid(),
            job_pipe=read_end,
            ready_pipe=ready_write,
            catalog=self.catalog,
            rehearse=not self.backlog,
            progress=ProgressSlot(),
        )
        # The child must not hold other children's pipes open (they would not
        # see end of file when retired) nor the daemon's signal pipe.
        inherited = [c.pipe for c in self.children.values() if c.pipe is not None]
        inherited += [c.ready for c in self.children.values() if c.ready is not None]
        inherited += [write_end, ready_read, self._wakeup_r, self._wakeup_w]
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            for fd in inherited:
                with contextlib.suppress(OSError):
                    os.close(fd)
            run_spare(spec)  # never returns
        os.close(read_end)
        os.close(ready_write)
        self.children[pid] = Child(
            pid=pid,
            pipe=write_end,
            ready=ready_read,
            forked=time.monotonic(),
            progress=spec.progress,
        )
        self._selector.register(ready_read, selectors.EVENT_READ, pid)

    def _assign(self, job: Any, spare: Child) -> None:
        now = time.monotonic()
        deadline = now + job.execution_duration if job.execution_duration > 0 else None
        assignment = Assignment(job.job_id, job.attempts, job.execution_duration, deadline, job)
        assert spare.pipe is not None
        try:
            os.write(spare.pipe, assignment.encode())
        except OSError:  # the spare died a moment ago, without the job: the next one takes it
            assert self.store is not None
            self.store.requeue_jobs([job.attempt])
            self.wake = True
            return
        finally:
            os.close(spare.pipe)
            spare.pipe = None
        spare.job_id = job.job_id
        spare.attempt = job.attempts
        spare.execution_duration = job.execution_duration
        spare.started = now
        spare.deadline = deadline
        log.info(
            "job.phase", job_id=job.job_id, phase=JobPhase.EXECUTING.value, runner_pid=spare.pid
        )

    def _retire_spares(self) -> None:
        """Idle spares end (they hold the old configuration, or we are stopping)."""
        for child in self._spares():
            assert child.pipe is not None
            os.close(child.pipe)
            child.pipe = None

    def _child_of(self, job_id: object) -> Child | None:
        if job_id is None:
            return None
        return next((c for c in self.children.values() if c.job_id == job_id), None)

    def _stop_job(self, child: Child, reason: str) -> None:
        """Stop a child whose attempt no longer holds its job (ended or taken
        elsewhere): SIGTERM now, SIGKILL after STOP_GRACE. Its ending will be
        refused, so the daemon records none for it."""
        child.still_ours = False
        self._signal_stop(child, signal.SIGTERM, reason)

    def _take_back(self, child: Child, reason: str) -> None:
        """Ask a child to give its job back (SIGUSR1; SIGKILL after STOP_GRACE):
        the attempt is requeued once the child is gone."""
        child.giving_back = True
        self._signal_stop(child, GIVE_BACK_SIGNAL, reason)

    def _signal_stop(self, child: Child, signum: int, reason: str) -> None:
        if child.stop_sent is not None:
            return
        child.stop_reason = reason
        child.stop_sent = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signum)
        log.debug("job.stop_signalled", job_id=child.job_id, runner_pid=child.pid, reason=reason)

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for child in list(self.children.values()):
            if not child.killed and child.ready is not None:
                self._check_spare_ready(child, now)
            if child.killed or not child.busy:
                continue
            if child.deadline is not None and now >= child.deadline + DEADLINE_GRACE:
                child.killed_at_deadline = True
            elif child.stop_sent is not None and now >= child.stop_sent + STOP_GRACE:
                child.killed_unresponsive = True
            else:
                continue
            self._kill(child)

    def _kill(self, child: Child) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except OSError as exc:  # pragma: no cover - EINTR is retried by Python
                if exc.errno == errno.EINTR:
                    continue
                raise
            if pid == 0:
                return
            if pid in self.children:
                self._spare_reported(pid)  # what it wrote before it exited, if unread
            child = self.children.pop(pid, None)
            if child is None:
                continue
            if child.pipe is not None:
                os.close(child.pipe)
            self._close_ready(child)
            if child.progress is not None:
                child.progress.close()
            self.wake = True
            code, signum = exit_cause(status)
            if not child.busy:
                self._spare_ended(child, code, signum)
            elif code != EXIT_DONE:
                self._child_died(child, code, signum)

    def _check_spare_ready(self, child: Child, now: float) -> None:
        """A spare that has not connected (and warmed up) in time is killed; a
        new one takes its slot after the back-off step this starts."""
        waited = now - child.forked
        limit = self.config.spare_ready_timeout
        if waited < limit:
            return
        child.killed_not_ready = True
        self._kill(child)
        log.warning("daemon.spare_not_ready", runner_pid=child.pid, waited_s=round(waited, 2))
        self._spare_failed(
            f"a spare did not become ready within {limit:g} s (connecting or warming up)"
        )

    def _spare_ended(self, child: Child, code: int | None, signum: int | None) -> None:
        """A spare that never got a job ended: back off if it could not connect."""
        if child.killed_not_ready:
            return  # killed by us, and said so
        if code == EXIT_SPARE_NO_DATABASE:
            if child.backend_pid is not None:  # the server closed its idle connection
                log.info("daemon.spare_disconnected", runner_pid=child.pid)
            else:
                self._spare_failed(child.failure or "a spare could not connect to the database")
        elif code != EXIT_DONE and not self.stopping:
            log.warning("daemon.spare_died", runner_pid=child.pid, exit_status=code, signal=signum)

    def _spare_failed(self, reason: str) -> None:
        """One back-off step for the spares, unless this step is already taken
        (the spares forked together fail together)."""
        if self.health.due(Operation.SPARES, time.monotonic()):
            self._failed(Operation.SPARES, CannotConnect(None, reason))

    def _child_died(self, child: Child, code: int | None, signum: int | None) -> None:
        """A child ended without recording its attempt's ending: decide it and
        record it now that the child is gone (its leftover files go first)."""
        assert child.job_id is not None
        attempt = Attempt(child.job_id, child.attempt, self.instance)
        with contextlib.suppress(OSError, ValueError):
            AttemptFiles(job_dir(self.config.jobs_path, child.job_id), child.attempt).discard()
        log.warning(
            "job.runner_died",
            job_id=child.job_id,
            attempt=child.attempt,
            runner_pid=child.pid,
            exit_status=code,
            signal=signum,
        )
        self._settle(attempt, child_ending(child.exit_facts(code, signum)))

    def _settle(self, attempt: Attempt, ending: Ending) -> None:
        """Record an ending decided for ``attempt`` (kept until the database takes it)."""
        if ending.disposition is Disposition.NONE:
            return
        self.pending_ends.append(PendingEnd(attempt, ending))
        self._attempt(Operation.ENDINGS, self._flush_pending_ends)

    def _flush_pending_ends(self) -> None:
        store = self.store
        assert store is not None
        while self.pending_ends:
            end = self.pending_ends[0]
            attempt, ending = end.attempt, end.ending
            if ending.disposition is Disposition.REQUEUE:
                done = bool(store.requeue_jobs([attempt]))  # ends its sessions too
            else:
                assert ending.phase is not None
                error = ErrorSummary(ending.message, has_detail=False)
                done = store.finish_job(attempt, ending.phase, error=error)
                if done:
                    store.terminate_job_backends(attempt.job_id)
            self.pending_ends.pop(0)
            self._log_settled(attempt, ending, done)

    def _log_settled(self, attempt: Attempt, ending: Ending, done: bool) -> None:
        fields: dict[str, Any] = {"job_id": attempt.job_id, "attempt": attempt.number}
        phase = (ending.phase or JobPhase.QUEUED).value
        if not done:
            reason = "the attempt no longer holds the job"
            log.info("job.end_refused", phase=phase, reason=reason, **fields)
        elif ending.disposition is Disposition.REQUEUE:
            log.info("job.phase", phase=phase, reason=ending.message, **fields)
            self.wake = True
        else:
            log.warning("job.phase", phase=phase, error=ending.message, **fields)

    # -- reload and shutdown ---------------------------------------------------

    def _reload(self) -> None:
        self.notifier.reloading()
        try:
            if self.reload_config is not None:
                new = self.reload_config()
                tapd_log.configure(new.level, new.format)
                self.config = new
                self.health.backoff = Backoff(cap=new.retry_backoff_max)
                self._retire_spares()  # new spares get the new configuration
            log.info(
                "daemon.reloaded",
                max_jobs=self.config.max_jobs,
                poll_interval=self.config.poll_interval,
                level=self.config.level,
            )
        except TapdError as exc:
            log.error("daemon.reload_failed", error=exc.message)
        self.timers.poll = 0.0
        self.wake = True
        self.notifier.ready(self._status_text())

    def _begin_shutdown(self, signum: int) -> None:
        if self.stopping:  # asked twice: no more grace
            self.stop_deadline = time.monotonic()
            return
        self.stopping = True
        self.stop_deadline = time.monotonic() + self.config.shutdown_grace
        self._retire_spares()
        self.notifier.stopping(self._status_text())
        log.info(
            "daemon.stopping",
            signal=signal.Signals(signum).name,
            running=self._running(),
            grace_s=self.config.shutdown_grace,
            policy=self.config.shutdown_policy,
        )
        if self.store is not None:
            self._guarded(Operation.HEARTBEAT, self._heartbeat)

    def _advance_shutdown(self) -> None:
        """After the grace period: abort what still runs, or ask the children to
        give their jobs back (requeued once each child is gone)."""
        if self.stop_deadline is None or time.monotonic() < self.stop_deadline:
            return
        self.stop_deadline = None
        running = [c for c in self.children.values() if c.busy and c.stop_sent is None]
        for child in running:
            assert child.job_id is not None
            if self.config.shutdown_policy == "requeue":
                self._take_back(child, "the daemon is stopping (requeue)")
            else:
                # ABORTED is final: no other attempt can overlap the stopping child.
                attempt = Attempt(child.job_id, child.attempt, self.instance)
                self._settle(attempt, finish(JobPhase.ABORTED, SHUTDOWN_ABORT))
                self._stop_job(child, "the daemon is stopping (abort)")

    def _watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval and time.monotonic() >= self.timers.watchdog:
            self.notifier.watchdog()
            self.timers.watchdog = time.monotonic() + interval


def run_daemon(config: Config, reload_config: Callable[[], Config] | None = None) -> int:
    """``tapd run``."""
    return RunnerDaemon(config, reload_config=reload_config).run()


__all__ = ["Child", "PendingEnd", "RunnerDaemon", "run_daemon", "warm_up_for_children"]
