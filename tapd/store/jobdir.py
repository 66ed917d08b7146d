"""Where a job's files live: ``<jobs_dir>/<job_id>/``.

Layout of a job directory (shared by the runner, the HTTP service and the
sweeper; the HTTP service needs it on the same filesystem as the daemons):

    <job_id>/result.<ext>    the result (name from the writer; listed in the job row)
    <job_id>/error.xml       VOTable error document (QUERY_STATUS=ERROR) of a failed
                             or aborted job, when the runner could write one
    <job_id>/uploads/<part>  inline UPLOAD parts (``param:<part>``), stored at submission
    <job_id>/.tmp-*          files being written; renamed into place when complete
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from tapd.errors import TapdError

#: id of the one TAP result in a job's result list (TAP 1.1 §2.2: ``results/result``).
RESULT_ID = "result"
#: File name of a job's error document.
ERROR_DOCUMENT = "error.xml"
#: Sub-directory holding a job's inline upload parts.
UPLOADS_DIR = "uploads"
#: Prefix of files not yet complete.
TEMP_PREFIX = ".tmp-"
#: Multipart parts the HTTP service spools at the top of the jobs directory while a
#: request is read; moved into a job or removed when the request ends.
SPOOL_PREFIX = ".tmp-part-"
#: Seconds after which a spooled part is an orphan (of a killed service) for the sweep.
SPOOL_ORPHAN_AGE = 3600.0

#: Seconds before a job directory whose job does not exist is removed: the HTTP
#: service stores a new job's uploads in its directory just before the job's row,
#: and a directory that old without a row belongs to a job destroyed or deleted
#: elsewhere (by another host, or while this host was unreachable).
ORPHAN_DIR_GRACE = 300.0

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class JobsDirError(TapdError):
    """The jobs directory cannot be used."""

    exit_code = 2


def is_valid_job_id(job_id: str) -> bool:
    """True for ids that are safe as one path segment (no '/', '..', etc.)."""
    return bool(_JOB_ID.match(job_id))


def job_dir(jobs_dir: Path, job_id: str) -> Path:
    """The directory of one job (not created)."""
    if not is_valid_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return jobs_dir / job_id


def ensure_job_dir(jobs_dir: Path, job_id: str) -> Path:
    """The job's directory, created if missing (``JobsDirError`` if impossible)."""
    path = job_dir(jobs_dir, job_id)
    try:
        path.mkdir(mode=0o750, exist_ok=True)
    except OSError as exc:
        raise JobsDirError(f"cannot create job directory {path}: {exc.strerror or exc}") from None
    return path


def remove_job_dir(jobs_dir: Path, job_id: str) -> None:
    """Delete a job's directory and everything in it (missing is fine)."""
    shutil.rmtree(job_dir(jobs_dir, job_id), ignore_errors=True)


def remove_orphaned_spool_files(
    jobs_dir: Path, *, max_age: float = SPOOL_ORPHAN_AGE, now: float | None = None
) -> list[Path]:
    """Delete spooled parts older than ``max_age`` seconds (their request is long gone)."""
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        candidates = list(jobs_dir.glob(f"{SPOOL_PREFIX}*"))
    except OSError:
        return removed
    for path in candidates:
        try:
            if path.is_file() and now - path.stat().st_mtime > max_age:
                path.unlink()
                removed.append(path)
        except OSError:  # removed meanwhile, or not ours to remove: the next sweep retries
            continue
    return removed


def check_jobs_dir(jobs_dir: Path) -> None:
    """Make sure job directories can be created and written in ``jobs_dir``
    (by trying: permission bits say nothing when running as root)."""
    probe = jobs_dir / f"{TEMP_PREFIX}probe-{os.getpid()}"
    try:
        if not jobs_dir.is_dir():
            raise NotADirectoryError(
                20, "not a directory" if jobs_dir.exists() else "does not exist"
            )
        probe.mkdir()
        (probe / "f").write_bytes(b"")
    except OSError as exc:
        raise JobsDirError(
            f"job directory {jobs_dir} is not writable: {exc.strerror or exc}"
            " (set runner.jobs_dir or TAPD_JOBS_DIR)"
        ) from None
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def stale_job_dirs(jobs_dir: Path, changed_before: float) -> list[str]:
    """Job ids of the directories in ``jobs_dir`` last changed before
    ``changed_before`` (a ``time.time()``)."""
    found = []
    try:
        entries = os.scandir(jobs_dir)
    except OSError:
        return []
    with entries:
        for entry in entries:
            if not is_valid_job_id(entry.name):
                continue
            try:
                if entry.is_dir(follow_symlinks=False) and entry.stat().st_mtime < changed_before:
                    found.append(entry.name)
            except OSError:
                continue
    return found
