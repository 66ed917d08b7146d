"""HTTP-level problems: a user error with the status code it is answered with.

Raised anywhere below an endpoint; the app turns them into a short
``text/plain`` answer (UWS, VOSI) or a VOTable error document (/sync).
"""

from __future__ import annotations

from tapd.errors import TapdError


class HttpProblem(TapdError):
    """A request the service refuses; ``status`` is the HTTP status code."""

    status: int = 400


class BadRequest(HttpProblem):
    status = 400


class Forbidden(HttpProblem):
    status = 403


class NotFound(HttpProblem):
    status = 404


class MethodNotAllowed(HttpProblem):
    status = 405


class PayloadTooLarge(HttpProblem):
    status = 413


class UnsupportedMediaType(HttpProblem):
    status = 415


class ServiceUnavailable(HttpProblem):
    status = 503
