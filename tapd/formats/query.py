"""The statement a writer runs: the user's query wrapped in ``COPY (...) TO STDOUT``.

Shape (``row`` is the writer's per-row SQL over the normalised values)::

    COPY (SELECT <row> FROM (SELECT <normalised c0>, ... FROM (<query>) AS q(c0, ...)
          LIMIT <maxrec + 1>) AS v) TO STDOUT (<options>)

The inner ``LIMIT`` (or ``OFFSET 0`` without one) keeps PostgreSQL from
inlining the normalised values, so each is computed once per row however often
the row SQL uses it, and caps the rows at MAXREC+1 even when the translator did
not. Parameters are bound client-side (COPY takes none).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import psycopg

from tapd.columns import ColumnMeta
from tapd.formats.cells import Cell, classify, normalise_sql

#: Session settings the SQL-side formatting relies on, set for the transaction only.
OUTPUT_SETTINGS = {
    "client_encoding": "UTF8",
    "datestyle": "ISO, YMD",
    "extra_float_digits": "1",  # shortest text that reads back to the same float
    "bytea_output": "hex",
}


def sql_string(text: str) -> str:
    """A SQL string literal (works whatever standard_conforming_strings says)."""
    if "\\" in text:
        return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + text.replace("'", "''") + "'"


def sql_bytes(data: bytes) -> str:
    """A bytea literal."""
    return f"'\\x{data.hex()}'::bytea"


def _strip_statement(sql: str) -> str:
    """The query without trailing semicolons (it becomes a sub-select)."""
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def bind_parameters(conn: psycopg.Connection[Any], sql: str, params: Sequence[Any] | None) -> str:
    """The query with its parameters inlined as literals, psycopg's way."""
    if params is None:
        return sql
    return psycopg.ClientCursor(conn).mogrify(sql, params)


def output_settings_sql() -> str:
    """A statement fixing the settings that change how values print, for this transaction only."""
    assignments = ", ".join(
        f"set_config({sql_string(name)}, {sql_string(value)}, true)"
        for name, value in OUTPUT_SETTINGS.items()
    )
    return f"SELECT {assignments}"


def apply_output_settings(conn: psycopg.Connection[Any]) -> None:
    """Fix the output settings for this transaction (``describe`` does it too)."""
    conn.execute(output_settings_sql())


#: Type names by (database, oid), as format_type() prints them; built-in types (oid below
#: FirstNormalObjectId) have the same oid and name in every database.
_type_names: dict[tuple[str, int], str] = {}
_FIRST_NORMAL_OID = 16384


_database_keys: weakref.WeakKeyDictionary[psycopg.Connection[Any], str] = (
    weakref.WeakKeyDictionary()
)


def _database_key(conn: psycopg.Connection[Any]) -> str:
    key = _database_keys.get(conn)
    if key is None:
        key = _database_keys[conn] = f"{conn.info.host}:{conn.info.port}/{conn.info.dbname}"
    return key


def type_names(conn: psycopg.Connection[Any], oids: Sequence[int]) -> list[str]:
    """format_type() of each type oid; asks the database only for oids not seen before."""
    database = _database_key(conn)

    def key(oid: int) -> tuple[str, int]:
        return ("", oid) if oid < _FIRST_NORMAL_OID else (database, oid)

    missing = sorted({oid for oid in oids if key(oid) not in _type_names})
    if missing:
        rows = conn.execute(
            "SELECT oid::int8, format_type(oid, NULL) FROM pg_type WHERE oid = ANY(%s::oid[])",
            (missing,),
        ).fetchall()
        for oid, name in rows:
            _type_names[key(int(oid))] = name
    return [_type_names[key(oid)] for oid in oids]


def describe_statement(bound_sql: str) -> str:
    """A statement returning no rows and the columns of ``bound_sql``. ``WHERE false``
    over a sub-select the planner cannot flatten (``OFFSET 0``), not ``LIMIT 0``: the
    planner then skips the query's plan altogether, where ``LIMIT 0`` planned it
    whole, and for a large query (an aggregate or a crossmatch over millions of rows)
    JIT-compiled it too."""
    inner = f"SELECT * FROM (\n{_strip_statement(bound_sql)}\n) AS q OFFSET 0"
    return f"SELECT * FROM ({inner}) AS d WHERE false"


def run_alone(
    conn: psycopg.Connection[Any], statements: Sequence[str], query: str
) -> psycopg.Cursor[Any]:
    """Run ``statements`` (the caller's own), then ``query`` alone; the cursor of ``query``.

    Each goes through the extended protocol, whose Parse message takes exactly
    one statement: whatever text ``query`` holds, nothing can be stacked
    before or after it (``RESET ROLE; ...``, ``...; COMMIT; ...``), which a
    simple-protocol query string would run. With libpq's pipeline mode they
    all go in one round trip.
    """
    if psycopg.Pipeline.is_supported():
        with conn.pipeline():
            for statement in statements:
                conn.execute(statement)
            cur = conn.execute(query)
        return cur
    if statements:  # libpq < 14: the caller's statements in a round trip of their own
        conn.execute(";\n".join(statements))
    # binary results make psycopg use the extended protocol even without parameters
    cur = conn.cursor(binary=True)
    cur.execute(query)
    return cur


def describe(
    conn: psycopg.Connection[Any],
    bound_sql: str,
    columns: Sequence[ColumnMeta],
    *,
    prelude: Sequence[str] = (),
) -> tuple[Cell, ...]:
    """The writers' view of each result column (needs the types PostgreSQL returns).

    ``bound_sql`` has its parameters inlined (``bind_parameters``) and goes to
    PostgreSQL alone (``run_alone``); the same round trip runs ``prelude``
    (the caller's statements, one per item) and fixes the transaction's output
    settings (``output_settings_sql``).
    """
    described = run_alone(conn, [*prelude, output_settings_sql()], describe_statement(bound_sql))
    oids = [column.type_code for column in described.description or ()]
    if len(oids) != len(columns):
        raise ValueError(f"the query returns {len(oids)} columns but {len(columns)} are described")
    names = type_names(conn, oids)
    return tuple(
        classify(i, meta, name) for i, (meta, name) in enumerate(zip(columns, names, strict=True))
    )


def copy_statement(
    bound_sql: str,
    cells: Sequence[Cell],
    row_sql: Sequence[str],
    options: str,
    *,
    limit: int | None,
) -> str:
    """``COPY (SELECT <row_sql...> FROM <normalised, limited query>) TO STDOUT (<options>)``."""
    aliases = ", ".join(cell.ref for cell in cells)
    normalised = ", ".join(
        f"{normalise_sql(cell, 'q.' + cell.ref)} AS {cell.ref}" for cell in cells
    )
    fence = f"LIMIT {limit}" if limit is not None else "OFFSET 0"
    inner = f"SELECT {normalised} FROM (\n{_strip_statement(bound_sql)}\n) AS q({aliases}) {fence}"
    return f"COPY (SELECT {', '.join(row_sql)} FROM ({inner}) AS v) TO STDOUT ({options})"
