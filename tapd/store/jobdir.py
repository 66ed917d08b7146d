"""Where a job's files live: ``<jobs_dir>/<job_id>/``.

Layout of a job directory (shared by the runner, the HTTP service and the
sweeper; the HTTP service needs it on the same filesystem as the daemons):

    <job_id>/result.<ext>    the result (name from the writer; listed in the job row)
    <job_id>/error.xml       VOTable error document (QUERY_STATUS=ERROR) of a failed
                             or aborted job, when the runner could write one
    <job_id>/uploads/<part>  inline UPLOAD parts (``param:<part>``), stored at submission
    <job_id>/.tmp-*          files being written; renamed into place when complete

Runners write through ``AttemptFiles``: an attempt's temporaries carry its
number, it removes only those, and its result or error document is put in
place only inside its accepted ending (``tapd.store.JobStore.ending``).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
from dataclasses import dataclass
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
    try:
        return make_job_dir(jobs_dir, job_id)
    except OSError as exc:
        path = job_dir(jobs_dir, job_id)
        raise JobsDirError(f"cannot create job directory {path}: {exc.strerror or exc}") from None


def make_job_dir(jobs_dir: Path, job_id: str) -> Path:
    """The job's directory, created if missing (``OSError`` if impossible)."""
    path = job_dir(jobs_dir, job_id)
    path.mkdir(mode=0o750, exist_ok=True)
    return path


@dataclass(frozen=True)
class AttemptFiles:
    """The files one attempt of a job (``tapd.store.jobs.Attempt``) writes.

    Its temporaries are named after the attempt (``.tmp-<name>.attempt-<n>``),
    so an attempt removes only its own (``discard``), never those of an
    attempt that overlaps it. Its files become visible only through
    ``publish_result`` / ``publish_error_document``, which a runner calls
    inside its accepted ending, the job's row locked: an attempt that lost its
    job puts nothing in place, and what it publishes replaces whatever an
    earlier attempt may have left under the final names.
    """

    directory: Path
    attempt: int

    def temporary(self, name: str) -> Path:
        """Where this attempt writes ``name`` before it is complete."""
        return self.directory / f"{TEMP_PREFIX}{name}.attempt-{self.attempt}"

    def discard(self) -> None:
        """Remove this attempt's temporaries (and only those)."""
        for path in self.directory.glob(f"{TEMP_PREFIX}*.attempt-{self.attempt}"):
            path.unlink(missing_ok=True)

    def publish_result(self, temporary: Path, filename: str) -> None:
        """Put a complete result (written to ``temporary``) in place as ``filename``."""
        os.replace(temporary, self.directory / filename)
        (self.directory / ERROR_DOCUMENT).unlink(missing_ok=True)
        fsync_directory(self.directory)

    def publish_error_document(self, content: bytes) -> None:
        """Write ``error.xml`` (whole or not at all), and drop any result file."""
        temporary = self.temporary(ERROR_DOCUMENT)
        try:
            with open(temporary, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.directory / ERROR_DOCUMENT)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        for stale in self.directory.glob("result.*"):
            stale.unlink(missing_ok=True)
        fsync_directory(self.directory)


def fsync_directory(directory: Path) -> None:
    """Make the renames in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: errno values meaning the disk holding the job directory is full.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
#: errno values meaning the job directory cannot be written at all.
NOT_WRITABLE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def storage_failure_message(error: OSError) -> str:
    """What a user reads when the result could not be written into the job
    directory (the path is for the operator's log, not for the user)."""
    if error.errno in DISK_FULL:
        cause = "the disk holding the job directory is full"
    elif error.errno in NOT_WRITABLE:
        cause = "the job directory is not writable"
    else:
        cause = f"the job directory failed ({error.strerror or type(error).__name__})"
    return (
        f"The result could not be written because {cause}; this is a fault of the"
        " service, not of the query: submit the job again later."
    )


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
