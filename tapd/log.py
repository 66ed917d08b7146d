"""structlog set-up: the one place that decides where log events go.

Events are stable names with key-value context (``log.info("job.claimed",
job_id=...)``). Output is chosen once by ``configure``: console lines, JSON
lines, or journald's native protocol (see ``tapd.journal``) under systemd.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def choose_format(requested: str) -> str:
    """``auto`` means journal when systemd connected our output to journald."""
    if requested != "auto":
        return requested
    return "journal" if os.environ.get("JOURNAL_STREAM") else "console"


class _CurrentStderr:
    """``sys.stderr`` as it is when an event is written, not when ``configure`` ran: whoever
    replaced the stream since (a test's capture, a daemon redirecting its output) gets the
    events, and a replaced stream that was closed is never written to."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Route every structlog event for this process; safe to call again (SIGHUP)."""
    fmt = choose_format(fmt)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt == "json":
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        logger_factory: Any = structlog.WriteLoggerFactory(_CurrentStderr())  # type: ignore[arg-type]
    elif fmt == "journal":
        from tapd.journal import JournalLoggerFactory, journal_renderer

        processors += [structlog.processors.format_exc_info, journal_renderer]
        logger_factory = JournalLoggerFactory()
    else:
        processors += [structlog.dev.ConsoleRenderer(colors=False)]
        logger_factory = structlog.WriteLoggerFactory(_CurrentStderr())  # type: ignore[arg-type]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=logger_factory,
        cache_logger_on_first_use=False,
    )


def get_logger(**context: Any) -> Any:
    """A structlog logger with ``context`` bound; lazy, so a module-level logger
    follows later ``configure`` calls (level, output)."""
    return structlog.get_logger(**context)
