"""``tapd initdb | run | submit | jobs | show | abort | result | query``: the job
store, the runner daemon and the runner, from the command line."""

from __future__ import annotations

import argparse
import sys

from tapd.cli.context import load_cli_config, store_connection
from tapd.pgsphere import PgSphereMissing, install_pgsphere
from tapd.store import initialise_schema


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this module's sub-commands."""
    parser = subparsers.add_parser(
        "initdb",
        help="create or upgrade tapd's tables (idempotent), TAP_SCHEMA and pgsphere",
    )
    parser.set_defaults(handler=_initdb)


def _initdb(args: argparse.Namespace) -> int:
    config = load_cli_config(args)
    with store_connection(config) as conn:
        try:
            how = install_pgsphere(conn)
            if how != "present":
                print(f"pgsphere installed in the database ({how})")
        except PgSphereMissing as exc:
            print(f"tapd: warning: {exc}; geometry functions will not work", file=sys.stderr)
        result = initialise_schema(conn, config.schema)
        _ensure_tap_schema(conn, config.query_role)
    if result.before is None:
        print(f"created tapd schema {config.schema!r} (version {result.after})")
    elif result.before == result.after:
        print(f"tapd schema {config.schema!r} is up to date (version {result.after})")
    else:
        print(
            f"upgraded tapd schema {config.schema!r} from version {result.before} to {result.after}"
        )
    return 0


def _ensure_tap_schema(conn: object, query_role: str) -> None:
    """TAP_SCHEMA and the query role, once the catalog module provides them."""
    try:
        from tapd.catalog import ensure_tap_schema  # type: ignore[attr-defined]
    except ImportError:
        return
    ensure_tap_schema(conn, query_role)
