"""Running the HTTP service under uvicorn (``tapd serve``, ``tapd demo``)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import signal
from collections.abc import Callable

from psycopg import pq

from tapd import __version__
from tapd.config import Config
from tapd.errors import ConfigError
from tapd.examples import examples_file, read_examples
from tapd.http.app import asgi_app
from tapd.http.service import normalise_base_path
from tapd.log import get_logger
from tapd.store import require_current_schema
from tapd.store.connection import LinkTimeouts, connect
from tapd.url_allow import UrlRefused, parse_allow_list

log = get_logger(component="http")


def check_database(config: Config) -> None:
    """Refuse to start (one line, ``TapdError``) without a reachable, current job store,
    when /sync's sessions cannot log in as the query role, or with an examples file
    that cannot be read."""
    from tapd.runner import connect_query_session

    timeouts = LinkTimeouts.of(config)
    with connect(config.dsn, application_name="tapd http", timeouts=timeouts) as conn:
        require_current_schema(conn, config.schema)
    connect_query_session(config, application_name="tapd http sync").close()
    # A broken examples file is the operator's to fix: one line now, not a failed start-up.
    read_examples(examples_file(str(config.examples)))


def check_settings(config: Config) -> None:
    """Refuse to start (one line) with settings the service cannot use."""
    try:
        parse_allow_list(config.upload_url_allow)
    except UrlRefused as exc:
        raise ConfigError(f"http.upload_url_allow: {exc}") from None


def run_server(config: Config, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; ``on_ready(base_url)`` once the socket listens."""
    import uvicorn

    check_settings(config)
    check_database(config)
    # uvicorn's own loggers stay quiet: tapd logs requests as structlog events.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    loop_factory, loop_name = event_loop()
    server = uvicorn.Server(
        uvicorn.Config(
            asgi_app(config),
            host=config.host,
            port=config.port,
            http=http_parser(),
            lifespan="on",
            log_config=None,
            access_log=False,
            server_header=False,
            headers=[("Server", f"tapd/{__version__}")],
            timeout_keep_alive=30,
        )
    )
    # uvicorn stops gracefully on SIGINT/SIGTERM and (0.29+) then raises the signal
    # again under the handler it found; ours turns that into a normal return, so
    # callers' clean-up runs (tapd demo) and tapd serve exits 0 after a stop.
    previous = {sig: signal.signal(sig, _stop_serving) for sig in STOP_SIGNALS}
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_serve(server, config, on_ready, loop_name))
    except StopServing:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# uvloop and httptools are optional (the ``fast`` extra; Debian: python3-uvloop and
# python3-httptools, recommended): a /sync round trip is about 0.5 ms shorter with both.


def event_loop() -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """(loop factory, name): uvloop's loop when it is installed, else asyncio's own (None)."""
    try:
        import uvloop
    except ImportError:
        return None, "asyncio"
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory, "uvloop"


def http_parser() -> str:
    """uvicorn's HTTP implementation: the httptools parser when installed, else h11."""
    return "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


class StopServing(BaseException):
    """A stop signal arrived (raised from the signal handler after uvicorn shut down)."""


def _stop_serving(signum: int, frame: object) -> None:
    raise StopServing(signum)


async def _serve(
    server: object, config: Config, on_ready: Callable[[str], None] | None, loop_name: str
) -> None:
    serving = asyncio.ensure_future(server.serve())  # type: ignore[attr-defined]
    while not getattr(server, "started", False) and not serving.done():
        await asyncio.sleep(0.05)
    if getattr(server, "started", False):
        sockets = [s for srv in getattr(server, "servers", []) for s in srv.sockets]
        port = sockets[0].getsockname()[1] if sockets else config.port
        host = config.host if config.host not in ("0.0.0.0", "::") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        url = f"http://{host}:{port}{normalise_base_path(config.base_path)}"
        log.info("http.listening", url=url, loop=loop_name, http=http_parser(), psycopg=pq.__impl__)
        if on_ready is not None:
            on_ready(url)
    with contextlib.suppress(asyncio.CancelledError):
        await serving
