"""The home page (the TAP base URL) and the table browser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from tapd.catalog import Catalog, CatalogTable
from tapd.http.service import service_of
from tapd.http.web.render import render_page

#: Tables with fewer pages than this are counted exactly on the tables page; larger
#: ones show PostgreSQL's estimate (a count would read them whole).
EXACT_COUNT_PAGES = 128


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


@dataclass(frozen=True)
class TableView:
    """One table as the tables page shows it."""

    table: CatalogTable
    rows: int | None  # None: not known (never analysed)
    exact: bool

    def matches(self, words: list[str]) -> bool:
        """True when every word occurs in the table's name, description or a column's name,
        description or UCD (case-insensitive)."""
        texts = [self.table.table_name, self.table.description or ""]
        for column in self.table.columns:
            texts += [column.name, column.meta.description or "", column.meta.ucd or ""]
        haystack = " ".join(texts).lower()
        return all(word in haystack for word in words)


def filter_words(text: str | None) -> list[str]:
    return (text or "").lower().split()


_COUNT_SQL = """
SELECT c.reltuples::bigint, c.relpages FROM pg_class AS c WHERE c.oid = to_regclass(%s)
"""


def row_counts(
    conn: psycopg.Connection[Any], catalog: Catalog
) -> dict[str, tuple[int | None, bool]]:
    """Rows of each published table: exact for small tables, PostgreSQL's estimate otherwise."""
    counts: dict[str, tuple[int | None, bool]] = {}
    for table in catalog.tables:
        name = sql.Identifier(table.sql_schema, table.sql_table)
        found = conn.execute(_COUNT_SQL, [name.as_string(conn)]).fetchone()
        if found is None:
            continue
        estimate, pages = found
        if pages < EXACT_COUNT_PAGES:
            exact = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(name)).fetchone()
            counts[table.table_name] = (int(exact[0]) if exact else None, True)
        else:
            counts[table.table_name] = (int(estimate) if estimate >= 0 else None, False)
    return counts


async def tables(request: Request) -> Response:
    """GET /web/tables: schemas, tables and columns; ``q`` keeps the tables matching every word."""
    from tapd.http.metadata import table_set_info

    service = service_of(request)

    def read() -> tuple[Catalog, Any, dict[str, tuple[int | None, bool]]]:
        with service.pool.connection() as conn:
            catalog = service.catalog(conn)
            return catalog, table_set_info(conn), row_counts(conn, catalog)

    catalog, info, counts = await run_in_threadpool(read)
    query = request.query_params.get("q", "")
    words = filter_words(query)
    schemas: dict[str, list[TableView]] = {}
    for table in catalog.tables:
        rows, exact = counts.get(table.table_name, (None, False))
        view = TableView(table, rows, exact)
        if view.matches(words):
            schemas.setdefault(table.schema_name, []).append(view)
    context = {
        "schemas": [
            (name, info.schema_descriptions.get(name), views) for name, views in schemas.items()
        ],
        "filter": query,
        "shown": sum(len(v) for v in schemas.values()),
        "total": len(catalog.tables),
    }
    return render_page(request, "tables.html", context)
