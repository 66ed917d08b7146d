"""The UWS 1.1 job list ``/async`` and job tree ``/async/{id}/...`` (TAP 1.1 §2.2).

Every state change goes through ``tapd.store.JobStore`` (the database checks
the UWS state machine); answers are 303 redirects to absolute URLs, the job
document, text/plain atomics, or 4xx with one line saying what was wrong.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tapd.http import responses, uws
from tapd.http.callers import job_address, listing_filter, quota_for
from tapd.http.controls import (
    parse_execution_duration,
    parse_last,
    parse_maxrec,
    parse_phase_action,
    parse_phase_name,
    parse_timestamp,
    parse_wait,
)
from tapd.http.forms import Limits, RequestForm, read_form, request_spool
from tapd.http.ownership import checked_job
from tapd.http.problems import BadRequest, Forbidden, NotFound
from tapd.http.service import DELETE_REDIRECT_LAST, TapService, service_of
from tapd.http.waiting import wait_for_phase_change
from tapd.http.xmltext import utc_timestamp
from tapd.log import get_logger
from tapd.peers import (
    HostUnreachable,
    RemoteFile,
    copy_remote_file,
    delete_remote_job_dir,
    locate,
)
from tapd.store import Job, JobPhase, JobStore, PhaseConflict, new_job_id
from tapd.store.jobdir import (
    ERROR_DOCUMENT,
    TEMP_PREFIX,
    UPLOADS_DIR,
    ensure_job_dir,
    remove_job_dir,
)
from tapd.store.phases import ACTIVE_PHASES
from tapd.store.policy import destruction_for, execution_duration_for

log = get_logger(component="http")

#: Media type of uploaded tables served back (TAP 1.1 §2.7.6: uploads are VOTables).
UPLOAD_TYPE = "application/x-votable+xml"
#: Media type of error documents (DALI 4.2).
ERROR_TYPE = "application/x-votable+xml"

#: UWS control parameters: acted upon, never stored as job parameters (UWS-35).
CONTROL_PARAMETERS = frozenset({"PHASE", "EXECUTIONDURATION", "DESTRUCTION", "ACTION"})


async def request_form(request: Request, service: TapService) -> RequestForm:
    """All parameters of the request (query string and body), uploads spooled to the jobs dir."""
    config = service.config
    return await read_form(
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
        request.scope.get("query_string", b""),
        Limits(
            config.request_max_bytes,
            config.upload_max_bytes,
            config.query_max_bytes,
            config.parameter_max_bytes,
        ),
        service.jobs_dir,
        request_spool(request.scope),
    )


class JobRequest:
    """A creating or parameter-setting POST split into UWS controls and job parameters."""

    def __init__(self, form: RequestForm) -> None:
        self.form = form
        self.parameters = [(k, v) for k, v in form.fields if k.upper() not in CONTROL_PARAMETERS]
        maxrec = form.last("MAXREC")
        if maxrec is not None:
            parse_maxrec(maxrec)
        phase = form.last("PHASE")
        self.run = False
        if phase is not None:
            if parse_phase_action(phase).action != "RUN":
                raise BadRequest("PHASE with the job's parameters may only be RUN")
            self.run = True
        duration = form.last("EXECUTIONDURATION")
        self.execution_duration = parse_execution_duration(duration) if duration else None
        destruction = form.last("DESTRUCTION")
        self.destruction = (
            parse_timestamp(destruction, "DESTRUCTION") if destruction is not None else None
        )

    def store_parts(self, job_dir: Path) -> StoredParts:
        """Move uploaded parts into the job's uploads directory (``param:<name>``);
        files they replace are kept aside until ``StoredParts.keep`` or ``undo``."""
        stored = StoredParts()
        if not self.form.parts:
            return stored
        target = job_dir / UPLOADS_DIR
        target.mkdir(mode=0o750, exist_ok=True)
        try:
            for name, part in self.form.parts.items():
                stored.put(part.path, target / name)
        except BaseException:
            stored.undo()
            raise
        return stored


class StoredParts:
    """Part files moved into a job, with the files they replaced set aside."""

    def __init__(self) -> None:
        self.placed: list[tuple[Path, Path, Path | None]] = []  # (spool, target, aside)

    def put(self, spooled: Path, target: Path) -> None:
        aside: Path | None = target.with_name(f"{TEMP_PREFIX}old-{target.name}")
        try:
            os.replace(target, aside)  # type: ignore[arg-type]
        except FileNotFoundError:
            aside = None
        self.placed.append((spooled, target, aside))
        os.replace(spooled, target)

    def undo(self) -> None:
        """Put everything back as it was (the change was refused or failed)."""
        for spooled, target, aside in reversed(self.placed):
            with contextlib.suppress(OSError):
                if target.exists():
                    os.replace(target, spooled)
                if aside is not None:
                    os.replace(aside, target)
        self.placed.clear()

    def keep(self) -> None:
        """The change is committed: drop the replaced files."""
        for _, _, aside in self.placed:
            if aside is not None:
                aside.unlink(missing_ok=True)
        self.placed.clear()


async def list_jobs(request: Request) -> Response:
    """GET /async: the caller's jobs, with PHASE (repeatable), AFTER and LAST filters."""
    service = service_of(request)
    form = await request_form(request, service)
    form.discard_files()
    phases = [parse_phase_name(v) for v in form.values("PHASE")]
    after_text = form.last("AFTER")
    after = parse_timestamp(after_text, "AFTER") if after_text is not None else None
    last = parse_last(form.last("LAST"))
    jobs = await callers_jobs(request, service, phases=phases, after=after, last=last)
    return responses.xml(uws.job_list_document(jobs, f"{service.base_url(request)}/async"))


async def callers_jobs(
    request: Request,
    service: TapService,
    *,
    phases: Sequence[JobPhase] = (),
    after: dt.datetime | None = None,
    last: int | None = None,
) -> list[Job]:
    """The jobs the caller may list (theirs; anonymous: per ``http.anonymous_job_list``)."""
    scope = listing_filter(
        service.caller(request), anonymous_job_list=service.config.anonymous_job_list
    )
    return await service.store(
        lambda s: s.list_jobs(phases=phases, after=after, last=last, **scope)
    )


async def create_job(request: Request) -> Response:
    """POST /async: a new job with every parameter of the request; PHASE=RUN queues it at once."""
    service = service_of(request)
    form = await request_form(request, service)
    job = await submit_job(request, service, form)
    return responses.see_other(service.job_url(request, job.job_id))


async def submit_job(request: Request, service: TapService, form: RequestForm) -> Job:
    """A new job of the caller with the parameters and uploaded parts of ``form``
    (the parts are moved into the job's directory, or deleted on failure)."""
    config = service.config
    job_id = new_job_id()
    try:
        job_request = JobRequest(form)
        caller = service.caller(request)
        owner = caller.owner
        quota = quota_for(
            caller,
            limit=int(config.jobs_per_owner),
            anonymous_quota=config.anonymous_quota,
        )
        now = dt.datetime.now(dt.UTC)
        if form.parts:
            job_request.store_parts(ensure_job_dir(service.jobs_dir, job_id))
        job = await service.store(
            lambda s: s.create_job(
                job_request.parameters,
                execution_duration=execution_duration_for(job_request.execution_duration, config),
                destruction=destruction_for(now, job_request.destruction, config, now=now),
                owner=owner,
                queue=job_request.run,
                job_id=job_id,
                client_address=job_address(caller),
                quota=quota,
                upload_host=service.host if form.parts else None,
            )
        )
    except BaseException:
        form.discard_files()
        remove_job_dir(service.jobs_dir, job_id)  # uploads already moved there, if any
        raise
    log.info(
        "job.created", job_id=job.job_id, phase=job.phase.value, owner=owner, run_id=job.run_id
    )
    return job


async def get_job(request: Request) -> Response:
    """GET /async/{id}: the job document; WAIT blocks while the job is active (LISTEN/NOTIFY)."""
    service = service_of(request)
    job = checked_job(request)
    job_id = job.job_id
    form = await request_form(request, service)
    form.discard_files()
    wait = parse_wait(form.last("WAIT"))
    phase_text = form.last("PHASE")
    expected = parse_phase_name(phase_text) if phase_text is not None else None
    if not wait:
        return responses.xml(uws.job_document(job, service.job_url(request, job_id)))
    cap = float(service.config.wait_max)
    seconds = cap if wait < 0 else min(float(wait), cap)

    def blocks(current: Job) -> bool:
        return current.phase in ACTIVE_PHASES and (expected is None or current.phase == expected)

    job = await wait_for_phase_change(
        service.waiter, job_id, lambda: service.store(lambda s: s.get_job(job_id)), seconds, blocks
    )
    return responses.xml(uws.job_document(job, service.job_url(request, job_id)))


async def post_job(request: Request) -> Response:
    """POST /async/{id}: ACTION=DELETE deletes; PHASE=RUN/ABORT as on /phase; nothing else."""
    service = service_of(request)
    job_id = checked_job(request).job_id
    form = await request_form(request, service)
    form.discard_files()
    action = form.last("ACTION")
    if action is not None:
        if action.strip().upper() != "DELETE":
            raise BadRequest(f"ACTION must be DELETE, got {action!r}")
        return await _delete(request, service, job_id)
    if form.last("PHASE") is not None:
        return await _change_phase(request, service, job_id, form.last("PHASE"))
    raise Forbidden(
        f"parameters cannot be posted to the job itself: post them to {job_id}/parameters "
        "(or ACTION=DELETE to the job, PHASE=RUN or PHASE=ABORT to its phase)"
    )


async def delete_job(request: Request) -> Response:
    """DELETE /async/{id}: abort if running, forget the job and its files."""
    return await _delete(request, service_of(request), checked_job(request).job_id)


async def _delete(request: Request, service: TapService, job_id: str) -> Response:
    job = await service.store(lambda s: s.delete_job(job_id))
    remove_job_dir(service.jobs_dir, job_id)
    for host in {job.runner_host, job.upload_host} - {None, service.host}:
        assert host is not None
        await _delete_files_on(service, host, job_id)
    log.info("job.deleted", job_id=job_id)
    return responses.see_other(f"{service.base_url(request)}/async?LAST={DELETE_REDIRECT_LAST}")


async def _delete_files_on(service: TapService, host: str, job_id: str) -> None:
    """Ask ``host`` to remove the files it holds for a deleted job; if it cannot
    be asked now, its own sweep removes them later (their job is gone)."""
    what = f"the directory of job {job_id}"
    timeout = float(service.config.internal_timeout)
    try:
        address = await service.store(lambda s: locate(s, host, what))
        await run_in_threadpool(lambda: delete_remote_job_dir(address, job_id, timeout=timeout))
    except HostUnreachable as exc:
        log.warning("job.files_left", job_id=job_id, host=host, error=exc.message)


async def get_phase(request: Request) -> Response:
    job = await _job(request)
    return responses.text(job.phase.value)


async def post_phase(request: Request) -> Response:
    """POST /async/{id}/phase: PHASE=RUN queues, PHASE=ABORT aborts (303 to the job)."""
    service = service_of(request)
    job_id = checked_job(request).job_id
    form = await request_form(request, service)
    form.discard_files()
    return await _change_phase(request, service, job_id, form.last("PHASE"))


async def _change_phase(
    request: Request, service: TapService, job_id: str, value: str | None
) -> Response:
    action = parse_phase_action(value).action
    if action == "RUN":
        job = await service.store(lambda s: s.queue_job(job_id))
    else:
        job = await service.store(lambda s: s.abort_job(job_id))
    log.info("job.phase_requested", job_id=job_id, action=action, phase=job.phase.value)
    return responses.see_other(service.job_url(request, job_id))


async def get_execution_duration(request: Request) -> Response:
    job = await _job(request)
    return responses.text(str(int(job.execution_duration)))


async def post_execution_duration(request: Request) -> Response:
    """POST EXECUTIONDURATION=seconds: clamped to the service maximum (0 means the maximum)."""
    service = service_of(request)
    job_id = checked_job(request).job_id
    form = await _form(request, service)
    value = form.last("EXECUTIONDURATION")
    if value is None:
        raise BadRequest("POST to executionduration needs EXECUTIONDURATION=<seconds>")
    seconds = execution_duration_for(parse_execution_duration(value), service.config)
    await service.store(lambda s: s.set_execution_duration(job_id, seconds))
    return responses.see_other(service.job_url(request, job_id))


async def get_destruction(request: Request) -> Response:
    job = await _job(request)
    return responses.text(utc_timestamp(job.destruction) if job.destruction else "")


async def post_destruction(request: Request) -> Response:
    """POST DESTRUCTION=ISO 8601: clamped between a short grace period and the retention limit."""
    service = service_of(request)
    job = checked_job(request)
    form = await _form(request, service)
    value = form.last("DESTRUCTION")
    if value is None:
        raise BadRequest("POST to destruction needs DESTRUCTION=<ISO 8601 time>")
    requested = parse_timestamp(value, "DESTRUCTION")
    when = destruction_for(job.creation_time, requested, service.config)
    await service.store(lambda s: s.set_destruction(job.job_id, when))
    return responses.see_other(service.job_url(request, job.job_id))


async def get_quote(request: Request) -> Response:
    job = await _job(request)
    return responses.text(utc_timestamp(job.quote) if job.quote else "")


async def get_owner(request: Request) -> Response:
    job = await _job(request)
    return responses.text(job.owner or "")


async def get_parameters(request: Request) -> Response:
    service = service_of(request)
    job = await _job(request)
    return responses.xml(uws.parameters_document(job, service.job_url(request, job.job_id)))


async def get_parameter(request: Request) -> Response:
    """GET /parameters/{part}: a file uploaded inline with the job (its byReference value)."""
    service = service_of(request)
    job = await _job(request)
    part = request.path_params["name"]
    missing = f"job {job.job_id} has no uploaded parameter {part!r}"
    if part not in uws.uploaded_parts(job.parameters):
        raise NotFound(missing)
    what = f"the uploaded table {part!r} of job {job.job_id}"
    return await job_file(
        service,
        job,
        f"{UPLOADS_DIR}/{part}",
        job.upload_host,
        media_type=UPLOAD_TYPE,
        headers=responses.NO_CACHE,
        missing=missing,
        what=what,
    )


async def post_parameters(request: Request) -> Response:
    """POST /parameters while PENDING: single-valued names replace, UPLOAD accumulates (TAP-18)."""
    service = service_of(request)
    job = checked_job(request)
    job_id = job.job_id
    form = await request_form(request, service)
    try:
        job_request = JobRequest(form)
        if job.phase != JobPhase.PENDING:
            raise PhaseConflict(
                f"job {job_id} is {job.phase}: its parameters can only change while PENDING"
            )
        if form.parts and job.upload_host not in (None, service.host):
            await _gather_uploads(service, job, ensure_job_dir(service.jobs_dir, job_id))
        await service.store(lambda s: _change_pending_job(s, service, job_id, job_request))
        if job_request.run:
            await service.store(lambda s: s.queue_job(job_id))
    finally:
        form.discard_files()
    return responses.see_other(service.job_url(request, job_id))


def _change_pending_job(
    store: JobStore, service: TapService, job_id: str, change: JobRequest
) -> None:
    """Apply a parameter change (files, parameters, duration, destruction) in one
    transaction holding the job's row: a PHASE=RUN waits for it, and one that came
    first makes it a 403 with nothing changed, files included."""
    config = service.config
    stored = StoredParts()
    try:
        with store.pending_job_locked(job_id) as job:
            if change.form.parts:
                stored = change.store_parts(ensure_job_dir(service.jobs_dir, job_id))
            if change.parameters or change.form.parts:
                # This host now holds all of the job's inline uploads.
                upload_host = service.host if change.form.parts else None
                store.set_parameters(job_id, change.parameters, upload_host=upload_host)
            if change.execution_duration is not None:
                seconds = execution_duration_for(change.execution_duration, config)
                store.set_execution_duration(job_id, seconds)
            if change.destruction is not None:
                when = destruction_for(job.creation_time, change.destruction, config)
                store.set_destruction(job_id, when)
    except BaseException:
        stored.undo()
        raise
    stored.keep()


async def _gather_uploads(service: TapService, job: Job, job_dir: Path) -> None:
    """Copy the job's earlier uploads from the host that received them, so that
    this host, receiving more, holds them all."""
    assert job.upload_host is not None
    host = job.upload_host
    timeout = float(service.config.internal_timeout)
    what = f"an uploaded table of job {job.job_id}"
    address = await service.store(lambda s: locate(s, host, what))
    (job_dir / UPLOADS_DIR).mkdir(mode=0o750, exist_ok=True)
    for part in uws.uploaded_parts(job.parameters):
        name = f"{UPLOADS_DIR}/{part}"
        target = job_dir / name
        if not target.exists():
            await run_in_threadpool(
                copy_remote_file, address, job.job_id, name, target, timeout=timeout, what=what
            )


async def get_results(request: Request) -> Response:
    service = service_of(request)
    job = await _job(request)
    return responses.xml(uws.results_document(job, service.job_url(request, job.job_id)))


async def get_result(request: Request) -> Response:
    """GET /results/{id}: the result file (404 while the job has none)."""
    service = service_of(request)
    job = await _job(request)
    result_id = request.path_params["result_id"]
    entry = job.result(result_id)
    if entry is None:
        raise NotFound(f"job {job.job_id} has no result {result_id!r} (it is {job.phase})")
    missing = f"the result file of job {job.job_id} is gone"
    if Path(entry.filename).name != entry.filename:
        raise NotFound(missing)
    # The media type as recorded (the name the client used), set as a header so that
    # Starlette adds no charset to text/* types.
    headers = {**responses.NO_CACHE, "Content-Type": entry.mime_type}
    return await job_file(
        service,
        job,
        entry.filename,
        job.runner_host,
        media_type=entry.mime_type,
        headers=headers,
        missing=missing,
        what=f"the result of job {job.job_id}",
    )


async def get_error(request: Request) -> Response:
    """GET /error: the VOTable error document of a failed or aborted job (TAP-33)."""
    service = service_of(request)
    job = await _job(request)
    if job.phase not in (JobPhase.ERROR, JobPhase.ABORTED) or job.error is None:
        raise NotFound(f"job {job.job_id} has no error (it is {job.phase})")
    # The runner's document (with the query's INFOs) only when the ending that
    # stands wrote one (has_detail): a file any other attempt left is not this
    # job's error. Else the summary.
    if job.error.has_detail:
        try:
            return await job_file(
                service,
                job,
                ERROR_DOCUMENT,
                job.runner_host,
                media_type=ERROR_TYPE,
                headers=responses.NO_CACHE,
                missing="",
                what=f"the error document of job {job.job_id}",
            )
        except NotFound:  # no document (or gone meanwhile): the row's message
            pass
        except HostUnreachable as exc:  # the summary alone still says what went wrong
            log.warning("http.error_document_unreachable", job_id=job.job_id, error=exc.message)
    return Response(
        error_votable(job.error.message),
        media_type="application/x-votable+xml",
        headers=responses.NO_CACHE,
    )


async def job_file(
    service: TapService,
    job: Job,
    name: str,
    holder: str | None,
    *,
    media_type: str,
    headers: dict[str, str],
    missing: str,
    what: str,
) -> Response:
    """File ``name`` of the job's directory: from this host's jobs directory when
    it is there (the host that wrote it, or a shared directory), else streamed
    from ``holder``, the host whose jobs directory holds it; ``NotFound(missing)``
    if neither has it, ``HostUnreachable`` (503, naming the host) if ``holder``
    cannot be asked."""
    path = service.jobs_dir / job.job_id / name
    try:
        return responses.file_response(
            path, media_type=media_type, missing=missing, headers=headers
        )
    except NotFound:
        if holder is None or holder == service.host:
            raise
    remote = await service.remote_file(job, holder, name, what)
    if remote is None:
        raise NotFound(missing)
    if remote.length is not None:
        headers = {**headers, "Content-Length": remote.length}
    return StreamingResponse(_relay(remote), media_type=media_type, headers=headers)


async def _relay(remote: RemoteFile) -> AsyncIterator[bytes]:
    """The body of another host's answer, chunk by chunk. If that host falls
    silent midway the error propagates, so the client's connection is cut
    rather than its download looking complete."""
    try:
        while chunk := await run_in_threadpool(remote.read):
            yield chunk
    except HostUnreachable as exc:
        log.warning("http.relay_broken", host=remote.host, error=exc.message)
        raise
    finally:
        remote.close()


def error_votable(message: str, infos: Sequence[tuple[str, str]] = ()) -> bytes:
    """A VOTable error document (DALI 4.2) written by the formats package."""
    import io

    from tapd.formats import write_error_document

    out = io.BytesIO()
    write_error_document(out, message, infos=list(infos))
    return out.getvalue()


async def _job(request: Request) -> Job:
    return checked_job(request)


async def _form(request: Request, service: TapService) -> RequestForm:
    form = await request_form(request, service)
    form.discard_files()
    return form
