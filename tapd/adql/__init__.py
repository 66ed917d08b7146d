"""ADQL 2.1 for tapd: parse, check against TAP_SCHEMA, translate to PostgreSQL + pgsphere.

``parse_adql`` checks syntax only (no catalog); ``translate_adql`` does the
whole job and returns the SQL, its parameters and the result columns'
metadata. Every error a user can cause is an ``AdqlError`` (a ``TapdError``)
whose message is one sentence with line and column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tapd.adql.checker import check_query
from tapd.adql.errors import (
    AdqlError,
    AdqlNameError,
    AdqlSyntaxError,
    AdqlTypeError,
    AdqlUnknownFunction,
    AdqlUnsupported,
)
from tapd.adql.functions import UdfSignatureError, parse_udf
from tapd.adql.parser import MAX_DEPTH, MAX_QUERY_LENGTH, get_parser, parse_adql
from tapd.adql.translator import Translator
from tapd.columns import ColumnMeta

if TYPE_CHECKING:
    from tapd.catalog import Catalog

__all__ = [
    "MAX_DEPTH",
    "MAX_QUERY_LENGTH",
    "AdqlError",
    "AdqlNameError",
    "AdqlSyntaxError",
    "AdqlTypeError",
    "AdqlUnknownFunction",
    "AdqlUnsupported",
    "Translation",
    "UdfSignatureError",
    "parse_adql",
    "parse_udf",
    "translate_adql",
    "warm_up",
]


@dataclass(frozen=True)
class Translation:
    """PostgreSQL for one ADQL query.

    Execute ``sql`` with ``params`` (psycopg ``%s`` placeholders; always pass
    ``params``, even when empty, because ``%`` in quoted names is doubled).
    ``columns`` describes the result columns in order.
    """

    sql: str
    params: Sequence[object]
    columns: tuple[ColumnMeta, ...]


def translate_adql(
    text: str, catalog: Catalog, *, limit: int | None = None, udfs: Sequence[str] = ()
) -> Translation:
    """Parse, check and translate ``text`` against ``catalog``.

    ``limit`` is the row cap the caller wants (e.g. MAXREC + 1 to detect
    overflow); the query returns at most min(TOP, limit) rows.
    """
    if limit is not None and limit < 0:
        raise ValueError("limit must not be negative")
    query = parse_adql(text, udfs)
    found, outputs = check_query(query, catalog, udfs)
    sql = Translator(found).query(query, limit)
    return Translation(sql.text, list(sql.params), tuple(o.vtype.meta for o in outputs))


def warm_up() -> None:
    """Build the parser now (about 0.1 s), e.g. before forking workers."""
    get_parser()
