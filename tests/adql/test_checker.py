"""Name resolution, ADQL case rules, type checks and result-column metadata."""

from __future__ import annotations

import pytest

from tapd.adql import AdqlError, AdqlNameError, AdqlTypeError, AdqlUnsupported, translate_adql
from tapd.catalog import Catalog, CatalogColumn, CatalogTable
from tapd.columns import ColumnMeta


def columns(catalog: Catalog, adql: str) -> tuple[ColumnMeta, ...]:
    return translate_adql(adql, catalog).columns


def published(catalog: Catalog, table: str, column: str) -> ColumnMeta:
    entry = next(t for t in catalog.tables if t.table_name == table)
    return next(c.meta for c in entry.columns if c.name == column)


def test_column_reference_metadata_equals_its_tap_schema_row(catalog: Catalog) -> None:
    """(TAP-44, TAP-88)"""
    ra, pos, name = columns(catalog, "SELECT ra, pos, name FROM stars")
    assert ra == published(catalog, "public.stars", "ra")
    assert pos == published(catalog, "public.stars", "pos")
    assert name == published(catalog, "public.stars", "name")
    assert (ra.unit, ra.ucd, ra.description) == ("deg", "pos.eq.ra;meta.main", "Right ascension")


def test_alias_renames_but_keeps_the_metadata(catalog: Catalog) -> None:
    (alpha,) = columns(catalog, 'SELECT ra AS "Alpha" FROM stars')
    assert alpha.name == "Alpha"
    assert alpha.unit == "deg" and alpha.ucd == "pos.eq.ra;meta.main"


def test_metadata_passes_through_subqueries_and_with(catalog: Catalog) -> None:
    (ra,) = columns(catalog, "SELECT q.ra FROM (SELECT ra FROM stars) AS q")
    assert ra == published(catalog, "public.stars", "ra")
    (ra,) = columns(catalog, "WITH w AS (SELECT ra FROM stars) SELECT ra FROM w")
    assert ra == published(catalog, "public.stars", "ra")


def test_duplicate_and_unnamed_columns_get_unique_names(catalog: Catalog) -> None:
    """(TAP-43)"""
    result = columns(
        catalog,
        "SELECT a.ra, b.ra, COUNT(*), 1 + 1, a.ra AS ra_2 FROM stars AS a, stars AS b GROUP BY "
        "a.ra, b.ra",
    )
    names = [c.name for c in result]
    assert names == ["ra", "ra_3", "count", "col4", "ra_2"]
    assert len(set(names)) == len(names)


def test_select_star_over_a_join_names_every_column_once(catalog: Catalog) -> None:
    result = columns(catalog, "SELECT * FROM stars AS s JOIN sightings AS g ON s.id = g.star_id")
    names = [c.name for c in result]
    assert len(names) == len(set(names))
    assert names[:2] == ["id", "name"] and "ra_2" in names and "pos_2" in names


def test_using_join_merges_the_join_column(catalog: Catalog) -> None:
    result = columns(
        catalog,
        "SELECT * FROM (SELECT id, ra FROM stars) AS a JOIN (SELECT id, dec FROM stars) AS b "
        "USING (id)",
    )
    assert [c.name for c in result] == ["id", "ra", "dec"]


def test_expression_types(catalog: Catalog) -> None:
    result = columns(
        catalog,
        "SELECT id + 1, ra * 2, COUNT(*), AVG(mag), name || 'x', DISTANCE(pos, POINT(1, 2)), "
        "CIRCLE(pos, 1), POLYGON(1, 2, 3, 4, 5, 6), CONTAINS(pos, CIRCLE(1, 2, 3)), "
        "CAST(id AS VARCHAR(5)), CAST(ra AS REAL), observed, AREA(beam), COORD1(pos), 'text', NULL "
        "FROM stars",
    )
    summary = [(c.datatype, c.arraysize, c.xtype, c.unit) for c in result]
    assert summary == [
        ("int", None, None, None),
        ("double", None, None, None),
        ("long", None, None, None),
        ("double", None, None, "mag"),
        ("char", "*", None, None),
        ("double", None, None, "deg"),
        ("double", "3", "circle", "deg"),
        ("double", "*", "polygon", "deg"),
        ("int", None, None, None),
        ("char", "5*", None, None),
        ("float", None, None, None),
        ("char", "*", "timestamp", None),
        ("double", None, None, "deg**2"),
        ("double", None, None, "deg"),
        ("char", "*", None, None),
        ("char", "*", "null", None),
    ]


def test_in_unit_converts_and_sets_the_unit(catalog: Catalog) -> None:
    (column,) = columns(catalog, "SELECT IN_UNIT(ra, 'rad') FROM stars")
    assert column.unit == "rad"


@pytest.mark.parametrize(
    ("adql", "message"),
    [
        ("SELECT IN_UNIT(id, 'deg') FROM stars", "needs a value with a unit"),
        ("SELECT IN_UNIT(ra, 'kg') FROM stars", "cannot convert deg to kg"),
        ("SELECT IN_UNIT(ra, 'nonsense_unit') FROM stars", "is not a VOUnit"),
    ],
)
def test_in_unit_errors(catalog: Catalog, adql: str, message: str) -> None:
    with pytest.raises(AdqlError, match=message):
        translate_adql(adql, catalog)


def test_regular_identifiers_match_any_case(catalog: Catalog) -> None:
    translate_adql("SELECT NAME, Ra FROM Public.Stars WHERE ID = 1", catalog)
    translate_adql(
        "SELECT kind FROM stars", catalog
    )  # published as "Kind": regular names match it too


def test_delimited_identifiers_match_exactly(catalog: Catalog) -> None:
    translate_adql('SELECT "Kind", "name" FROM "public"."stars"', catalog)
    with pytest.raises(AdqlNameError, match='there is no column "KIND"'):
        translate_adql('SELECT "KIND" FROM stars', catalog)
    with pytest.raises(AdqlNameError, match="there is no published table"):
        translate_adql('SELECT id FROM "Stars"', catalog)


def test_reserved_published_names_need_quotes(catalog: Catalog) -> None:
    translate_adql('SELECT "size" FROM stars', catalog)
    with pytest.raises(AdqlError, match="size is a reserved word"):
        translate_adql("SELECT size FROM stars", catalog)


def test_unknown_column_lists_what_there_is(catalog: Catalog) -> None:
    with pytest.raises(AdqlNameError) as info:
        translate_adql("SELECT id,\n  nope FROM stars", catalog)
    assert str(info.value).startswith(
        "Error at line 2, column 3: there is no column nope; the tables in FROM have id, name"
    )


def test_ambiguous_column_asks_for_a_qualifier(catalog: Catalog) -> None:
    with pytest.raises(AdqlNameError, match="column name ra is ambiguous"):
        translate_adql("SELECT ra FROM stars, sightings", catalog)


def test_qualified_names_resolve_through_aliases_and_schemas(catalog: Catalog) -> None:
    translate_adql(
        "SELECT s.ra, sightings.ra, public.stars.dec FROM stars AS s, sightings, public.stars",
        catalog,
    )
    with pytest.raises(AdqlNameError, match="names no table in FROM"):
        translate_adql("SELECT stars.ra FROM stars AS s", catalog)


def test_same_table_twice_needs_aliases(catalog: Catalog) -> None:
    with pytest.raises(AdqlNameError, match="appears twice in FROM"):
        translate_adql("SELECT COUNT(*) FROM stars, stars", catalog)


def test_select_alias_in_where_gets_a_hint(catalog: Catalog) -> None:
    with pytest.raises(AdqlNameError, match="a SELECT alias cannot be used here"):
        translate_adql("SELECT ra AS alpha FROM stars WHERE alpha > 1", catalog)


def test_correlated_subquery_sees_the_outer_query(catalog: Catalog) -> None:
    translate_adql(
        "SELECT id FROM stars AS s WHERE EXISTS (SELECT 1 FROM sightings AS g WHERE g.star_id = "
        "s.id)",
        catalog,
    )


def test_with_table_is_visible_only_in_its_query(catalog: Catalog) -> None:
    translate_adql("WITH w AS (SELECT id FROM stars) SELECT id FROM w", catalog)
    with pytest.raises(AdqlNameError, match="no published table w"):
        translate_adql("SELECT id FROM w", catalog)


def test_uploaded_tables_are_reachable_as_tap_upload(catalog: Catalog) -> None:
    upload = CatalogTable(
        "TAP_UPLOAD",
        "TAP_UPLOAD.mine",
        "pg_temp",
        "tap_upload_mine",
        (CatalogColumn("RA", "RA", "double precision", ColumnMeta("RA", "double", unit="deg")),),
    )
    translation = translate_adql(
        "SELECT m.ra FROM TAP_UPLOAD.mine AS m", catalog.with_uploads((upload,))
    )
    assert '"pg_temp"."tap_upload_mine"' in translation.sql
    assert translation.columns[0].name == "RA"


@pytest.mark.parametrize(
    ("adql", "message"),
    [
        ("SELECT name + 1 FROM stars", "needs a number, but this is a string"),
        ("SELECT id FROM stars WHERE name = 1", "cannot compare a string with a number"),
        ("SELECT id FROM stars WHERE name LIKE 1", "LIKE compares strings"),
        ("SELECT LOWER(id) FROM stars", "LOWER needs a string"),
        ("SELECT POINT(name, 1) FROM stars", "POINT needs a number"),
        ("SELECT DISTANCE(beam, pos) FROM stars", "DISTANCE needs a point, but this is a circle"),
        ("SELECT COORD1(beam) FROM stars", "COORD1 needs a point"),
        ("SELECT id FROM stars WHERE 1 = CONTAINS(beam, pos)", "did you mean CONTAINS"),
        ("SELECT id FROM stars WHERE CONTAINS(ra, beam) = 1", "CONTAINS needs a point or a circle"),
        ("SELECT id & 1.5 FROM stars", "needs a whole number"),
        ("SELECT ROUND(ra, 1.5) FROM stars", "needs a whole number"),
        ("SELECT id FROM stars WHERE COUNT(*) > 1", "cannot be used in WHERE"),
        ("SELECT MAX(pos) FROM stars", "cannot compare geometries"),
        ("SELECT id FROM stars UNION SELECT id, ra FROM stars", "same number of columns"),
        ("SELECT id FROM stars WHERE id IN (SELECT id, ra FROM stars)", "must give one column"),
        ("SELECT (SELECT id, ra FROM stars) FROM stars", "must give one column"),
        ("SELECT id FROM stars ORDER BY 3", "ORDER BY 3: the query has 1 columns"),
        (
            "SELECT id FROM stars UNION SELECT id FROM stars ORDER BY ra + 1",
            "can only name result columns",
        ),
        ("SELECT CAST(pos AS VARCHAR) FROM stars", "cannot CAST a point"),
        ("SELECT CAST(name AS POINT) FROM stars", "string literals only"),
        ("SELECT CAST('1 x' AS POINT) FROM stars", "is not a DALI point"),
        ("SELECT REGION(name) FROM stars", "string literals only"),
        (
            "SELECT REGION('Union ICRS (Circle 1 2 3)') FROM stars",
            "STC-S shape Union is not supported",
        ),
        ("SELECT a.* FROM stars", "names no table in FROM"),
        ("SELECT x FROM stars JOIN sightings USING (nope)", "no column named nope for USING"),
        (
            "WITH w (a, b) AS (SELECT id FROM stars) SELECT a FROM w",
            "names 2 columns but its query gives 1",
        ),
        ("SELECT id FROM cat.public.stars", "catalog-qualified table names"),
        ("SELECT COUNT(*) FROM stars GROUP BY pos", "GROUP BY cannot use a point"),
        ("SELECT id FROM stars ORDER BY beam", "ORDER BY cannot use a circle"),
        (
            "SELECT * FROM (SELECT DISTINCT pos FROM stars) AS q",
            "SELECT DISTINCT cannot compare geometries",
        ),
        (
            "SELECT * FROM (SELECT pos FROM stars UNION SELECT pos FROM sightings) AS q",
            "without ALL",
        ),
        (
            "SELECT id FROM stars UNION SELECT name FROM stars",
            "UNION cannot combine a number with a string",
        ),
    ],
)
def test_semantic_errors_are_clear(catalog: Catalog, adql: str, message: str) -> None:
    with pytest.raises(AdqlError) as info:
        translate_adql(adql, catalog)
    assert message in str(info.value)
    assert " at line " in str(info.value)
    assert isinstance(info.value, (AdqlNameError, AdqlTypeError, AdqlUnsupported, AdqlError))


def test_udf_calls_are_translated_with_their_declared_type(catalog: Catalog) -> None:
    udf = "ivo_hasword(a VARCHAR, b VARCHAR) -> INTEGER"
    translation = translate_adql("SELECT ivo_hasword(name, 'x') FROM stars", catalog, udfs=[udf])
    assert '"ivo_hasword"(' in translation.sql
    assert translation.columns[0].datatype == "int"


UDF_SIGNATURES = [
    "ivo_hasword(a VARCHAR, b VARCHAR) -> INTEGER",
    "ivo_healpix_index(hpxOrder INTEGER, p POINT) -> BIGINT",
    "in_region(r REGION, x DOUBLE PRECISION) -> INTEGER",
]


@pytest.mark.parametrize(
    "adql",
    [
        "SELECT ivo_hasword(name, 'x') FROM stars",
        "SELECT ivo_hasword(NULL, name) FROM stars",
        "SELECT ivo_healpix_index(10, pos) FROM stars",
        "SELECT ivo_healpix_index(id, POINT(ra, dec)) FROM stars",
        "SELECT in_region(CIRCLE(10, 20, 1), ra) FROM stars",
        "SELECT in_region(pos, 1) FROM stars",
    ],
)
def test_udf_arguments_of_the_declared_kind_are_accepted(catalog: Catalog, adql: str) -> None:
    translate_adql(adql, catalog, udfs=UDF_SIGNATURES)


@pytest.mark.parametrize(
    ("adql", "message"),
    [
        (
            "SELECT ivo_hasword(name, 3) FROM stars",
            "argument 2 of IVO_HASWORD is declared VARCHAR, but this is a number",
        ),
        (
            "SELECT ivo_healpix_index(name, pos) FROM stars",
            "argument 1 of IVO_HEALPIX_INDEX is declared INTEGER, but this is a string",
        ),
        (
            "SELECT ivo_healpix_index(10, CIRCLE(ra, dec, 1)) FROM stars",
            "argument 2 of IVO_HEALPIX_INDEX is declared POINT, but this is a circle",
        ),
        (
            "SELECT in_region(ra, ra) FROM stars",
            "argument 1 of IN_REGION is declared REGION, but this is a number",
        ),
    ],
)
def test_udf_arguments_of_another_kind_are_refused_with_their_position(
    catalog: Catalog, adql: str, message: str
) -> None:
    with pytest.raises(AdqlTypeError) as info:
        translate_adql(adql, catalog, udfs=UDF_SIGNATURES)
    assert message in str(info.value)
    assert " at line 1, column " in str(info.value)


@pytest.mark.parametrize(
    ("adql", "column"),
    [
        ("SELECT POINT(1, 2) || 'a' FROM stars", 8),
        ("SELECT 'a' || POINT(ra, dec) FROM stars", 15),
        ("SELECT name || pos FROM stars", 16),
        ("SELECT beam || name FROM stars", 8),
        ("SELECT 'x' || name || CIRCLE(1, 2, 3) FROM stars", 23),
        ("SELECT name || 'x' || footprint FROM stars", 23),
        ("SELECT name || 'x' || field FROM stars", 23),
        ("SELECT id FROM stars WHERE name || POINT(1, 2) = 'a'", 36),
        ("SELECT 'a' || CAST('1 2' AS POINT) FROM stars", 15),
        ("SELECT 'a' || REGION('Circle ICRS 1 2 3') FROM stars", 15),
        ("SELECT 'a' || CENTROID(beam) FROM stars", 15),
        ("SELECT 'a' || q.p FROM (SELECT pos AS p FROM stars) AS q", 15),
    ],
)
def test_concatenating_a_geometry_is_a_type_error_at_the_geometry(
    catalog: Catalog, adql: str, column: int
) -> None:
    with pytest.raises(AdqlTypeError) as info:
        translate_adql(adql, catalog)
    assert "|| joins strings, but this is a " in str(info.value)
    assert info.value.pos is not None and (info.value.pos.line, info.value.pos.column) == (
        1,
        column,
    )
