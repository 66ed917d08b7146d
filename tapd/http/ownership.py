"""The one owner check: every route under ``/async/{job_id}`` passes through ``owner_checked``.

A job route is declared with ``job_route(path, endpoint, methods)`` (or its
endpoint wrapped in ``owner_checked``): before the endpoint runs, the job id is
validated (404 for anything that cannot be a job id), the job is read (404 when
unknown) and its owner compared with the caller's (403 "belongs to another
user"), and only then is the request body read. The endpoint gets the job from
``checked_job(request)``. ``create_app`` refuses to start with a job route that
is not wrapped, and tests walk the route table with three callers.

Routes of other modules (e.g. HTML pages of a job) use the same wrapper.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tapd.http.service import service_of
from tapd.store import Job

#: The path parameter naming a job; a route whose path has it is a job route.
JOB_ID_PARAMETER = "job_id"

Endpoint = Callable[[Request], Awaitable[Response]]

_MARK = "__tapd_owner_checked__"
_STATE_KEY = "tapd_checked_job"


def owner_checked(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` behind the owner check (the job is then ``checked_job(request)``)."""
    if is_owner_checked(endpoint):
        return endpoint

    async def checked(request: Request) -> Response:
        service = service_of(request)
        job = await service.owned_job(request, request.path_params[JOB_ID_PARAMETER])
        setattr(request.state, _STATE_KEY, job)
        return await endpoint(request)

    checked.__name__ = getattr(endpoint, "__name__", "job_endpoint")
    checked.__doc__ = endpoint.__doc__
    setattr(checked, _MARK, True)
    return checked


def is_owner_checked(endpoint: Any) -> bool:
    return bool(getattr(endpoint, _MARK, False))


def checked_job(request: Request) -> Job:
    """The job the owner check read for this request (as it was then)."""
    job: Job | None = getattr(request.state, _STATE_KEY, None)
    if job is None:
        raise RuntimeError("checked_job() outside an owner_checked endpoint")
    return job


def job_route(path: str, endpoint: Endpoint, methods: Sequence[str]) -> Route:
    """A route under ``/async/{job_id}``: its endpoint always behind the owner check."""
    if "{" + JOB_ID_PARAMETER + "}" not in path:
        raise ValueError(f"job route {path!r} has no {{{JOB_ID_PARAMETER}}}")
    return Route(path, owner_checked(endpoint), methods=list(methods))


def is_job_path(path: str) -> bool:
    return "{" + JOB_ID_PARAMETER + "}" in path


def unchecked_job_routes(routes: Iterable[BaseRoute]) -> list[str]:
    """Paths of job routes whose endpoint skips the owner check (must be none)."""
    return [
        route.path
        for route in routes
        if isinstance(route, Route)
        and is_job_path(route.path)
        and not is_owner_checked(route.endpoint)
    ]
