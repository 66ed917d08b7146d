"""TAP /sync: run the query in this process with the runner's code and stream the result."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tapd.http.problems import ServiceUnavailable


async def sync_query(request: Request) -> Response:
    raise ServiceUnavailable("synchronous queries are not available yet")
