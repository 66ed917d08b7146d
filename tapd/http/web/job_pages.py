"""Job pages: one async job (phase, progress, query, parameters, times, error, results,
Abort) and the caller's job list with phase filters.

The job page is complete without JavaScript; with it, tapd.js follows the phase
through the UWS job resource's own WAIT (``?WAIT=-1&PHASE=<shown phase>``, which
blocks on the server until the phase changes) and reloads the page's content
when it does: no polling faster than the protocol.
"""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response

from tapd.http import responses
from tapd.http.controls import parse_phase_name
from tapd.http.jobs import callers_jobs, request_form
from tapd.http.ownership import checked_job
from tapd.http.problems import BadRequest
from tapd.http.service import service_of
from tapd.http.uws import display_parameters
from tapd.http.waiting import wait_for_phase_change
from tapd.http.web.render import WEB_PATH, check_same_origin, render_page
from tapd.store import Job
from tapd.store.jobdir import remove_job_dir
from tapd.store.jobs import progress_summary
from tapd.store.phases import ACTIVE_PHASES, FINAL_PHASES, USUAL_PHASES

#: Jobs the list shows at most (newest first).
LIST_LAST = 200


def job_context(request: Request, job: Job) -> dict[str, object]:
    service = service_of(request)
    job_url = service.job_url(request, job.job_id)
    return {
        "job": job,
        "job_url": job_url,
        "query": job.parameter("QUERY") or "",
        "parameters": [(k, v) for k, v in display_parameters(job.parameters) if k != "QUERY"],
        "active": job.phase in ACTIVE_PHASES,
        "abortable": job.phase not in FINAL_PHASES,
        "wait_max": int(service.config.wait_max),
        "progress": progress_summary(job, dt.datetime.now(dt.UTC)),
    }


async def job_page(request: Request) -> Response:
    """GET /web/jobs/{id}; ``wait=N`` first waits (at most ``wait_max`` s) for a phase change."""
    service = service_of(request)
    job = checked_job(request)
    wait_text = request.query_params.get("wait")
    if wait_text:
        try:
            wait = int(wait_text)
        except ValueError:
            raise BadRequest(f"wait must be a number of seconds, got {wait_text!r}") from None
        cap = float(service.config.wait_max)
        seconds = cap if wait < 0 else min(float(wait), cap)
        job_id = job.job_id
        job = await wait_for_phase_change(
            service.waiter,
            job_id,
            lambda: service.store(lambda s: s.get_job(job_id)),
            seconds,
            lambda current: current.phase in ACTIVE_PHASES,
        )
    return render_page(request, "job.html", job_context(request, job))


async def job_action(request: Request) -> Response:
    """POST /web/jobs/{id}: action=abort (back to the page) or action=delete (to the list)."""
    service = service_of(request)
    check_same_origin(request, service.base_url(request))
    job_id = checked_job(request).job_id
    form = await request_form(request, service)
    form.discard_files()
    action = form.last("action") or ""
    web = f"{service.base_url(request)}{WEB_PATH}"
    if action == "abort":
        await service.store(lambda s: s.abort_job(job_id))
        return responses.see_other(f"{web}/jobs/{job_id}")
    if action == "delete":
        await service.store(lambda s: s.delete_job(job_id))
        remove_job_dir(service.jobs_dir, job_id)
        return responses.see_other(f"{web}/jobs")
    raise BadRequest(f"action must be abort or delete, got {action!r}")


async def job_list(request: Request) -> Response:
    """GET /web/jobs: the caller's jobs, newest first; ``phase`` (repeatable) filters."""
    service = service_of(request)
    phases = [parse_phase_name(p) for p in request.query_params.getlist("phase")]
    jobs = await callers_jobs(request, service, phases=phases, last=LIST_LAST)
    context = {
        "jobs": jobs,
        "phases": USUAL_PHASES,
        "selected": set(phases),
        "last": LIST_LAST,
    }
    return render_page(request, "jobs.html", context)
