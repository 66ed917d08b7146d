"""A table holding every type a published table can have, and helpers to run writers on it."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from tapd.columns import ColumnMeta
from tapd.devcluster import DevCluster
from tapd.formats import WriteSummary, resolve_format, write_result
from tapd.sqltypes import votable_type
from tests.conftest import create_database, drop_database

#: (column, PostgreSQL type) of the test table ``everything``.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "integer"),
    ("s", "smallint"),
    ("i", "integer"),
    ("b", "bigint"),
    ("r", "real"),
    ("d", "double precision"),
    ("n", "numeric"),
    ("flag", "boolean"),
    ("t", "text"),
    ("u", "text"),
    ("vc", "character varying(12)"),
    ("ch", "character(4)"),
    ("ts", "timestamp without time zone"),
    ("tstz", "timestamp with time zone"),
    ("dt", "date"),
    ("ia", "integer[]"),
    ("da", "double precision[]"),
    ("by", "bytea"),
    ("p", "spoint"),
    ("c", "scircle"),
    ("poly", "spoly"),
    ("box", "sbox"),
)

#: Rows as SQL value lists (id first). Edge values: extremes, NaN, infinities,
#: empty strings, characters that need quoting or escaping, non-ASCII text.
ROWS: tuple[str, ...] = tuple(
    ", ".join(values)
    for values in (
        (
            "1",
            "1",
            "2",
            "3",
            "1.5",
            "2.25",
            "3.125",
            "true",
            "'plain'",
            "'plain'",
            "'abc'",
            "'ab'",
            "'2024-01-02 03:04:05.123456'",
            "'2024-01-02 03:04:05+02'",
            "'2024-01-02'",
            "'{1,2,3}'",
            "'{1.5,-2.5}'",
            "'\\x00ff10'",
            "spoint(radians(10), radians(20))",
            "scircle(spoint(radians(30), radians(-40)), radians(0.5))",
            "spoly('{(0.1,0.2),(0.3,0.2),(0.2,0.4)}')",
            "sbox(spoint(radians(1), radians(2)), spoint(radians(3), radians(4)))",
        ),
        ("2", *["NULL"] * (len(COLUMNS) - 1)),
        (
            "3",
            "-32768",
            "-2147483648",
            "-9223372036854775808",
            "'NaN'",
            "'NaN'",
            "'NaN'",
            "false",
            "''",
            "''",
            "''",
            "''",
            "'1999-12-31 23:59:59'",
            "'1999-12-31 23:59:59.5+00'",
            "'0001-01-01'",
            "'{}'",
            "'{}'",
            "''",
            "spoint(0, radians(-90))",
            "scircle(spoint(0, 0), 0)",
            "NULL",
            "NULL",
        ),
        (
            "4",
            "32767",
            "2147483647",
            "9223372036854775807",
            "'Infinity'",
            "'-Infinity'",
            "12345678901234567890.5",
            "true",
            "E'comma, \"quote\" <tag> & amp\\\\back\\tslash'",
            "E'\u00e9t\u00e9 \u2013 \u65e5\u672c \U0001f600'",
            "'x,y\"z'",
            "'q\"'",
            "'2000-02-29 00:00:00'",
            "'2000-02-29 12:00:00-05'",
            "'2000-02-29'",
            "'{-2147483648,2147483647}'",
            "'{NaN,Infinity,-Infinity,5e-324,1.7976931348623157e308}'",
            "'\\x'",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
        ),
        (
            "5",
            "0",
            "0",
            "0",
            "'-Infinity'",
            "'Infinity'",
            "-0.0",
            "false",
            "E'line\\nbreak and\\r\\ncrlf'",
            "E'tab\\there'",
            "'   '",
            "'z'",
            "'1970-01-01 00:00:00'",
            "'1970-01-01 00:00:00+00'",
            "'1970-01-01'",
            "'{0}'",
            "'{1e-300}'",
            "'\\x41'",
            "NULL",
            "NULL",
            "NULL",
            "NULL",
        ),
    )
)

#: Columns that a catalogue would declare differently from the default mapping.
META_OVERRIDES = {"u": {"datatype": "unicodeChar"}}


def column_meta(name: str, pg_type: str) -> ColumnMeta:
    vo = votable_type(pg_type)
    meta = ColumnMeta(
        name,
        vo.datatype,
        vo.arraysize,
        vo.xtype,
        unit="deg" if name in ("p", "c") else None,
        ucd="meta.id" if name == "id" else None,
        description=f"column {name}",
    )
    return replace(meta, **META_OVERRIDES.get(name, {}))


METAS = tuple(column_meta(name, pg_type) for name, pg_type in COLUMNS)
QUERY = "SELECT * FROM everything ORDER BY id"


@pytest.fixture(scope="session")
def tables_dsn(pg_cluster: DevCluster) -> Iterator[str]:
    """One database with the test tables for every writer test (the writers only read)."""
    dsn = create_database(pg_cluster, "formats_tables")
    with psycopg.connect(dsn, autocommit=True) as setup:
        columns = ", ".join(f"{name} {pg_type}" for name, pg_type in COLUMNS)
        setup.execute(f"CREATE TABLE everything ({columns})")
        for row in ROWS:
            setup.execute(f"INSERT INTO everything VALUES ({row})")
        setup.execute("CREATE TABLE numbers AS SELECT i AS id FROM generate_series(1, 25) AS i")
    yield dsn
    drop_database(pg_cluster, "formats_tables")


@pytest.fixture
def conn(tables_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection inside a read-only transaction, as the runner hands it over."""
    with psycopg.connect(tables_dsn) as connection:
        connection.execute("SET TRANSACTION READ ONLY")
        yield connection


def run_writer(
    conn: psycopg.Connection[Any],
    fmt: str,
    *,
    sql: str = QUERY,
    params: Sequence[Any] | None = None,
    columns: Sequence[ColumnMeta] = METAS,
    maxrec: int | None = 1000,
    infos: Any = None,
) -> tuple[bytes, WriteSummary]:
    out = io.BytesIO()
    summary = write_result(
        conn, sql, params, columns, resolve_format(fmt), out, maxrec=maxrec, infos=infos
    )
    return out.getvalue(), summary


def same_float(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a):
        return math.isnan(b)
    return a == b


# -- the rows as they should read back ----------------------------------------------------

DEG = 180 / math.pi

#: Geometry values (degrees) of the rows, by id; pgsphere returns them as text to psycopg.
GEOMETRY = {
    1: {
        "p": [10.0, 20.0],
        "c": [30.0, -40.0, 0.5],
        "poly": [0.1 * DEG, 0.2 * DEG, 0.3 * DEG, 0.2 * DEG, 0.2 * DEG, 0.4 * DEG],
        "box": [1.0, 2.0, 3.0, 2.0, 3.0, 4.0, 1.0, 4.0],
    },
    3: {"p": [0.0, -90.0], "c": [0.0, 0.0, 0.0]},
}


def source_rows(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """The table's rows as Python values in the form every format must reproduce."""
    import datetime as dt
    from decimal import Decimal

    rows = []
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM everything ORDER BY id")
        names = [c.name for c in cur.description or ()]
        for values in cur.fetchall():
            row = dict(zip(names, values, strict=True))
            for name, value in row.items():
                if isinstance(value, Decimal):
                    row[name] = float(value)
                elif isinstance(value, dt.datetime) and value.tzinfo is not None:
                    row[name] = value.astimezone(dt.UTC).replace(tzinfo=None)
                elif isinstance(value, str) and name == "ch":
                    row[name] = value.rstrip(" ")
                elif isinstance(value, list):
                    row[name] = [float(v) if isinstance(v, Decimal) else v for v in value]
            for name in ("p", "c", "poly", "box"):
                row[name] = GEOMETRY.get(row["id"], {}).get(name)
            rows.append(row)
    return rows


def as_temporal(text: str, pg_type: str) -> Any:
    import datetime as dt

    if pg_type == "date":
        return dt.date.fromisoformat(text)
    return dt.datetime.fromisoformat(text)


def assert_same_rows(
    got: list[dict[str, Any]],
    expected: list[dict[str, Any]],
    *,
    empty_is_null: bool = False,
    ascii_char: bool = False,
    nan_is_null: bool = False,
) -> None:
    """Rows equal value by value (floats bit-exact, NaN equal NaN, geometry within 1e-9 deg).

    ``empty_is_null``: the format (or its reader) cannot tell an empty string/array from NULL.
    ``ascii_char``: ``char`` columns hold ASCII, non-ASCII characters read back as '?'.
    ``nan_is_null``: the reader masks NaN floats (astropy does for VOTable).
    """
    assert len(got) == len(expected)
    types = dict(COLUMNS)
    metas = {meta.name: meta for meta in METAS}
    for got_row, want_row in zip(got, expected, strict=True):
        for name, want in want_row.items():
            value = got_row[name]
            where = f"row id={want_row['id']} column {name}: got {value!r}, want {want!r}"
            if (
                empty_is_null
                and {type(want), type(value)} <= {str, list, bytes, type(None)}
                and (not want and not value)
            ):
                continue
            if nan_is_null and isinstance(want, float) and math.isnan(want) and value is None:
                continue
            if ascii_char and isinstance(want, str) and metas[name].datatype == "char":
                want = "".join(ch if ord(ch) < 128 else "?" for ch in want)
            if want is None or value is None:
                assert value is None and want is None, where
            elif name in GEOMETRY[1]:
                assert len(value) == len(want) and all(
                    abs(a - b) < 1e-9 for a, b in zip(value, want, strict=True)
                ), where
            elif isinstance(want, float):
                assert same_float(float(value), want), where
            elif isinstance(want, list) and want and isinstance(want[0], float):
                assert len(value) == len(want) and all(
                    same_float(a, b) for a, b in zip(value, want, strict=True)
                ), where
            elif types[name] in ("timestamp without time zone", "timestamp with time zone", "date"):
                assert (
                    as_temporal(value, types[name]) if isinstance(value, str) else value
                ) == want, where
            else:
                assert value == want, where
