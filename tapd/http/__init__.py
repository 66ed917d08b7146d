"""The TAP 1.1 / UWS 1.1 HTTP service (``tapd serve``).

``asgi_app(config)`` is the application uvicorn serves: ``/sync``, the UWS
job tree under ``/async``, VOSI ``/capabilities``, ``/availability`` and
``/tables`` under the configured base path. It creates and controls jobs in
the job store; runner daemons (``tapd run``) execute them.
"""

from tapd.http.app import asgi_app, create_app

__all__ = ["asgi_app", "create_app"]
