"""What the other hosts of a fleet ask this one for: the job files in its jobs directory.

Not part of TAP. Requests must carry this host's token (``tapd.peers``), which
only readers of the job store know; a client of the TAP service never needs
these routes (its requests for another host's files are relayed by the host
it asks).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from tapd.http.problems import Forbidden, HttpProblem, NotFound
from tapd.http.service import TapService, check_job_id, service_of
from tapd.log import get_logger
from tapd.peers import TOKEN_HEADER, is_job_file_name
from tapd.store.jobdir import remove_job_dir

log = get_logger(component="http")


class Conflict(HttpProblem):
    status = 409


async def _trusted(request: Request) -> TapService:
    service = service_of(request)
    token = request.headers.get(TOKEN_HEADER, "")
    if not token or not await service.trusted_token(token):
        raise Forbidden(f"this address serves other hosts of the fleet only ({TOKEN_HEADER})")
    return service


async def get_job_file(request: Request) -> Response:
    """GET fleet/jobs/{id}/{name}: a file of a job directory on this host."""
    service = await _trusted(request)
    job_id, name = request.path_params["job"], request.path_params["name"]
    check_job_id(job_id)
    path = service.jobs_dir / job_id / name
    if not is_job_file_name(name) or not path.is_file():
        raise NotFound(f"this host has no file {name!r} of job {job_id}")
    return FileResponse(path, media_type="application/octet-stream")


async def delete_job_dir(request: Request) -> Response:
    """DELETE fleet/jobs/{id}: remove the directory of a job that no longer exists."""
    service = await _trusted(request)
    job_id = request.path_params["job"]
    check_job_id(job_id)
    if await service.store(lambda s: s.existing_jobs([job_id])):
        raise Conflict(f"job {job_id} still exists: delete it first")
    remove_job_dir(service.jobs_dir, job_id)
    log.info("job.files_removed", job_id=job_id)
    return Response(status_code=204)
