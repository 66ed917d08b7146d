"""What every sub-command needs: the configuration (file, environment, command
line) with logging set up, and a connection to the job store.

Command modules import psycopg, structlog and the rest of tapd only inside
the handlers that use them, so ``tapd COMMAND --help`` and a short job command
start quickly (``bench/cli_latency.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    from tapd.config import Config


def load_cli_config(args: argparse.Namespace, *, configure_logging: bool = True) -> Config:
    """The configuration with ``--dsn``, ``--log-level`` and ``--log-format`` applied."""
    from tapd.config import load_config

    config = load_config(Path(args.config) if getattr(args, "config", None) else None)
    overrides: dict[str, Any] = {}
    if getattr(args, "dsn", None):
        overrides["dsn"] = args.dsn
    if getattr(args, "log_level", None):
        overrides["level"] = args.log_level
    if getattr(args, "log_format", None):
        overrides["format"] = args.log_format
    if overrides:
        config = config.replace(**overrides)
    if configure_logging:
        cli_logger(config)
    return config


def cli_logger(config: Config) -> Any:
    """The structlog logger, its output set up now: a command that logs what it
    did after doing it calls this last, so the work (e.g. an abort) does not
    wait for structlog to be imported."""
    from tapd import log

    log.configure(config.level, config.format)
    return log.get_logger()


def store_connection(config: Config, *, application_name: str = "tapd") -> psycopg.Connection[Any]:
    """An autocommit connection to the configured database (one clear line if impossible)."""
    from tapd.store.connection import LinkTimeouts, connect

    return connect(config.dsn, application_name=application_name, timeouts=LinkTimeouts.of(config))
