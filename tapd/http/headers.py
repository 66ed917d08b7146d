"""Headers every answer carries, OPTIONS, the ``Allow`` list and CORS (``http.cors_origins``).

- ``X-Content-Type-Options: nosniff`` on every response: a browser must not
  guess a type for a result or an uploaded table served back.
- ``Allow`` lists the methods of every route matching the path (Starlette's
  own 405 names only the first matching route's methods, and tapd declares
  one route per method).
- OPTIONS on a known path answers 204 with ``Allow``; an unknown path is 404.
- CORS: when the request's ``Origin`` is one of ``http.cors_origins`` (or
  the list holds ``*``), responses carry ``Access-Control-Allow-Origin``, and
  a preflight OPTIONS is answered for GET, HEAD and POST. No credentials are
  ever allowed: the owner comes from a proxy header, not from cookies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tapd.http.responses import NO_STORE, problem

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Methods a cross-origin page may use (preflight answer).
CORS_METHODS = "GET, HEAD, POST"
#: How long a browser may cache a preflight answer, seconds.
CORS_MAX_AGE = "600"

_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(routes: Iterable[BaseRoute], path: str) -> list[str]:
    """Methods of every route whose path matches ``path`` (OPTIONS included when any)."""
    found: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.path_regex.match(path):
            found |= set(route.methods or ())
    if found:
        found.add("OPTIONS")
    return sorted(found, key=lambda m: (_ORDER.index(m) if m in _ORDER else len(_ORDER), m))


def cors_origin(origin: str | None, allowed: Sequence[str]) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for ``origin``, or None (no CORS)."""
    if not origin or not allowed:
        return None
    if "*" in allowed:
        return "*"
    return origin if origin in allowed else None


class ServiceHeaders:
    """ASGI middleware adding the headers above; answers OPTIONS itself."""

    def __init__(
        self, app: ASGIApp, routes: Callable[[], Iterable[BaseRoute]], cors_origins: Sequence[str]
    ) -> None:
        self.app = app
        self.routes = routes
        self.cors_origins = tuple(cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        allow_origin = cors_origin(origin, self.cors_origins)
        extra = [(b"x-content-type-options", b"nosniff")]
        if self.cors_origins:
            extra.append((b"vary", b"Origin"))
        if allow_origin is not None:
            extra.append((b"access-control-allow-origin", allow_origin.encode()))
        if scope["method"] == "OPTIONS":
            await self._options(scope, receive, send, extra, allow_origin is not None)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _options(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        extra: list[tuple[bytes, bytes]],
        cors: bool,
    ) -> None:
        methods = allowed_methods(self.routes(), scope["path"])
        if not methods:
            response = problem(f"there is no resource {scope['path']!r} in this TAP service", 404)
        else:
            response = Response(status_code=204, headers={"Allow": ", ".join(methods)})
            if cors:
                response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
                response.headers["Access-Control-Max-Age"] = CORS_MAX_AGE
                requested = _header(scope, b"access-control-request-headers")
                if requested:
                    response.headers["Access-Control-Allow-Headers"] = requested
        for key, value in extra:
            response.headers[key.decode()] = value.decode()
        response.headers.update(NO_STORE)
        await response(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None
