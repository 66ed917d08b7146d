"""UWS 1.1 documents: the job (``<uws:job>``) and the job list (``<uws:jobs>``).

Pure functions from store values to bytes. Element order, ``xsi:nil`` for
unset values and UTC times with ``Z`` follow the UWS 1.1 schema (App. B);
the namespace stays ``http://www.ivoa.net/xml/UWS/v1.0`` as the schema says,
and the documents carry ``version="1.1"`` so clients use WAIT.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from tapd.http.forms import PART_NAME
from tapd.http.xmltext import attr, text, utc_timestamp
from tapd.store.jobs import MULTI_VALUED_PARAMETERS, Job
from tapd.store.phases import JobPhase

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

#: Namespace of tapd's own elements in ``<uws:jobInfo>``.
TAPD_NS = "urn:tapd:job-info"

_NAMESPACES = f'xmlns:uws="{UWS_NS}" xmlns:xlink="{XLINK_NS}" xmlns:xsi="{XSI_NS}"'
_ROOT_ATTRS = f'{_NAMESPACES} version="1.1"'
_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


def _optional_time(name: str, moment: dt.datetime | None) -> str:
    if moment is None:
        return f'<uws:{name} xsi:nil="true"/>'
    return f"<uws:{name}>{utc_timestamp(moment)}</uws:{name}>"


def _owner(owner: str | None) -> str:
    if owner is None:
        return '<uws:ownerId xsi:nil="true"/>'
    return f"<uws:ownerId>{text(owner)}</uws:ownerId>"


def display_parameters(parameters: Mapping[str, tuple[str, ...]]) -> list[tuple[str, str]]:
    """One (name, value) per parameter: multi-valued ones (UPLOAD) joined by ``;`` (TAP 1.1 §2.7.6).

    No name appears twice, which taplint checks (TAP-18).
    """
    shown = []
    for name, values in parameters.items():
        if not values:
            continue
        if name in MULTI_VALUED_PARAMETERS:
            shown.append((name, ";".join(values)))
        else:
            shown.append((name, values[-1]))
    return shown


def uploaded_parts(parameters: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Names of the inline parts (``UPLOAD=table,param:part``) the job refers to, in order."""
    parts: list[str] = []
    for value in parameters.get("UPLOAD", ()):
        for item in value.split(";"):
            uri = item.partition(",")[2].strip()
            name = uri[len("param:") :] if uri.startswith("param:") else ""
            usable = PART_NAME.match(name) and name.upper() not in parameters
            if usable and name not in parts:
                parts.append(name)
    return parts


def parameters_element(parameters: Mapping[str, tuple[str, ...]], job_url: str) -> str:
    """``<uws:parameters>`` with one ``<uws:parameter>`` per name, plus each uploaded file
    as ``byReference`` to ``{job_url}/parameters/{part}`` (UWS 1.1 §2.2.2.4)."""
    items = [
        f'<uws:parameter id="{attr(name)}">{text(value)}</uws:parameter>'
        for name, value in display_parameters(parameters)
    ]
    items += [
        f'<uws:parameter id="{attr(part)}" byReference="true">'
        f"{text(job_url)}/parameters/{text(part)}</uws:parameter>"
        for part in uploaded_parts(parameters)
    ]
    return f"<uws:parameters>{''.join(items)}</uws:parameters>"


def results_element(job: Job, job_url: str) -> str:
    """``<uws:results>`` listing the job's result files under ``{job_url}/results/{id}``."""
    items = "".join(
        f'<uws:result id="{attr(r.result_id)}" xlink:type="simple"'
        f' xlink:href="{attr(job_url)}/results/{attr(r.result_id)}"'
        f' size="{r.size}" mime-type="{attr(r.mime_type)}"/>'
        for r in job.results
    )
    return f"<uws:results>{items}</uws:results>"


def progress_element(job: Job, now: dt.datetime) -> str:
    """How far an EXECUTING job has got, for ``<uws:jobInfo>``: seconds running,
    and the rows and bytes of its result written so far as its daemon last
    recorded them (every few seconds; absent until the first), with the rows
    PostgreSQL expects (``expected_rows``, when its plan said)."""
    if job.phase != JobPhase.EXECUTING or job.start_time is None:
        return ""
    seconds = max(0.0, (now - job.start_time).total_seconds())
    figures = f' seconds="{seconds:.1f}"'
    progress = job.progress
    if progress is not None:
        figures += (
            f' rows="{progress.rows}" bytes="{progress.bytes}"'
            f' recorded="{utc_timestamp(progress.recorded)}"'
        )
        if progress.expected_rows is not None:
            figures += f' expected_rows="{progress.expected_rows}"'
    return f'<tapd:progress xmlns:tapd="{TAPD_NS}"{figures}/>'


def job_body(job: Job, job_url: str, now: dt.datetime | None = None) -> str:
    """The children of ``<uws:job>`` in schema order (without the root element);
    ``now`` (default: the clock) for the progress of a running job."""
    parts = [f"<uws:jobId>{text(job.job_id)}</uws:jobId>"]
    if job.run_id is not None:
        parts.append(f"<uws:runId>{text(job.run_id)}</uws:runId>")
    parts += [
        _owner(job.owner),
        f"<uws:phase>{job.phase.value}</uws:phase>",
        _optional_time("quote", job.quote),
        f"<uws:creationTime>{utc_timestamp(job.creation_time)}</uws:creationTime>",
        _optional_time("startTime", job.start_time),
        _optional_time("endTime", job.end_time),
        f"<uws:executionDuration>{int(job.execution_duration)}</uws:executionDuration>",
        _optional_time("destruction", job.destruction),
        parameters_element(job.parameters, job_url),
        results_element(job, job_url),
    ]
    if job.error is not None:
        has_detail = "true" if job.error.has_detail else "false"
        parts.append(
            f'<uws:errorSummary type="{attr(job.error.type)}" hasDetail="{has_detail}">'
            f"<uws:message>{text(job.error.message)}</uws:message></uws:errorSummary>"
        )
    progress = progress_element(job, now or dt.datetime.now(dt.UTC))
    if progress:
        parts.append(f"<uws:jobInfo>{progress}</uws:jobInfo>")
    return "".join(parts)


def job_document(job: Job, job_url: str, now: dt.datetime | None = None) -> bytes:
    """The UWS job document of ``job``, whose URL is ``job_url``."""
    body = job_body(job, job_url, now)
    return f"{_DECLARATION}<uws:job {_ROOT_ATTRS}>{body}</uws:job>\n".encode()


def parameters_document(job: Job, job_url: str) -> bytes:
    """The ``/parameters`` child: a ``<uws:parameters>`` root element."""
    body = parameters_element(job.parameters, job_url).removeprefix("<uws:parameters>")
    return f"{_DECLARATION}<uws:parameters {_NAMESPACES}>{body}\n".encode()


def results_document(job: Job, job_url: str) -> bytes:
    """The ``/results`` child: a ``<uws:results>`` root element."""
    body = results_element(job, job_url).removeprefix("<uws:results>")
    return f"{_DECLARATION}<uws:results {_NAMESPACES}>{body}\n".encode()


def job_list_document(jobs: Iterable[Job], async_url: str) -> bytes:
    """The job list: one ``<uws:jobref>`` per job, linking to ``{async_url}/{id}``."""
    refs = []
    for job in jobs:
        run_id = f"<uws:runId>{text(job.run_id)}</uws:runId>" if job.run_id is not None else ""
        refs.append(
            f'<uws:jobref id="{attr(job.job_id)}" xlink:type="simple"'
            f' xlink:href="{attr(async_url)}/{attr(job.job_id)}">'
            f"<uws:phase>{job.phase.value}</uws:phase>{run_id}{_owner(job.owner)}"
            f"<uws:creationTime>{utc_timestamp(job.creation_time)}</uws:creationTime>"
            "</uws:jobref>"
        )
    return f"{_DECLARATION}<uws:jobs {_ROOT_ATTRS}>{''.join(refs)}</uws:jobs>\n".encode()
