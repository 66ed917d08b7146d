"""The named queries of ``queries.sql``, read once and bound to a schema name.

The SQL stays reviewable as SQL: ``-- name: NAME`` starts a query, the comment
lines under it say what it is for, and ``{schema}`` is replaced by the
configured schema name as a quoted identifier (never by user text).
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from tapd.errors import ConfigError

_NAME_LINE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def read_sql_file(filename: str) -> str:
    """The text of one of the package's .sql files."""
    return resources.files("tapd.store").joinpath(filename).read_text(encoding="utf-8")


def parse_named_queries(text: str) -> dict[str, str]:
    """``{name: sql}`` from a file of ``-- name:`` sections (comment lines dropped)."""
    parts = _NAME_LINE.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
        queries[name] = "\n".join(lines).strip()
    return queries


@functools.cache
def _raw_queries() -> dict[str, str]:
    return parse_named_queries(read_sql_file("queries.sql"))


_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema_name(schema: str) -> str:
    """The schema name, if it is a plain lower-case SQL identifier."""
    if not _SCHEMA_NAME.match(schema):
        raise ConfigError(
            f"database.schema must be a lower-case identifier (letters, digits, _), got {schema!r}"
        )
    return schema


def bind_schema(text: str, schema: str) -> bytes:
    """SQL text with ``{schema}`` replaced by ``schema`` as a quoted identifier."""
    quoted = '"' + check_schema_name(schema) + '"'
    return text.replace("{schema}", quoted).encode()


@functools.cache
def schema_queries(schema: str) -> dict[str, bytes]:
    """Every named query, bound to ``schema``."""
    return {name: bind_schema(text, schema) for name, text in _raw_queries().items()}


def query_names() -> frozenset[str]:
    return frozenset(_raw_queries())
