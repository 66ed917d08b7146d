"""The DALI examples document ``/examples`` (DALI 1.1 §2.3, TAP 1.1 §3.3) and the examples'
upload tables; the examples are checked against the catalog when the service starts."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tapd.errors import TapdError
from tapd.http.problems import NotFound
from tapd.http.service import TapService, service_of
from tapd.http.web.query import example_by_id
from tapd.http.web.render import PAGE_HEADERS, render_page
from tapd.log import get_logger

log = get_logger(component="http")

#: The RDFa vocabulary of DALI examples (DALI 1.1).
EXAMPLES_VOCABULARY = "http://www.ivoa.net/rdf/examples#"

VOTABLE_TYPE = "application/x-votable+xml"


def publish_examples(service: TapService) -> None:
    """Read the configured examples, keep those that translate against the catalog (logging
    the others) as ``service.examples``. A broken examples file stops the service; a
    catalog that cannot be read (no TAP_SCHEMA yet) leaves it without examples."""
    from tapd.examples import check_examples, examples_file, read_examples

    config = service.config
    path = examples_file(str(config.examples))
    examples = read_examples(path)
    try:
        with service.pool.connection() as conn:
            catalog = service.catalog(conn)
    except TapdError as exc:  # e.g. no TAP_SCHEMA yet: the service runs, without examples
        log.warning("examples.unchecked", error=exc.message, file=str(path))
        service.examples = ()
        return
    good, rejected = check_examples(
        examples, catalog, udfs=tuple(config.udfs), max_rows=int(config.upload_max_rows)
    )
    for failed in rejected:
        log.warning(
            "examples.rejected",
            example=failed.example.id,
            name=failed.example.name,
            error=failed.reason,
            file=str(path),
        )
    service.examples = good
    log.info("examples.published", count=len(good), rejected=len(rejected), file=str(path))


def upload_url(base_url: str, example: Any) -> str:
    return f"{base_url}/examples/{example.id}/{example.upload.table}.vot"


async def examples_document(request: Request) -> Response:
    """GET /examples: XHTML with RDFa, one ``typeof="example"`` element per example."""
    service = service_of(request)
    base = service.base_url(request)
    examples = [
        (example, upload_url(base, example) if example.upload else None)
        for example in service.examples or ()
    ]
    context = {"examples": examples, "vocabulary": EXAMPLES_VOCABULARY}
    return render_page(request, "examples.html", context)


async def example_upload(request: Request) -> Response:
    """GET /examples/{id}/{table}.vot: the table an example uploads (a VOTable)."""
    service = service_of(request)
    example = example_by_id(service, request.path_params["example_id"])
    table = request.path_params["table"]
    if example is None or example.upload is None or table != f"{example.upload.table}.vot":
        raise NotFound("no example has this upload table: /examples lists them")
    headers = {**PAGE_HEADERS, "Content-Type": VOTABLE_TYPE}
    return Response(example.upload.path.read_bytes(), headers=headers)
