"""VOSI 1.1 documents: capabilities (with TAPRegExt 1.0), availability, tables.

Pure functions from plain values to bytes, built only from local state (no
outbound calls, INT-26). Capabilities declare exactly what the service does:
the output formats this host can write, the ADQL features the translator
accepts, upload methods and the limits jobs really get (TRE-06..09).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tapd.catalog import Catalog, CatalogColumn, CatalogTable
from tapd.http.xmltext import attr, text, utc_timestamp

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
VOSI_CAP_NS = "http://www.ivoa.net/xml/VOSICapabilities/v1.0"
VOSI_AVAIL_NS = "http://www.ivoa.net/xml/VOSIAvailability/v1.0"
VOSI_TABLES_NS = "http://www.ivoa.net/xml/VOSITables/v1.0"
VR_NS = "http://www.ivoa.net/xml/VOResource/v1.0"
VS_NS = "http://www.ivoa.net/xml/VODataService/v1.1"
TR_NS = "http://www.ivoa.net/xml/TAPRegExt/v1.0"

_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

#: TAPRegExt ids of the VOTable serialisations (TAPRegExt 1.0 §2.4), by writer key
#: of ``tapd.formats`` (plain ``votable`` writes BINARY2).
VOTABLE_IVO_IDS = {
    "votable": "ivo://ivoa.net/std/TAPRegExt#output-votable-binary2",
    "votable/td": "ivo://ivoa.net/std/TAPRegExt#output-votable-td",
    "votable/b": "ivo://ivoa.net/std/TAPRegExt#output-votable-binary",
}

#: standardID of the DALI examples capability (DALI 1.1 §2.3, TAP 1.1 §3.3).
EXAMPLES_ID = "ivo://ivoa.net/std/DALI#examples"

UPLOAD_INLINE = "ivo://ivoa.net/std/TAPRegExt#upload-inline"
UPLOAD_HTTP = "ivo://ivoa.net/std/TAPRegExt#upload-http"
UPLOAD_HTTPS = "ivo://ivoa.net/std/TAPRegExt#upload-https"


@dataclass(frozen=True)
class OutputFormat:
    """One ``<outputFormat>``: the media type, its aliases, a TAPRegExt id for VOTable variants."""

    mime: str
    aliases: tuple[str, ...] = ()
    ivo_id: str | None = None


@dataclass(frozen=True)
class LanguageFeature:
    """One optional ADQL feature: its ``form`` (function name or signature)."""

    form: str
    description: str | None = None


@dataclass(frozen=True)
class Limits:
    """(default, hard) pairs as jobs really get them."""

    retention: tuple[int, int]
    execution_duration: tuple[int, int]
    output_rows: tuple[int, int]
    upload_bytes: int | None  # None: uploads off


@dataclass(frozen=True)
class ServiceCapabilities:
    """Everything /capabilities states."""

    base_url: str
    formats: Sequence[OutputFormat]
    limits: Limits
    adql_versions: Sequence[tuple[str, str]] = (
        ("2.0", "ivo://ivoa.net/std/ADQL#v2.0"),
        ("2.1", "ivo://ivoa.net/std/ADQL#v2.1"),
    )
    features: Mapping[str, Sequence[LanguageFeature]] = field(default_factory=dict)
    upload_methods: Sequence[str] = ()
    #: The DALI examples document (TAP 1.1 §3.3), when the service has one.
    examples_url: str | None = None


def _interface(url: str, use: str, role: str | None = None, version: str | None = None) -> str:
    attributes = ' xsi:type="vs:ParamHTTP"'
    if role:
        attributes += f' role="{role}"'
    if version:
        attributes += f' version="{version}"'
    return f'<interface{attributes}><accessURL use="{use}">{text(url)}</accessURL></interface>'


def capabilities_document(caps: ServiceCapabilities) -> bytes:
    """The VOSI capabilities of the TAP service rooted at ``caps.base_url``."""
    base = caps.base_url
    tap = [
        '<capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">',
        _interface(base, "base", role="std", version="1.1"),
        "<language><name>ADQL</name>",
    ]
    tap += [
        f'<version ivo-id="{attr(ivo_id)}">{text(v)}</version>' for v, ivo_id in caps.adql_versions
    ]
    tap.append("<description>ADQL 2.1, translated to PostgreSQL with pgsphere</description>")
    for feature_type, features in caps.features.items():
        if not features:
            continue
        tap.append(f'<languageFeatures type="{attr(feature_type)}">')
        for feature in features:
            description = (
                f"<description>{text(feature.description)}</description>"
                if feature.description
                else ""
            )
            tap.append(f"<feature><form>{text(feature.form)}</form>{description}</feature>")
        tap.append("</languageFeatures>")
    tap.append("</language>")
    for fmt in caps.formats:
        ivo_id = f' ivo-id="{attr(fmt.ivo_id)}"' if fmt.ivo_id else ""
        aliases = "".join(f"<alias>{text(a)}</alias>" for a in fmt.aliases)
        tap.append(f"<outputFormat{ivo_id}><mime>{text(fmt.mime)}</mime>{aliases}</outputFormat>")
    tap += [f'<uploadMethod ivo-id="{attr(m)}"/>' for m in caps.upload_methods]
    limits = caps.limits
    tap += [
        _time_limits("retentionPeriod", limits.retention),
        _time_limits("executionDuration", limits.execution_duration),
        "<outputLimit>"
        f'<default unit="row">{limits.output_rows[0]}</default>'
        f'<hard unit="row">{limits.output_rows[1]}</hard>'
        "</outputLimit>",
    ]
    if limits.upload_bytes is not None:
        tap.append(
            "<uploadLimit>"
            f'<default unit="byte">{limits.upload_bytes}</default>'
            f'<hard unit="byte">{limits.upload_bytes}</hard>'
            "</uploadLimit>"
        )
    tap.append("</capability>")
    vosi = [
        f'<capability standardID="ivo://ivoa.net/std/VOSI#{name}">'
        f"{_interface(f'{base}/{path}', 'full')}</capability>"
        for name, path in (
            ("capabilities", "capabilities"),
            ("availability", "availability"),
            ("tables-1.1", "tables"),
        )
    ]
    if caps.examples_url:
        vosi.append(
            f'<capability standardID="{EXAMPLES_ID}"><interface xsi:type="vr:WebBrowser">'
            f'<accessURL use="full">{text(caps.examples_url)}</accessURL></interface></capability>'
        )
    return (
        f'{_DECLARATION}<vosi:capabilities xmlns:vosi="{VOSI_CAP_NS}" xmlns:xsi="{XSI_NS}"'
        f' xmlns:vr="{VR_NS}" xmlns:vs="{VS_NS}" xmlns:tr="{TR_NS}">'
        f"{''.join(tap)}{''.join(vosi)}</vosi:capabilities>\n"
    ).encode()


def _time_limits(element: str, limits: tuple[int, int]) -> str:
    return f"<{element}><default>{limits[0]}</default><hard>{limits[1]}</hard></{element}>"


def availability_document(
    available: bool, notes: Iterable[str] = (), up_since: dt.datetime | None = None
) -> bytes:
    """VOSI availability: ``available`` plus human-readable notes saying why."""
    since = f"<avl:upSince>{utc_timestamp(up_since)}</avl:upSince>" if up_since else ""
    note_xml = "".join(f"<avl:note>{text(n)}</avl:note>" for n in notes)
    return (
        f'{_DECLARATION}<avl:availability xmlns:avl="{VOSI_AVAIL_NS}">'
        f"<avl:available>{'true' if available else 'false'}</avl:available>"
        f"{since}{note_xml}</avl:availability>\n"
    ).encode()


@dataclass(frozen=True)
class ForeignKey:
    """A TAP_SCHEMA.keys row with its column pairs."""

    from_table: str
    target_table: str
    columns: tuple[tuple[str, str], ...]
    description: str | None = None
    utype: str | None = None


@dataclass(frozen=True)
class TableSetInfo:
    """What /tables needs beyond the catalog: schema descriptions and foreign keys."""

    schema_descriptions: Mapping[str, str | None] = field(default_factory=dict)
    foreign_keys: Sequence[ForeignKey] = ()


def _optional(element: str, value: str | None) -> str:
    return f"<{element}>{text(value)}</{element}>" if value else ""


def _column_xml(column: CatalogColumn) -> str:
    meta = column.meta
    data_type = '<dataType xsi:type="vs:VOTableType"'
    if meta.arraysize:
        data_type += f' arraysize="{attr(meta.arraysize)}"'
    if meta.xtype:
        data_type += f' extendedType="{attr(meta.xtype)}"'
    data_type += f">{text(meta.datatype)}</dataType>"
    flags = ""
    if column.indexed:
        flags += "<flag>indexed</flag>"
    if column.principal:
        flags += "<flag>principal</flag>"
    std = ' std="true"' if column.std else ""
    return (
        f"<column{std}><name>{text(column.name)}</name>"
        f"{_optional('description', meta.description)}{_optional('unit', meta.unit)}"
        f"{_optional('ucd', meta.ucd)}{_optional('utype', meta.utype)}{data_type}{flags}</column>"
    )


def _table_xml(
    table: CatalogTable,
    keys: Sequence[ForeignKey],
    detail: bool,
    root: str = "table",
    namespaces: str = "",
) -> str:
    parts = [f"<name>{text(table.table_name)}</name>{_optional('description', table.description)}"]
    if detail:
        parts += [_column_xml(c) for c in table.columns]
        for key in keys:
            if key.from_table != table.table_name:
                continue
            columns = "".join(
                f"<fkColumn><fromColumn>{text(a)}</fromColumn><targetColumn>{text(b)}</targetColumn></fkColumn>"
                for a, b in key.columns
            )
            parts.append(
                f"<foreignKey><targetTable>{text(key.target_table)}</targetTable>{columns}"
                f"{_optional('description', key.description)}{_optional('utype', key.utype)}"
                "</foreignKey>"
            )
    return f'<{root}{namespaces} type="{attr(table.table_type)}">{"".join(parts)}</{root}>'


def tables_document(catalog: Catalog, info: TableSetInfo, *, detail: bool = True) -> bytes:
    """VOSI tableset of every published table; ``detail=False`` leaves out columns and keys."""
    by_schema: dict[str, list[CatalogTable]] = {}
    for table in catalog.tables:
        by_schema.setdefault(table.schema_name, []).append(table)
    for name in info.schema_descriptions:
        by_schema.setdefault(name, [])
    schemas = []
    for name, tables in by_schema.items():
        body = "".join(_table_xml(t, info.foreign_keys, detail) for t in tables)
        description = _optional("description", info.schema_descriptions.get(name))
        schemas.append(f"<schema><name>{text(name)}</name>{description}{body}</schema>")
    return (
        f'{_DECLARATION}<vosi:tableset xmlns:vosi="{VOSI_TABLES_NS}" xmlns:vs="{VS_NS}"'
        f' xmlns:xsi="{XSI_NS}">{"".join(schemas)}</vosi:tableset>\n'
    ).encode()


def table_document(table: CatalogTable, info: TableSetInfo) -> bytes:
    """VOSI ``/tables/{name}``: one ``<vosi:table>`` with full detail."""
    namespaces = f' xmlns:vosi="{VOSI_TABLES_NS}" xmlns:vs="{VS_NS}" xmlns:xsi="{XSI_NS}"'
    body = _table_xml(table, info.foreign_keys, True, root="vosi:table", namespaces=namespaces)
    return f"{_DECLARATION}{body}\n".encode()
