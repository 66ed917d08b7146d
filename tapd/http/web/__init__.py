"""The service's web face for people: home page, table browser, query form, job pages,
and the DALI examples document. Templates in ``templates/``, CSS and JS in ``static/``."""

from __future__ import annotations

from starlette.routing import Route

from tapd.http.ownership import JOB_ID_PARAMETER, job_route
from tapd.http.web import examples_page, home, job_pages, query
from tapd.http.web.examples_page import publish_examples
from tapd.http.web.render import WEB_PATH, static


def routes(base: str) -> list[Route]:
    """The pages under the base path (``/web/...``), the home page and ``/examples``."""
    web = f"{base}{WEB_PATH}"
    return [
        Route(base or "/", home.home, methods=["GET"]),
        Route(f"{base}/", home.home, methods=["GET"]),
        Route(f"{base}/examples", examples_page.examples_document, methods=["GET"]),
        Route(
            f"{base}/examples/{{example_id}}/{{table}}",
            examples_page.example_upload,
            methods=["GET"],
        ),
        Route(f"{web}/static/{{name}}", static, methods=["GET"]),
        Route(f"{web}/tables", home.tables, methods=["GET"]),
        Route(f"{web}/query", query.show_form, methods=["GET"]),
        Route(f"{web}/query", query.post_form, methods=["POST"]),
        Route(f"{web}/jobs", job_pages.job_list, methods=["GET"]),
        # Job pages go through the owner check every job route passes (tapd.http.ownership).
        job_route(f"{web}/jobs/{{{JOB_ID_PARAMETER}}}", job_pages.job_page, ["GET"]),
        job_route(f"{web}/jobs/{{{JOB_ID_PARAMETER}}}", job_pages.job_action, ["POST"]),
    ]


__all__ = ["publish_examples", "routes"]
