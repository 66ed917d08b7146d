"""Reconciliation: no job stays EXECUTING without a live process behind it.

Three disagreements are settled, at start-up and periodically:
- a daemon on this host that is gone (its pid is dead, or the host rebooted)
  is removed from ``runners`` at once, without waiting for its heartbeat to
  expire; daemons elsewhere are removed when their heartbeat expires;
- jobs of removed daemons (orphans): requeued if their child never started,
  otherwise ended in ERROR, and their database sessions terminated;
- between this daemon and the database: jobs it claimed but has no child for
  are requeued, children whose job was ended by someone else are stopped
  (that is how an abort NOTIFY that never arrived is caught up).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from tapd.log import get_logger
from tapd.store import ErrorSummary, JobPhase, JobStore, RunnerInfo

log = get_logger()

#: A job requeued this many times (lost database, dead daemon) ends in ERROR instead.
MAX_ATTEMPTS = 3

ORPHAN_MESSAGE = (
    "The runner daemon running this job stopped unexpectedly; the job was stopped. Submit it again."
)


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
    """Requeue or fail the EXECUTING jobs of daemons that are gone (never those of
    ``me``, the calling daemon, even if its own row lapsed); returns their ids."""
    handled = []
    for job in store.orphaned_jobs():
        if me is not None and job.runner_instance == me:
            continue
        if job.runner_pid is None and job.attempts < MAX_ATTEMPTS:
            if store.requeue_jobs(job.runner_instance, [job.job_id]):
                log.info(
                    "job.phase",
                    job_id=job.job_id,
                    phase=JobPhase.QUEUED.value,
                    reason="its runner daemon is gone; the job had not started",
                )
                handled.append(job.job_id)
            continue
        ended = store.finish_job(
            job.job_id,
            job.runner_instance,
            JobPhase.ERROR,
            error=ErrorSummary(ORPHAN_MESSAGE, has_detail=False),
        )
        store.terminate_job_backends(job.job_id)
        if ended:
            log.warning(
                "job.phase",
                job_id=job.job_id,
                phase=JobPhase.ERROR.value,
                runner_pid=job.runner_pid,
                error=ORPHAN_MESSAGE,
            )
            handled.append(job.job_id)
    return handled


def reconcile_runners(
    store: JobStore, *, instance: str, host: str, boot: str, heartbeat_timeout: float
) -> list[str]:
    """Forget dead daemons (this host's at once, others' by heartbeat) and settle
    their jobs; returns the ids of the jobs handled."""
    dead = dead_local_runners(store.list_runners(), host=host, boot=boot, me=instance)
    gone = store.forget_runners(dead) if dead else []
    gone += store.expire_runners(heartbeat_timeout, keep=instance)
    for lost in gone:
        log.warning("runner.gone", instance=lost)
    return end_orphans(store, me=instance)
