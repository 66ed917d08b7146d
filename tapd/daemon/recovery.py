"""Reconciliation: no job stays EXECUTING without a live process behind it.

Three disagreements are settled, at start-up and periodically:
- a daemon on this host that is gone (its pid is dead, or the host rebooted)
  is removed from ``runners`` at once, without waiting for its heartbeat to
  expire; daemons elsewhere are removed when their heartbeat expires;
- attempts of removed daemons (orphans): requeued if their child never
  started, otherwise ended in ERROR and their database sessions terminated,
  each ending naming the orphaned attempt (``tapd.daemon.endings.orphan_ending``);
- between this daemon and the database: jobs it claimed but has no child for
  are requeued, children whose job was ended by someone else are stopped
  (that is how an abort NOTIFY that never arrived is caught up).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from tapd.daemon.endings import Disposition, orphan_ending
from tapd.log import get_logger
from tapd.store import ErrorSummary, JobPhase, JobStore, RunnerInfo

log = get_logger()


def boot_id(path: Path = Path("/proc/sys/kernel/random/boot_id")) -> str:
    """This boot of this machine (a pid from another boot means nothing)."""
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_local_runners(
    runners: Sequence[RunnerInfo],
    *,
    host: str,
    boot: str,
    me: str,
    alive: Callable[[int], bool] = process_alive,
) -> list[str]:
    """Instances registered for this host whose process is certainly gone."""
    dead = []
    for runner in runners:
        if runner.instance == me or runner.host != host:
            continue
        if runner.boot_id != boot or not alive(runner.pid):
            dead.append(runner.instance)
    return dead


def end_orphans(store: JobStore, me: str | None = None) -> list[str]:
    """Requeue or fail the attempts of daemons that are gone (never those of
    ``me``, the calling daemon, even if its own row lapsed); returns the ids of
    the jobs handled. Each ending names the orphaned attempt, so a job that
    moved on meanwhile is left alone."""
    handled = []
    for job in store.orphaned_jobs():
        if me is not None and job.runner_instance == me:
            continue
        ending = orphan_ending(had_child=job.runner_pid is not None, attempt=job.attempts)
        if ending.disposition is Disposition.REQUEUE:
            if store.requeue_jobs([job.attempt]):
                log.info(
                    "job.phase",
                    job_id=job.job_id,
                    attempt=job.attempts,
                    phase=JobPhase.QUEUED.value,
                    reason=ending.message,
                )
                handled.append(job.job_id)
            continue
        assert ending.phase is not None
        ended = store.finish_job(
            job.attempt, ending.phase, error=ErrorSummary(ending.message, has_detail=False)
        )
        if ended:
            store.terminate_job_backends(job.job_id)
            log.warning(
                "job.phase",
                job_id=job.job_id,
                attempt=job.attempts,
                phase=ending.phase.value,
                runner_pid=job.runner_pid,
                error=ending.message,
            )
            handled.append(job.job_id)
    return handled


def reconcile_runners(
    store: JobStore,
    *,
    instance: str,
    host: str,
    boot: str,
    heartbeat_timeout: float,
    expire: bool = True,
) -> list[str]:
    """Forget dead daemons (this host's at once, others' by heartbeat unless
    ``expire`` is False) and settle their jobs; returns the ids of the jobs handled."""
    dead = dead_local_runners(store.list_runners(), host=host, boot=boot, me=instance)
    gone = store.forget_runners(dead) if dead else []
    if expire:
        gone += store.expire_runners(heartbeat_timeout, keep=instance)
    for lost in gone:
        log.warning("runner.gone", instance=lost)
    return end_orphans(store, me=instance)
