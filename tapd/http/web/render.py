"""Rendering the web pages: Jinja2 templates, the security headers, the static files.

Every page is XHTML-compatible HTML (well-formed XML, so the DALI examples
document can share the layout), uses only the service's own stylesheet and
script (``Content-Security-Policy`` allows nothing but ``'self'``: no inline
script or style, no CDN) and works without JavaScript for its core flows.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from tapd import __version__
from tapd.http.problems import Forbidden, NotFound
from tapd.http.responses import NO_CACHE
from tapd.http.service import service_of

HERE = Path(__file__).parent

#: Where the pages live under the base URL (the TAP endpoints keep their standard names).
WEB_PATH = "/web"

#: Only the service's own files: no inline script or style, no other origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)
#: (``X-Content-Type-Options: nosniff`` comes with every answer, ``tapd.http.headers``.)
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, **NO_CACHE}
HTML_TYPE = "text/html; charset=utf-8"

#: The static files and their media types (an allow-list: names never reach the filesystem).
STATIC_TYPES = {
    "tapd.css": "text/css; charset=utf-8",
    "tapd.js": "text/javascript; charset=utf-8",
}


@functools.cache
def templates() -> Jinja2Templates:
    """The page templates (autoescaping HTML), loaded once per process."""
    return Jinja2Templates(directory=str(HERE / "templates"))


@functools.cache
def static_file(name: str) -> bytes:
    return (HERE / "static" / name).read_bytes()


def page_context(request: Request) -> dict[str, Any]:
    """What every page template gets: URLs of the service and its pages, the service's name."""
    service = service_of(request)
    base = service.base_url(request)
    web = base + WEB_PATH
    config = service.config
    return {
        "base": base,
        "web": web,
        "static": f"{web}/static",
        "version": __version__,
        "title": config.title,
        "has_examples": bool(service.examples),
    }


def render_page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    media_type: str = HTML_TYPE,
) -> Response:
    """The page ``template`` filled with the common context and ``context``."""
    body = templates().get_template(template).render({**page_context(request), **context})
    headers = {**PAGE_HEADERS, "Content-Type": media_type}
    return Response(body.encode(), status_code=status, headers=headers)


async def static(request: Request) -> Response:
    """GET /web/static/{name}: the stylesheet and the script (cached a day, revalidated)."""
    name = request.path_params["name"]
    media_type = STATIC_TYPES.get(name)
    if media_type is None:
        raise NotFound(f"there is no static file {name!r}")
    headers = {"Content-Type": media_type, "Cache-Control": "public, max-age=86400"}
    return Response(static_file(name), headers=headers)


def check_same_origin(request: Request, base_url: str) -> None:
    """Refuse a state-changing form post from another site (its ``Origin`` is not ours)."""
    origin = request.headers.get("origin")
    if origin is None:  # not a browser's cross-site post (browsers send Origin on POST)
        return
    own = {_origin(base_url), f"{request.url.scheme}://{request.url.netloc}"}
    if origin not in own:
        raise Forbidden(f"a form of {origin} cannot change jobs of this service")


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
