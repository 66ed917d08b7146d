"""What every sub-command needs: the configuration (file, environment, command
line) with logging set up, and a connection to the job store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import psycopg

from tapd import log
from tapd.config import Config, load_config
from tapd.store.connection import connect


def load_cli_config(args: argparse.Namespace, *, configure_logging: bool = True) -> Config:
    """The configuration with ``--dsn``, ``--log-level`` and ``--log-format`` applied."""
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
        log.configure(config.level, config.format)
    return config


def store_connection(config: Config, *, application_name: str = "tapd") -> psycopg.Connection[Any]:
    """An autocommit connection to the configured database (one clear line if impossible)."""
    return connect(config.dsn, application_name=application_name)
