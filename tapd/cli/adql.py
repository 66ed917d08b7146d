"""``tapd adql check`` and ``tapd adql translate``: ADQL from the command line.

``check`` needs no database: it says whether QUERY is ADQL 2.1 (exit 0) or
prints the positioned error (exit 1); with ``--jsonl FILE`` it checks one
case per line (``{"id": ..., "query": ..., "udfs": [...]}``) and prints one
``{"id": ..., "valid": ..., "error": ...}`` line per case. ``translate``
prints the PostgreSQL the runner would execute for the database's published
tables.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from tapd.cli.context import load_cli_config, store_connection
from tapd.errors import TapdError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``adql check`` and ``adql translate``."""
    adql = subparsers.add_parser("adql", help="check or translate ADQL queries")
    commands = adql.add_subparsers(dest="adql_command", metavar="COMMAND", required=True)

    check = commands.add_parser("check", help="is QUERY valid ADQL 2.1? (no database needed)")
    check.add_argument(
        "query", nargs="?", help="the ADQL query ('-' or nothing: read standard input)"
    )
    check.add_argument(
        "--udf",
        action="append",
        default=[],
        metavar="SIGNATURE",
        help="declare a user-defined function, e.g. 'ivo_hasword(a VARCHAR, b VARCHAR) -> INTEGER'",
    )
    check.add_argument(
        "--jsonl",
        metavar="FILE",
        help='check many: one {"id", "query", "udfs"} object per line (- for standard input)',
    )
    check.set_defaults(handler=_check)

    translate = commands.add_parser("translate", help="print the PostgreSQL for QUERY")
    translate.add_argument(
        "query", nargs="?", help="the ADQL query ('-' or nothing: read standard input)"
    )
    translate.add_argument("--dsn", default=argparse.SUPPRESS, help="PostgreSQL connection string")
    translate.add_argument(
        "--udf",
        action="append",
        default=[],
        metavar="SIGNATURE",
        help="declare a user-defined function (besides the configured ones)",
    )
    translate.add_argument(
        "--maxrec", type=int, metavar="N", help="cap the rows as the runner would (MAXREC)"
    )
    translate.set_defaults(handler=_translate)


def _query_text(query: str | None) -> str:
    if query is None or query == "-":
        return sys.stdin.read()
    return query


def _check(args: argparse.Namespace) -> int:
    from tapd.adql import parse_adql

    if args.jsonl is not None:
        if args.query is not None:
            raise TapdError("give either QUERY or --jsonl FILE, not both")
        _check_many(args.jsonl, args.udf, sys.stdout)
        return 0
    parse_adql(_query_text(args.query), tuple(args.udf))
    return 0


def _lines(path: str) -> Iterator[tuple[int, str]]:
    if path == "-":
        yield from enumerate(sys.stdin, start=1)
        return
    try:
        with Path(path).open(encoding="utf-8") as handle:
            yield from enumerate(handle, start=1)
    except OSError as exc:
        raise TapdError(f"cannot read {path}: {exc.strerror}") from None


def _check_many(path: str, udfs: Sequence[str], out: IO[str]) -> None:
    import json

    from tapd.adql import AdqlError, parse_adql

    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            case: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TapdError(f"{path} line {number}: not JSON ({exc.msg})") from None
        if not isinstance(case, dict) or not isinstance(case.get("query"), str):
            raise TapdError(f'{path} line {number}: expected an object with a "query" string')
        case_udfs = case.get("udfs") or []
        if not isinstance(case_udfs, list) or not all(isinstance(u, str) for u in case_udfs):
            raise TapdError(f'{path} line {number}: "udfs" must be a list of signatures')
        try:
            parse_adql(case["query"], (*udfs, *case_udfs))
            result = {"id": case.get("id"), "valid": True, "error": None}
        except AdqlError as exc:
            result = {"id": case.get("id"), "valid": False, "error": str(exc)}
        out.write(json.dumps(result) + "\n")
    out.flush()


def _translate(args: argparse.Namespace) -> int:
    import json

    from tapd.adql import translate_adql
    from tapd.catalog import load_catalog

    config = load_cli_config(args)
    if args.maxrec is not None and args.maxrec < 0:
        raise TapdError("--maxrec must not be negative")
    text = _query_text(args.query)
    with store_connection(config, application_name="tapd adql translate") as conn:
        catalog = load_catalog(conn)
    udfs = (*config.udfs, *args.udf)
    limit = None if args.maxrec is None else args.maxrec + 1
    translation = translate_adql(text, catalog, limit=limit, udfs=udfs)
    print(translation.sql)
    if translation.params:
        print("-- parameters: " + json.dumps(list(translation.params)))
    return 0
