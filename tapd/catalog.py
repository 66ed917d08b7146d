"""TAP_SCHEMA: the single source of what is published, and its in-memory view.

The database's TAP_SCHEMA tables (TAP 1.1 §4) say which tables and columns
users may query; ``load_catalog`` reads them (joined with PostgreSQL's own
catalog for the real column types) into a ``Catalog`` that the ADQL checker
resolves names against. Uploaded tables are added per job with
``Catalog.with_uploads``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tapd.columns import ColumnMeta


@dataclass(frozen=True)
class CatalogColumn:
    """A published column."""

    name: str  # as in TAP_SCHEMA.columns.column_name (quotes included if delimited)
    sql_name: str  # the PostgreSQL column name, exact case, unquoted
    pg_type: str  # PostgreSQL type as format_type() prints it, e.g. "double precision", "spoint"
    meta: ColumnMeta  # VOTable type, unit, UCD, utype, description, xtype
    indexed: bool = False
    principal: bool = False
    std: bool = False


@dataclass(frozen=True)
class CatalogTable:
    """A published table (or an uploaded one, visible to one job)."""

    schema_name: str  # TAP_SCHEMA.tables.schema_name, e.g. "public", "TAP_SCHEMA", "TAP_UPLOAD"
    table_name: str  # TAP_SCHEMA.tables.table_name, qualified, e.g. "public.stars"
    sql_schema: str  # PostgreSQL schema, exact case ("pg_temp" for uploads)
    sql_table: str  # PostgreSQL table name, exact case
    columns: tuple[CatalogColumn, ...]
    description: str | None = None
    table_type: str = "table"


@dataclass(frozen=True)
class Catalog:
    """Everything a query may reach."""

    tables: tuple[CatalogTable, ...]

    def with_uploads(self, uploads: tuple[CatalogTable, ...]) -> Catalog:
        """This catalog plus a job's uploaded tables (schema TAP_UPLOAD)."""
        return Catalog(tables=self.tables + uploads)
