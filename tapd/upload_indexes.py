"""Which positions of uploaded tables get a GiST index, and building them.

A crossmatch of an upload with a published catalog probes the catalog's
index: the translator puts the catalog's position left of ``<@``
(``tapd.adql.translator``), so an index on the upload would cost its build
(about 1.3 s per 100,000 rows) and serve nothing. Two uploads joined on
position are another matter: without an index on one of them every row of
one is compared with every row of the other. So when a request has several
uploads, each of at least ``INDEX_MIN_ROWS`` rows gets a GiST index on its
point columns and on the point of its ra/dec columns, the expressions
``POINT(ra, dec)`` and a point column translate to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql

#: Fewer rows than this: a scan of the upload per probe is cheap enough.
INDEX_MIN_ROWS = 5_000

_NUMERIC = ("smallint", "integer", "bigint", "real", "double precision")


@dataclass(frozen=True)
class PositionColumn:
    """What the choice needs to know about an uploaded column."""

    sql_name: str
    pg_type: str
    ucd: str | None


def indexed_positions(
    columns: Sequence[PositionColumn], rows: int, uploads: int
) -> list[tuple[str, ...]]:
    """What to index in an upload of ``rows`` rows in a request of ``uploads``: point
    columns as ``(name,)``, the point of right ascension and declination as ``(ra, dec)``."""
    if uploads < 2 or rows < INDEX_MIN_ROWS:
        return []
    found: list[tuple[str, ...]] = [(c.sql_name,) for c in columns if c.pg_type == "spoint"]
    pair = _ra_dec(columns)
    if pair is not None:
        found.append(pair)
    return found


def _ra_dec(columns: Sequence[PositionColumn]) -> tuple[str, str] | None:
    """The right ascension and declination columns: by UCD (``meta.main`` first), else
    the columns named ra and dec."""
    numeric = [c for c in columns if c.pg_type in _NUMERIC]
    for main in (True, False):
        ra = [c for c in numeric if _ucd_is(c, "pos.eq.ra", main)]
        dec = [c for c in numeric if _ucd_is(c, "pos.eq.dec", main)]
        if ra and dec:
            return ra[0].sql_name, dec[0].sql_name
    named = {c.sql_name.lower(): c.sql_name for c in numeric}
    if "ra" in named and "dec" in named:
        return named["ra"], named["dec"]
    return None


def _ucd_is(column: PositionColumn, word: str, main: bool) -> bool:
    words = [w.strip().lower() for w in (column.ucd or "").split(";")]
    return word in words and (not main or "meta.main" in words)


def create_position_indexes(conn: Any, table: str, positions: Sequence[tuple[str, ...]]) -> None:
    """GiST indexes on ``pg_temp.<table>`` (in the caller's read-write transaction), on the
    expressions the translator writes: the column, or ``spoint(radians(ra), radians(dec))``."""
    for position in positions:
        names = [sql.Identifier(name) for name in position]
        expression = (
            names[0]
            if len(names) == 1
            else sql.SQL("spoint(radians({}), radians({}))").format(*names)
        )
        conn.execute(
            sql.SQL("CREATE INDEX ON pg_temp.{} USING gist ({})").format(
                sql.Identifier(table), expression
            )
        )


def table_rows(conn: Any, table: str) -> int:
    """Rows of an analysed temporary table, from its statistics."""
    row = conn.execute(
        "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", [f"pg_temp.{table}"]
    ).fetchone()
    return max(0, int(row[0])) if row and row[0] is not None else 0


def index_upload_positions(conn: Any, tables: Sequence[Any]) -> None:
    """Index the positions of a request's uploaded tables (``CatalogTable``s of
    ``tapd.uploads``) where ``indexed_positions`` says so."""
    for table in tables:
        columns = [PositionColumn(c.sql_name, c.pg_type, c.meta.ucd) for c in table.columns]
        positions = indexed_positions(columns, table_rows(conn, table.sql_table), len(tables))
        create_position_indexes(conn, table.sql_table, positions)
