"""VOSI capabilities (TAPRegExt), availability and tables documents."""

from __future__ import annotations

import datetime as dt

from lxml import etree

from tapd.catalog import Catalog, CatalogColumn, CatalogTable
from tapd.columns import ColumnMeta
from tapd.http.vosi import (
    UPLOAD_INLINE,
    ForeignKey,
    LanguageFeature,
    Limits,
    OutputFormat,
    ServiceCapabilities,
    TableSetInfo,
    availability_document,
    capabilities_document,
    table_document,
    tables_document,
)

TR = "http://www.ivoa.net/xml/TAPRegExt/v1.0"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def caps(**changes: object) -> ServiceCapabilities:
    values: dict[str, object] = {
        "base_url": "http://127.0.0.1:8080/tap",
        "formats": [
            OutputFormat("application/x-votable+xml", ("votable",), "ivo://ivoa.net/std/TAPRegExt#output-votable-binary2"),
            OutputFormat("text/csv;header=present", ("csv",)),
        ],
        "limits": Limits(
            retention=(604800, 2592000),
            execution_duration=(600, 3600),
            output_rows=(100000, 10000000),
            upload_bytes=20000000,
        ),
        "features": {
            "ivo://ivoa.net/std/tapregext#features-adqlgeo": [
                LanguageFeature("POINT"),
                LanguageFeature("CONTAINS"),
            ],
            "ivo://ivoa.net/std/tapregext#features-udf": [],
        },
        "upload_methods": [UPLOAD_INLINE],
    }  # fmt: skip
    values.update(changes)
    return ServiceCapabilities(**values)  # type: ignore[arg-type]


def test_capabilities_validate_against_vosi_and_tapregext(ivoa_schemas) -> None:
    """(VOSI-03, TRE-01, TRE-02, TRE-04)"""
    ivoa_schemas.assert_valid(capabilities_document(caps()))


def test_tap_capability_has_a_base_interface_of_version_1_1(ivoa_schemas) -> None:
    """(VOSI-04, TRE-01)"""
    root = etree.fromstring(capabilities_document(caps()))
    (tap,) = [c for c in root if c.get("standardID") == "ivo://ivoa.net/std/TAP"]
    assert tap.get(XSI_TYPE) == "tr:TableAccess"
    interface = tap.find("interface")
    assert interface.get("role") == "std"
    assert interface.get("version") == "1.1"
    assert interface.findtext("accessURL") == "http://127.0.0.1:8080/tap"
    assert interface.find("accessURL").get("use") == "base"


def test_capabilities_state_the_limits_jobs_get() -> None:
    """(TRE-06, TRE-07, TRE-08)"""
    root = etree.fromstring(capabilities_document(caps()))
    ns = {}
    tap = root.find("capability[@standardID='ivo://ivoa.net/std/TAP']", ns)
    assert tap.findtext("retentionPeriod/default") == "604800"
    assert tap.findtext("executionDuration/hard") == "3600"
    assert tap.find("outputLimit/default").get("unit") == "row"
    assert tap.findtext("outputLimit/default") == "100000"
    assert tap.findtext("uploadLimit/hard") == "20000000"
    assert [m.get("ivo-id") for m in tap.findall("uploadMethod")] == [UPLOAD_INLINE]


def test_capabilities_without_uploads_list_no_upload_method_or_limit(ivoa_schemas) -> None:
    limits = Limits((1, 2), (3, 4), (5, 6), None)
    document = capabilities_document(caps(limits=limits, upload_methods=()))
    ivoa_schemas.assert_valid(document)
    root = etree.fromstring(document)
    assert root.find(".//uploadMethod") is None
    assert root.find(".//uploadLimit") is None


def test_vosi_capabilities_are_listed_with_full_urls() -> None:
    """(VOSI-05, TAP-02)"""
    root = etree.fromstring(capabilities_document(caps()))
    urls = {c.get("standardID"): c.findtext("interface/accessURL") for c in root}
    assert urls["ivo://ivoa.net/std/VOSI#availability"] == "http://127.0.0.1:8080/tap/availability"
    assert urls["ivo://ivoa.net/std/VOSI#tables-1.1"] == "http://127.0.0.1:8080/tap/tables"
    assert urls["ivo://ivoa.net/std/VOSI#capabilities"] == "http://127.0.0.1:8080/tap/capabilities"


def test_empty_feature_lists_are_left_out() -> None:
    """(TRE-03)"""
    document = capabilities_document(caps())
    assert b"features-udf" not in document
    assert b"<form>CONTAINS</form>" in document


def test_availability_is_valid_with_notes(ivoa_schemas) -> None:
    """(VOSI-06)"""
    document = availability_document(
        False,
        ["no runner daemon has sent a heartbeat"],
        up_since=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    ivoa_schemas.assert_valid(document)
    root = etree.fromstring(document)
    ns = {"avl": "http://www.ivoa.net/xml/VOSIAvailability/v1.0"}
    assert root.findtext("avl:available", namespaces=ns) == "false"
    assert root.findtext("avl:note", namespaces=ns) == "no runner daemon has sent a heartbeat"


NAME_META = ColumnMeta("table_name", "char", "*")


def sample_catalog() -> Catalog:
    id_meta = ColumnMeta("id", "long", description="identifier")
    pos_meta = ColumnMeta("pos", "double", "2", "point", unit="deg", ucd="pos.eq")
    columns = (
        CatalogColumn("id", "id", "bigint", id_meta, indexed=True, principal=True),
        CatalogColumn("pos", "pos", "spoint", pos_meta),
        CatalogColumn("name", "name", "text", ColumnMeta("name", "char", "*")),
    )
    stars = CatalogTable("public", "public.stars", "public", "stars", columns, "Some stars")
    tables = CatalogTable(
        "TAP_SCHEMA", "TAP_SCHEMA.tables", "tap_schema", "tables",
        (CatalogColumn("table_name", "table_name", "text", NAME_META, std=True),),
    )  # fmt: skip
    return Catalog(tables=(stars, tables))


def test_tables_document_validates_and_carries_types_flags_and_keys(ivoa_schemas) -> None:
    """(VOSI-08)"""
    info = TableSetInfo(
        {"public": "Sample data", "TAP_SCHEMA": None},
        [ForeignKey("public.stars", "TAP_SCHEMA.tables", (("name", "table_name"),))],
    )
    document = tables_document(sample_catalog(), info)
    ivoa_schemas.assert_valid(document)
    root = etree.fromstring(document)
    pos = root.find("schema/table/column[name='pos']")
    data_type = pos.find("dataType")
    assert data_type.get(XSI_TYPE) == "vs:VOTableType"
    assert (data_type.text, data_type.get("arraysize"), data_type.get("extendedType")) == (
        "double",
        "2",
        "point",
    )
    id_column = root.find("schema/table/column[name='id']")
    assert [f.text for f in id_column.findall("flag")] == ["indexed", "principal"]
    assert root.find("schema/table/foreignKey/targetTable").text == "TAP_SCHEMA.tables"
    assert root.find(".//column[name='table_name']").get("std") == "true"


def test_tables_detail_min_leaves_out_columns(ivoa_schemas) -> None:
    """(VOSI-09)"""
    document = tables_document(sample_catalog(), TableSetInfo(), detail=False)
    ivoa_schemas.assert_valid(document)
    assert etree.fromstring(document).find(".//column") is None


def test_single_table_document_is_valid(ivoa_schemas) -> None:
    """(VOSI-09)"""
    document = table_document(sample_catalog().tables[0], TableSetInfo())
    ivoa_schemas.assert_valid(document)
    root = etree.fromstring(document)
    assert root.findtext("name") == "public.stars"
    assert len(root.findall("column")) == 3
