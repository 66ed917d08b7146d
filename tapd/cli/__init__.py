"""The ``tapd`` command: one sub-command module per concern, errors as one line.

Each module in ``COMMAND_MODULES`` has ``register(subparsers)`` adding its
sub-commands; a sub-command's handler takes the parsed arguments and returns
the exit status. A ``TapdError`` becomes one line on stderr and its exit code;
nothing the user did should ever print a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tapd import __version__
from tapd.errors import TapdError

COMMAND_MODULES = (
    "tapd.cli.jobs",  # initdb, run, submit, jobs, show, abort, result, query
    "tapd.cli.status",  # status
    "tapd.cli.adql",  # adql check, adql translate
    "tapd.cli.catalog",  # publish, unpublish
    "tapd.cli.serve",  # serve, demo
    "tapd.cli.config",  # config
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tapd", description="TAP job runner for astronomical archives"
    )
    parser.add_argument("--version", action="version", version=f"tapd {__version__}")
    parser.add_argument(
        "--config", metavar="FILE", help="configuration file (default /etc/tapd/tapd.toml)"
    )
    parser.add_argument("--dsn", help="PostgreSQL connection string (overrides the configuration)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--log-format", choices=("auto", "console", "json", "journal"))
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except TapdError as exc:
        print(f"tapd: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return status
