"""``tapd publish`` and ``tapd unpublish``: what TAP_SCHEMA offers to users.

``tapd publish SCHEMA.TABLE [--metadata FILE]`` adds or refreshes a table or
view (metadata file format: see ``tapd.catalog``) and lets the query role read
it; ``tapd unpublish SCHEMA.TABLE`` takes it out again.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tapd.cli.context import load_cli_config, store_connection


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``publish`` and ``unpublish``."""
    publish = subparsers.add_parser("publish", help="publish a table or view in TAP_SCHEMA")
    publish.add_argument("table", metavar="SCHEMA.TABLE", help="the table, as PostgreSQL names it")
    publish.add_argument(
        "--metadata",
        metavar="FILE",
        type=Path,
        help="TOML file with descriptions, units, UCDs, utypes, xtypes",
    )
    publish.set_defaults(handler=_publish)

    unpublish = subparsers.add_parser("unpublish", help="remove a table from TAP_SCHEMA")
    unpublish.add_argument(
        "table", metavar="SCHEMA.TABLE", help="the table, as published or as PostgreSQL names it"
    )
    unpublish.set_defaults(handler=_unpublish)


def _publish(args: argparse.Namespace) -> int:
    from tapd.catalog import publish_table, read_metadata_file

    config = load_cli_config(args)
    metadata = read_metadata_file(args.metadata) if args.metadata else None
    with store_connection(config, application_name="tapd publish") as conn:
        table = publish_table(conn, args.table, metadata, config.query_role)
    size = f"{len(table.columns)} columns"
    if table.nrows is not None:
        size += f", about {table.nrows:,} rows"
    print(f"published {table.table_name} ({size}), readable by {config.query_role}")
    return 0


def _unpublish(args: argparse.Namespace) -> int:
    from tapd.catalog import unpublish_table

    config = load_cli_config(args)
    with store_connection(config, application_name="tapd unpublish") as conn:
        unpublish_table(conn, args.table, config.query_role)
    print(f"unpublished {args.table}")
    return 0
