"""Which side of a point-in-circle test gets the GiST index.

pgsphere can use an index on ``p`` only for ``p <@ scircle(c, r)``, never for
the circle's centre. "Is p within r of c" is symmetric, so the translator puts
on the left the side an index can serve: a catalog's column over an uploaded
table's, a table's over a constant, a bare column over a computed point. A
user who writes the crossmatch the other way round (the upload's point in a
circle round the catalog's position, as issue 15 quotes it) must not get a
scan of the whole catalog for each uploaded row.
"""

from __future__ import annotations

import pytest

from tapd.adql import translate_adql
from tapd.catalog import Catalog, CatalogColumn, CatalogTable
from tapd.columns import ColumnMeta
from tapd.sqltypes import votable_type

COLUMNS = (
    ("id", "bigint"),
    ("ra", "double precision"),
    ("dec", "double precision"),
    ("pos", "spoint"),
)


def _table(schema: str, name: str, sql_schema: str, sql_table: str) -> CatalogTable:
    columns = []
    for column, pg_type in COLUMNS:
        vo = votable_type(pg_type)
        meta = ColumnMeta(column, vo.datatype, arraysize=vo.arraysize, xtype=vo.xtype)
        columns.append(CatalogColumn(name=column, sql_name=column, pg_type=pg_type, meta=meta))
    return CatalogTable(
        schema_name=schema,
        table_name=f"{schema}.{name}",
        sql_schema=sql_schema,
        sql_table=sql_table,
        columns=tuple(columns),
    )


CATALOG = Catalog(
    tables=(
        _table("demo", "stars", "demo", "stars"),
        _table("TAP_UPLOAD", "pts", "pg_temp", "tap_upload_pts"),
    )
)

S_RADEC = 'spoint(radians("s"."ra"), radians("s"."dec"))'
U_RADEC = 'spoint(radians("u"."ra"), radians("u"."dec"))'
CONST = "spoint(radians(10), radians(20))"
JOIN = "SELECT u.id, s.id FROM TAP_UPLOAD.pts AS u JOIN demo.stars AS s ON "
CONE = "SELECT s.id FROM demo.stars AS s WHERE "

#: (condition as the user wrote it, what must stand left of <@)
CASES = [
    # the upload's point in a circle round the catalog's position: swapped
    (JOIN + "1 = CONTAINS(POINT(u.ra, u.dec), CIRCLE(s.ra, s.dec, 0.001))", S_RADEC),
    (JOIN + "1 = CONTAINS(POINT(u.ra, u.dec), CIRCLE(POINT(s.ra, s.dec), 0.001))", S_RADEC),
    (JOIN + "1 = CONTAINS(u.pos, CIRCLE(s.pos, 0.001))", '"s"."pos"'),
    (JOIN + "1 = INTERSECTS(CIRCLE(s.ra, s.dec, 0.001), POINT(u.ra, u.dec))", S_RADEC),
    # written the index-friendly way already: kept
    (JOIN + "1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE(u.ra, u.dec, 0.001))", S_RADEC),
    # DISTANCE, either order of the arguments
    (JOIN + "DISTANCE(POINT(u.ra, u.dec), POINT(s.ra, s.dec)) < 0.001", S_RADEC),
    (JOIN + "DISTANCE(POINT(s.ra, s.dec), POINT(u.ra, u.dec)) < 0.001", S_RADEC),
    (JOIN + "DISTANCE(u.ra, u.dec, s.ra, s.dec) < 0.001", S_RADEC),
    (JOIN + "0.001 > DISTANCE(u.pos, s.pos)", '"s"."pos"'),
    # a constant point in circles round the rows: a cone search after all
    (CONE + "1 = CONTAINS(POINT(10, 20), CIRCLE(s.ra, s.dec, 1))", S_RADEC),
    (CONE + "DISTANCE(POINT(10, 20), POINT(s.ra, s.dec)) < 1", S_RADEC),
    (CONE + "1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE(10, 20, 1))", S_RADEC),
    # the same table on both sides: a bare column over a computed point, else as written
    (CONE + "DISTANCE(POINT(s.ra, s.dec), s.pos) < 1", '"s"."pos"'),
    (CONE + "1 = CONTAINS(POINT(s.ra, s.dec), CIRCLE(s.pos, 1))", '"s"."pos"'),
    (
        "SELECT a.id FROM demo.stars AS a JOIN demo.stars AS b"
        " ON 1 = CONTAINS(POINT(b.ra, b.dec), CIRCLE(a.ra, a.dec, 1))",
        'spoint(radians("b"."ra"), radians("b"."dec"))',
    ),
]


@pytest.mark.parametrize(("adql", "indexed"), CASES)
def test_the_side_an_index_can_serve_stands_left_of_contained_by(adql: str, indexed: str) -> None:
    sql = translate_adql(adql, CATALOG).sql
    assert f"{indexed} <@ scircle(" in sql, sql


def test_a_radius_from_the_catalog_keeps_the_circle_where_the_user_put_it() -> None:
    # scircle(s, s.r) cannot be an index condition on s; swapping would gain nothing
    # and would lose an index on the upload's point
    sql = translate_adql(
        JOIN + "1 = CONTAINS(POINT(u.ra, u.dec), CIRCLE(s.ra, s.dec, s.id / 3600.0))", CATALOG
    ).sql
    assert f"{U_RADEC} <@ scircle({S_RADEC}" in sql, sql
