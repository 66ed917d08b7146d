"""What /capabilities declares is true: features translate, formats resolve, limits match config."""

from __future__ import annotations

import pytest

from tapd.adql import translate_adql
from tapd.catalog import Catalog, CatalogColumn, CatalogTable
from tapd.columns import ColumnMeta
from tapd.config import load_config
from tapd.formats import resolve_format
from tapd.http.metadata import adql_features, service_capabilities

TABLE = CatalogTable(
    "s",
    "s.t",
    "s",
    "t",
    (
        CatalogColumn("x", "x", "double precision", ColumnMeta("x", "double", unit="deg")),
        CatalogColumn("p", "p", "spoint", ColumnMeta("p", "double", "2", "point", unit="deg")),
        CatalogColumn("n", "n", "text", ColumnMeta("n", "char", "*")),
    ),
)

#: A query using each declarable feature form.
EXAMPLES = {
    "AREA": "SELECT AREA(CIRCLE(1, 2, 3)) FROM s.t",
    "BOX": "SELECT BOX(1, 2, 3, 4) FROM s.t",
    "CENTROID": "SELECT CENTROID(POLYGON(1, 2, 3, 4, 5, 1)) FROM s.t",
    "CIRCLE": "SELECT CIRCLE(1, 2, 3) FROM s.t",
    "CONTAINS": "SELECT x FROM s.t WHERE 1 = CONTAINS(p, CIRCLE(1, 2, 3))",
    "COORD1": "SELECT COORD1(p) FROM s.t",
    "COORD2": "SELECT COORD2(p) FROM s.t",
    "COORDSYS": "SELECT COORDSYS(p) FROM s.t",
    "DISTANCE": "SELECT DISTANCE(p, POINT(1, 2)) FROM s.t",
    "INTERSECTS": "SELECT x FROM s.t WHERE 1 = INTERSECTS(CIRCLE(1, 2, 3), BOX(1, 2, 3, 4))",
    "POINT": "SELECT POINT(1, 2) FROM s.t",
    "POLYGON": "SELECT POLYGON(1, 2, 3, 4, 5, 1) FROM s.t",
    "REGION": "SELECT REGION('CIRCLE 1 2 3') FROM s.t",
    "LOWER": "SELECT LOWER(n) FROM s.t",
    "UPPER": "SELECT UPPER(n) FROM s.t",
    "ILIKE": "SELECT n FROM s.t WHERE n ILIKE 'a%'",
    "OFFSET": "SELECT x FROM s.t ORDER BY x OFFSET 3",
    "CAST": "SELECT CAST(x AS INTEGER) FROM s.t",
    "COALESCE": "SELECT COALESCE(x, 1) FROM s.t",
    "IN_UNIT": "SELECT IN_UNIT(x, 'arcsec') FROM s.t",
    "WITH": "WITH a AS (SELECT x FROM s.t) SELECT x FROM a",
    "UNION": "SELECT x FROM s.t UNION SELECT x FROM s.t",
    "EXCEPT": "SELECT x FROM s.t EXCEPT SELECT x FROM s.t",
    "INTERSECT": "SELECT x FROM s.t INTERSECT SELECT x FROM s.t",
}

DECLARED = sorted({form for forms in adql_features().values() for form in forms})


@pytest.mark.parametrize("form", DECLARED)
def test_every_declared_adql_feature_translates(form: str) -> None:
    """(TRE-03)"""
    assert form in EXAMPLES, f"no example query for declared feature {form}: add one"
    translation = translate_adql(EXAMPLES[form], Catalog((TABLE,)))
    assert translation.sql


def test_feature_types_are_tapregext_ids_as_stilts_spells_them() -> None:
    """(TRE-03)"""
    for feature_type in adql_features():
        assert feature_type.lower().startswith("ivo://ivoa.net/std/tapregext#features-")


def test_declared_formats_resolve_to_their_own_media_type() -> None:
    """(TRE-04)"""
    caps = service_capabilities(load_config(None, environ={}), "http://h/tap")
    for fmt in caps.formats:
        assert resolve_format(fmt.mime).mime_type.replace(" ", "") == fmt.mime.replace(" ", "")
        for alias in fmt.aliases:
            assert resolve_format(alias).key == resolve_format(fmt.mime).key


def test_declared_limits_are_the_configured_ones() -> None:
    """(TRE-06, TRE-07, TRE-08, UWS-62)"""
    config = load_config(None, environ={}).replace(
        execution_duration_default=100, execution_duration_max=200, maxrec_default=5,
        maxrec_max=50, destruction_default=3600, destruction_max=7200, upload_max_bytes=99,
    )  # fmt: skip
    limits = service_capabilities(config, "http://h/tap").limits
    assert limits.execution_duration == (100, 200)
    assert limits.output_rows == (5, 50)
    assert limits.retention == (3600, 7200)
    assert limits.upload_bytes == 99
