"""VOSI endpoints: /capabilities, /availability, /tables.

Capabilities come from local state only (configuration, the format registry,
the ADQL translator's feature list); availability is a real check of the
database and of the runner daemons' heartbeats; /tables is read from
TAP_SCHEMA, the same source the ADQL checker and the result writers use.
"""

from __future__ import annotations

from email.utils import format_datetime
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from starlette.requests import Request
from starlette.responses import Response

from tapd.config import Config
from tapd.http import responses
from tapd.http.problems import NotFound
from tapd.http.service import TapService, service_of
from tapd.http.vosi import (
    UPLOAD_HTTP,
    UPLOAD_HTTPS,
    UPLOAD_INLINE,
    VOTABLE_IVO_IDS,
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
from tapd.store.connection import one_line


def output_formats() -> list[OutputFormat]:
    """What this host can write, from the format registry (``tapd.formats``)."""
    from tapd.formats import available_formats

    return [
        OutputFormat(fmt.mime_type, tuple(fmt.aliases), VOTABLE_IVO_IDS.get(fmt.key))
        for fmt in available_formats()
    ]


#: TAPRegExt feature-type IVOIDs as TAPRegExt 1.0 spells them. ADQL 2.1 §4.1 asks
#: for lower case, but IVOIDs compare case-insensitively and STILTS/TOPCAT (Debian
#: 12's 3.4.7) only recognise this spelling: lower case makes them "custom" features.
FEATURES = "ivo://ivoa.net/std/TAPRegExt#features-"
#: ADQL 2.1's conditional functions came after STILTS 3.4.7, which calls the
#: TAPRegExt spelling of this key an unknown standard key (an error); in the lower
#: case ADQL 2.1 prescribes it is merely a feature type STILTS does not know.
CONDITIONAL_FEATURES = "ivo://ivoa.net/std/tapregext#features-adql-conditional"


def adql_features() -> dict[str, list[str]]:
    """The optional ADQL 2.1 features tapd's translator accepts, by TAPRegExt feature type.

    Function names come from the translator's function registry; the syntax
    features are listed here. tests/http checks that every declared form
    translates.
    """
    from tapd.adql.functions import STANDARD_FUNCTIONS

    def family(name: str) -> list[str]:
        return sorted(f for f, spec in STANDARD_FUNCTIONS.items() if spec.family == name)

    return {
        FEATURES + "adqlgeo": family("geometry"),
        FEATURES + "adql-string": [*family("string"), "ILIKE"],
        FEATURES + "adql-offset": ["OFFSET"],
        FEATURES + "adql-type": ["CAST"],
        CONDITIONAL_FEATURES: family("conditional"),
        FEATURES + "adql-unit": family("unit"),
        FEATURES + "adql-common-table": ["WITH"],
        FEATURES + "adql-sets": ["UNION", "EXCEPT", "INTERSECT"],
    }


def language_features(config: Config) -> dict[str, list[LanguageFeature]]:
    """Optional ADQL features the translator supports, and configured UDFs (TRE-03)."""
    features: dict[str, list[LanguageFeature]] = {}
    for feature_type, forms in adql_features().items():
        features.setdefault(feature_type, []).extend(LanguageFeature(form) for form in forms)
    udfs = list(config.udfs)
    if udfs:
        features.setdefault(FEATURES + "udf", []).extend(
            LanguageFeature(signature) for signature in udfs
        )
    return features


def service_capabilities(
    config: Config, base_url: str, *, examples: bool = False
) -> ServiceCapabilities:
    """The TAPRegExt description of this service: what jobs really get (TRE-06..09);
    ``examples``: it serves the DALI examples document."""
    # TAP 1.1 §2.7.6: a service with uploads supports http(s) URLs too. Which
    # URLs this one fetches is policy (``http.upload_url_allow``, empty by
    # default: then a URL upload fails with a message naming that setting).
    upload_methods = [UPLOAD_INLINE, UPLOAD_HTTP, UPLOAD_HTTPS]
    execution_max = int(config.execution_duration_max)
    return ServiceCapabilities(
        base_url=base_url,
        formats=output_formats(),
        limits=Limits(
            retention=(int(config.destruction_default), int(config.destruction_max)),
            execution_duration=(
                min(int(config.execution_duration_default), execution_max),
                execution_max,
            ),
            output_rows=(int(config.maxrec_default), int(config.maxrec_max)),
            upload_bytes=int(config.upload_max_bytes),
        ),
        features=language_features(config),
        upload_methods=upload_methods,
        examples_url=f"{base_url}/examples" if examples else None,
    )


#: Capabilities documents kept per base URL (it comes from the request's Host
#: unless ``http.public_url`` is set, so the number kept is bounded).
CAPABILITIES_KEPT = 16


async def capabilities(request: Request) -> Response:
    service = service_of(request)
    base_url = service.base_url(request)
    document = service.capabilities_documents.get(base_url)
    if document is None:  # 0.3 ms to build; clients such as pyvo ask often
        caps = service_capabilities(service.config, base_url, examples=service.examples is not None)
        document = capabilities_document(caps)
        if len(service.capabilities_documents) < CAPABILITIES_KEPT:
            service.capabilities_documents[base_url] = document
    response = responses.xml(document)
    # VOSI 1.1 §3.1: capabilities come from the configuration, read at start-up.
    response.headers["Last-Modified"] = format_datetime(service.started, usegmt=True)
    return response


async def availability(request: Request) -> Response:
    """Available when PostgreSQL answers and at least one runner daemon has a fresh heartbeat."""
    service = service_of(request)
    timeout = float(service.config.heartbeat_timeout)
    try:
        runners = await service.store(lambda s: s.list_runners())
    except (psycopg.Error, PoolTimeout) as exc:
        notes = [f"the database is not reachable: {one_line(exc)}"]
        return responses.xml(availability_document(False, notes, service.started))
    live = [r for r in runners if r.is_live(timeout)]
    if not live:
        note = "no runner daemon is alive (no heartbeat in the last %g s): async jobs would wait"
        return responses.xml(availability_document(False, [note % timeout], service.started))
    slots = sum(r.usable_slots for r in live)
    # A daemon's own account of why it cannot work normally (spares that cannot
    # connect, claims the database refuses): the cause an operator must fix.
    causes = sorted({r.degraded for r in live if r.degraded})
    if not slots:
        note = (
            f"{len(live)} runner daemon(s) alive but no job slot is usable: async jobs would wait"
        )
        return responses.xml(availability_document(False, [note, *causes], service.started))
    note = f"{len(live)} runner daemon(s) alive with {slots} job slots"
    return responses.xml(availability_document(True, [note, *causes], service.started))


_SCHEMAS_SQL = """
SELECT schema_name, description FROM tap_schema.schemas
ORDER BY schema_index NULLS LAST, schema_name
"""
_KEYS_SQL = """
SELECT k.key_id, k.from_table, k.target_table, k.description, k.utype,
       c.from_column, c.target_column
FROM tap_schema.keys AS k JOIN tap_schema.key_columns AS c USING (key_id)
ORDER BY k.key_id, c.from_column
"""


def table_set_info(conn: psycopg.Connection[Any]) -> TableSetInfo:
    """Schema descriptions and foreign keys from TAP_SCHEMA (what ``Catalog`` does not hold)."""
    schemas = {name: description for name, description in conn.execute(_SCHEMAS_SQL)}
    keys: dict[str, ForeignKey] = {}
    for key_id, source, target, description, utype, from_column, target_column in conn.execute(
        _KEYS_SQL
    ):
        known = keys.get(key_id)
        pairs = (known.columns if known else ()) + ((from_column, target_column),)
        keys[key_id] = ForeignKey(source, target, pairs, description, utype)
    return TableSetInfo(schemas, list(keys.values()))


async def _catalog_and_info(service: TapService) -> tuple[Any, TableSetInfo]:
    from starlette.concurrency import run_in_threadpool

    from tapd.catalog import load_catalog

    def read() -> tuple[Any, TableSetInfo]:
        with service.pool.connection() as conn:
            return load_catalog(conn), table_set_info(conn)

    return await run_in_threadpool(read)


async def tables(request: Request) -> Response:
    """VOSI tables; ``detail=min`` leaves out columns (VOSI 1.1 §3.3). The document is
    built again only when TAP_SCHEMA changed since it was last built."""
    from starlette.concurrency import run_in_threadpool

    from tapd.catalog import load_catalog, tap_schema_version

    service = service_of(request)
    detail = request.query_params.get("detail", "max").lower() != "min"

    def read() -> bytes:
        with service.pool.connection() as conn:
            version = tap_schema_version(conn)
            known = service.tablesets.get(detail)
            if known is not None and known[0] == version:
                return known[1]
            # read after the version: a change in between makes the next request rebuild
            document = tables_document(load_catalog(conn), table_set_info(conn), detail=detail)
        service.tablesets[detail] = (version, document)
        return document

    return responses.xml(await run_in_threadpool(read))


async def table(request: Request) -> Response:
    """VOSI ``/tables/{name}``: one table, full detail; the name exactly as in the tableset."""
    service = service_of(request)
    name = request.path_params["table_name"]
    catalog, info = await _catalog_and_info(service)
    exact = [t for t in catalog.tables if t.table_name == name]
    # Regular ADQL identifiers are case-insensitive: TAP_SCHEMA.columns is tap_schema.columns.
    folded = [t for t in catalog.tables if '"' not in name and t.table_name.lower() == name.lower()]
    for candidate in exact or folded[:1]:
        return responses.xml(table_document(candidate, info))
    raise NotFound(f"there is no table {name!r}: /tables lists the published ones")
