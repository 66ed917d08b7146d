"""The home page (the TAP base URL) and the table browser."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from tapd.catalog import Catalog, CatalogTable
from tapd.http.service import service_of
from tapd.http.web.render import render_page


async def home(request: Request) -> Response:
    """The base URL: what the service is and offers, and how to use it (TAP-03)."""
    from tapd.formats import available_formats

    service = service_of(request)
    config = service.config
    base = service.base_url(request)
    snippet = (
        "import pyvo\n"
        f"service = pyvo.dal.TAPService({base!r})\n"
        "print(service.run_sync('SELECT TOP 5 * FROM TAP_SCHEMA.tables').to_table())"
    )
    limits = {
        "maxrec_default": int(config.maxrec_default),
        "maxrec_max": int(config.maxrec_max),
        "sync_seconds": int(config.sync_execution_duration),
        "async_seconds": int(config.execution_duration_max),
        "upload_bytes": int(config.upload_max_bytes),
        "upload_rows": int(config.upload_max_rows),
        "retention_days": int(config.destruction_default) // 86400,
    }
    context = {
        "description": config.description,
        "contact": config.contact,
        "licence": config.data_licence,
        "formats": available_formats(),
        "limits": limits,
        "snippet": snippet,
    }
    return render_page(request, "home.html", context)


def search_text(table: CatalogTable) -> str:
    """What the tables filter searches (lower case): the table's name and description, its
    columns' names, descriptions and UCDs. The page's script searches the same text."""
    texts = [table.table_name, table.description or ""]
    for column in table.columns:
        texts += [column.name, column.meta.description or "", column.meta.ucd or ""]
    return " ".join(texts).lower()


def table_matches(table: CatalogTable, words: list[str]) -> bool:
    """True when every word (lower case) occurs in the table's ``search_text``."""
    haystack = search_text(table)
    return all(word in haystack for word in words)


async def tables(request: Request) -> Response:
    """GET /web/tables: schemas, tables (rows as TAP_SCHEMA.tables.nrows has them) and columns;
    ``q`` keeps the tables matching every word."""
    from tapd.http.metadata import table_set_info

    service = service_of(request)

    def read() -> tuple[Catalog, Any]:
        with service.pool.connection() as conn:
            return service.catalog(conn), table_set_info(conn)

    catalog, info = await run_in_threadpool(read)
    query = request.query_params.get("q", "")
    words = query.lower().split()
    schemas: dict[str, list[CatalogTable]] = {}
    for table in catalog.tables:
        if table_matches(table, words):
            schemas.setdefault(table.schema_name, []).append(table)
    context = {
        "schemas": [
            (name, info.schema_descriptions.get(name), tables) for name, tables in schemas.items()
        ],
        "filter": query,
        "search_text": search_text,
        "shown": sum(len(v) for v in schemas.values()),
        "total": len(catalog.tables),
    }
    return render_page(request, "tables.html", context)
