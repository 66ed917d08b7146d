"""TAP_SCHEMA: the single source of what is published, and its in-memory view.

The database's TAP_SCHEMA tables (TAP 1.1 §4) say which tables and columns
users may query; ``load_catalog`` reads them (joined with PostgreSQL's own
catalog for the real column types) into a ``Catalog`` that the ADQL checker
resolves names against. Uploaded tables are added per job with
``Catalog.with_uploads``.

``ensure_tap_schema`` creates TAP_SCHEMA (``tapd/tap_schema.sql``), publishes
its own five tables in it, and gives the query role SELECT on it;
``publish_table`` adds or refreshes one table from the PostgreSQL catalog
(names, types, indexes, foreign keys between published tables) plus optional
metadata, and grants the query role SELECT on it; ``unpublish_table`` removes
it again.

Names. A PostgreSQL name that is a valid regular ADQL identifier in lower case
and not a reserved word (``stars``, ``ra``) is published as it is; any other
(``"RA"``, ``"size"``, ``"My Table"``) is published as a delimited identifier,
quotes included, which is how a query must write it.

Metadata file (TOML), ``tapd publish SCHEMA.TABLE --metadata FILE``::

    description = "Bright stars"          # table description
    utype = "..."                         # optional table utype

    [columns.ra]                          # PostgreSQL column name, exact
    description = "Right ascension (ICRS)"
    unit = "deg"
    ucd = "pos.eq.ra;meta.main"
    utype = "..."
    xtype = "..."                         # DALI xtype, when the type alone does not say
    principal = true                      # TAP_SCHEMA.columns.principal
    std = false                           # TAP_SCHEMA.columns.std

Every key is optional. Where the file gives no description, the table's or
column's PostgreSQL COMMENT is used.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tapd.adql.lexicon import adql_name, split_name
from tapd.columns import ColumnMeta
from tapd.errors import TapdError
from tapd.sqltypes import votable_type


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
    nrows: int | None = None  # estimated from statistics when published (None: a view)


@dataclass(frozen=True)
class Catalog:
    """Everything a query may reach."""

    tables: tuple[CatalogTable, ...]

    def with_uploads(self, uploads: tuple[CatalogTable, ...]) -> Catalog:
        """This catalog plus a job's uploaded tables (schema TAP_UPLOAD)."""
        return Catalog(tables=self.tables + uploads)

    @cached_property
    def tables_by_name(self) -> Mapping[str, tuple[CatalogTable, ...]]:
        """Tables by the lower-cased unqualified table part of their name (for name lookup)."""
        index: dict[str, list[CatalogTable]] = {}
        for table in self.tables:
            index.setdefault(split_name(table.table_name)[-1][0].lower(), []).append(table)
        return {key: tuple(value) for key, value in index.items()}


class CatalogError(TapdError):
    """A table cannot be published or unpublished as asked."""


# ---- names


def pg_name(published: str) -> str:
    """The PostgreSQL name of one published name part (regular names fold to lower case)."""
    if '"' not in published and "." not in published:
        return published.lower()  # the common case, without the parser (5,000 columns: 50 ms)
    (text, delimited), *_ = split_name(published) or [("", False)]
    return text if delimited else text.lower()


# ---- metadata files


@dataclass(frozen=True)
class ColumnMetadata:
    """What a metadata file (or a caller) says about one column."""

    description: str | None = None
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    xtype: str | None = None
    principal: bool | None = None
    std: bool | None = None


@dataclass(frozen=True)
class TableMetadata:
    """What a metadata file (or a caller) says about a table and its columns."""

    description: str | None = None
    utype: str | None = None
    columns: Mapping[str, ColumnMetadata] = field(default_factory=dict)


_COLUMN_KEYS = {
    "description": str,
    "unit": str,
    "ucd": str,
    "utype": str,
    "xtype": str,
    "principal": bool,
    "std": bool,
}


def metadata_from_mapping(data: Mapping[str, Any], where: str) -> TableMetadata:
    """A ``TableMetadata`` from parsed TOML (or any mapping of the same shape)."""
    unknown = set(data) - {"description", "utype", "columns"}
    if unknown:
        raise CatalogError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
            "allowed: description, utype, [columns.NAME]"
        )
    for key in ("description", "utype"):
        if key in data and not isinstance(data[key], str):
            raise CatalogError(f"{where}: {key} must be a string")
    columns_data = data.get("columns", {})
    if not isinstance(columns_data, Mapping):
        raise CatalogError(f"{where}: columns must be a table of [columns.NAME] sections")
    columns: dict[str, ColumnMetadata] = {}
    for name, values in columns_data.items():
        if not isinstance(values, Mapping):
            raise CatalogError(f"{where}: [columns.{name}] must be a table")
        for key, value in values.items():
            expected = _COLUMN_KEYS.get(key)
            if expected is None:
                raise CatalogError(
                    f"{where}: [columns.{name}] has unknown key {key!r}; "
                    f"allowed: {', '.join(_COLUMN_KEYS)}"
                )
            if not isinstance(value, expected):
                raise CatalogError(f"{where}: [columns.{name}] {key} must be {expected.__name__}")
        columns[name] = ColumnMetadata(**values)
    return TableMetadata(data.get("description"), data.get("utype"), columns)


def read_metadata_file(path: Path) -> TableMetadata:
    """Table and column metadata from a TOML file (format in the module docstring)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CatalogError(f"cannot read metadata file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from None
    return metadata_from_mapping(data, str(path))


# ---- SQL


def _queries() -> dict[str, str]:
    text = resources.files("tapd").joinpath("catalog.sql").read_text()
    queries: dict[str, str] = {}
    for block in re.split(r"^-- name: ", text, flags=re.MULTILINE)[1:]:
        name, _, body = block.partition("\n")
        queries[name.strip()] = body.strip().rstrip(";")
    return queries


QUERIES = _queries()


def column_size(arraysize: str | None) -> int | None:
    """TAP_SCHEMA.columns."size" (TAP 1.1 §4.3): the integer part of a
    one-dimensional arraysize ("256*" -> 256, "3" -> 3); None for scalars,
    variable length without a bound ("*") and several dimensions."""
    match = re.fullmatch(r"(\d+)\*?", arraysize or "")
    return int(match.group(1)) if match else None


def _query(name: str) -> sql.SQL:
    return sql.SQL(QUERIES[name])  # type: ignore[arg-type,unused-ignore]


TAP_SCHEMA_METADATA: dict[str, TableMetadata] = {
    "schemas": TableMetadata(
        "Schemas published by this TAP service",
        columns={
            "schema_name": ColumnMetadata("Fully qualified schema name", principal=True, std=True),
            "utype": ColumnMetadata("UType of the schema", principal=True, std=True),
            "description": ColumnMetadata("Description of the schema", principal=True, std=True),
            "schema_index": ColumnMetadata(
                "Recommended sort order of schemas", principal=True, std=True
            ),
        },
    ),
    "tables": TableMetadata(
        "Tables published by this TAP service",
        columns={
            "schema_name": ColumnMetadata("Schema the table belongs to", principal=True, std=True),
            "table_name": ColumnMetadata("Fully qualified table name", principal=True, std=True),
            "table_type": ColumnMetadata("One of: table, view", principal=True, std=True),
            "utype": ColumnMetadata("UType of the table", principal=True, std=True),
            "description": ColumnMetadata("Description of the table", principal=True, std=True),
            "table_index": ColumnMetadata(
                "Recommended sort order of tables", principal=True, std=True
            ),
            "nrows": ColumnMetadata(
                "Number of rows, as PostgreSQL's statistics estimated it when the table was"
                " published (tapd extension; empty for views)",
                principal=True,
            ),
        },
    ),
    "columns": TableMetadata(
        "Columns of the published tables",
        columns={
            "table_name": ColumnMetadata(
                "Fully qualified name of the column's table", principal=True, std=True
            ),
            "column_name": ColumnMetadata("Column name", principal=True, std=True),
            "datatype": ColumnMetadata("VOTable datatype of the column", principal=True, std=True),
            "arraysize": ColumnMetadata(
                "VOTable arraysize of the column", principal=True, std=True
            ),
            "xtype": ColumnMetadata(
                "DALI/VOTable extended type of the column", principal=True, std=True
            ),
            "size": ColumnMetadata(
                "Length of fixed-length values (deprecated; see arraysize)",
                principal=True,
                std=True,
            ),
            "description": ColumnMetadata("Description of the column", principal=True, std=True),
            "utype": ColumnMetadata("UType of the column", principal=True, std=True),
            "unit": ColumnMetadata("Unit in VO standard format", principal=True, std=True),
            "ucd": ColumnMetadata("UCD of the column", principal=True, std=True),
            "indexed": ColumnMetadata(
                "1 if the column is indexed, else 0", principal=True, std=True
            ),
            "principal": ColumnMetadata(
                "1 if the column is principal, else 0", principal=True, std=True
            ),
            "std": ColumnMetadata(
                "1 if the column is defined by a standard, else 0", principal=True, std=True
            ),
            "column_index": ColumnMetadata(
                "Recommended sort order of columns", principal=True, std=True
            ),
        },
    ),
    "keys": TableMetadata(
        "Foreign keys between published tables",
        columns={
            "key_id": ColumnMetadata("Unique key identifier", principal=True, std=True),
            "from_table": ColumnMetadata(
                "Fully qualified table name of the referencing table", principal=True, std=True
            ),
            "target_table": ColumnMetadata(
                "Fully qualified table name of the referenced table", principal=True, std=True
            ),
            "description": ColumnMetadata("Description of the key", principal=True, std=True),
            "utype": ColumnMetadata("UType of the key", principal=True, std=True),
        },
    ),
    "key_columns": TableMetadata(
        "Columns of the foreign keys",
        columns={
            "key_id": ColumnMetadata(
                "Key identifier (TAP_SCHEMA.keys.key_id)", principal=True, std=True
            ),
            "from_column": ColumnMetadata(
                "Column name in the referencing table", principal=True, std=True
            ),
            "target_column": ColumnMetadata(
                "Column name in the referenced table", principal=True, std=True
            ),
        },
    ),
}
TAP_SCHEMA_DESCRIPTION = (
    "TAP metadata: the schemas, tables, columns and keys this service publishes"
)


def ensure_role(conn: psycopg.Connection[Any], role: str) -> None:
    """Create ``role`` unless it exists: the query role, which user queries log in as
    (``LOGIN``: it is the session's own role, so a query cannot leave it)."""
    if conn.execute(_query("role_exists"), [role]).fetchone():
        return
    try:
        with conn.transaction():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    except psycopg.errors.DuplicateObject:
        pass  # created meanwhile by another process


def ensure_tap_schema(conn: psycopg.Connection[Any], query_role: str) -> None:
    """Create TAP_SCHEMA if missing, publish its own tables in it, let ``query_role`` read it.

    Creates ``query_role`` (LOGIN) when it does not exist. Idempotent.
    """
    ddl = resources.files("tapd").joinpath("tap_schema.sql").read_text()
    with conn.transaction():
        conn.execute(ddl.encode())
    ensure_role(conn, query_role)
    with conn.transaction():
        for table, metadata in TAP_SCHEMA_METADATA.items():
            _publish(conn, f"tap_schema.{table}", metadata, query_role)
        conn.execute(
            "UPDATE tap_schema.schemas SET description = %s WHERE schema_name = 'tap_schema'",
            [TAP_SCHEMA_DESCRIPTION],
        )


def publish_table(
    conn: psycopg.Connection[Any],
    name: str,
    metadata: TableMetadata | Mapping[str, Any] | None,
    query_role: str,
) -> CatalogTable:
    """Publish (or refresh) the table or view ``name`` ("schema.table", PostgreSQL syntax).

    Columns, types, indexes and foreign keys come from PostgreSQL; descriptions,
    units, UCDs, utypes, xtypes and flags from ``metadata``, else from COMMENTs.
    ``query_role`` gets SELECT on it. Returns the published entry.
    """
    if isinstance(metadata, Mapping):
        metadata = metadata_from_mapping(metadata, f"metadata for {name}")
    ensure_tap_schema(conn, query_role)
    with conn.transaction():
        table_name = _publish(conn, name, metadata or TableMetadata(), query_role)
    for table in load_catalog(conn).tables:
        if table.table_name == table_name:
            return table
    raise CatalogError(
        f"{name} was published but cannot be read back from TAP_SCHEMA"
    )  # pragma: no cover


def _relation(conn: psycopg.Connection[Any], name: str) -> tuple[int, str, str, str, str | None]:
    if "." not in name:
        raise CatalogError(f"give the table as SCHEMA.TABLE, e.g. public.{name}")
    try:
        with conn.transaction():
            row = conn.execute(_query("relation"), [name]).fetchone()
    except psycopg.errors.InvalidName:
        row = None
    except psycopg.Error as exc:
        raise CatalogError(
            f"{name!r} is not a valid table name: {str(exc).strip().splitlines()[0]}"
        ) from None
    if row is None:
        raise CatalogError(f"there is no table or view {name} in the database")
    oid, schema, table, kind, description = row
    if kind not in ("r", "v", "m", "p", "f"):
        raise CatalogError(f"{name} is not a table or view")
    return oid, schema, table, ("view" if kind in ("v", "m") else "table"), description


def _publish(
    conn: psycopg.Connection[Any], name: str, metadata: TableMetadata, query_role: str
) -> str:
    oid, schema, table, table_type, comment = _relation(conn, name)
    columns = conn.execute(_query("relation_columns"), [oid]).fetchall()
    known = {row[0] for row in columns}
    unknown = sorted(set(metadata.columns) - known)
    if unknown:
        raise CatalogError(
            f"the metadata names column(s) {', '.join(unknown)} "
            f"that {schema}.{table} does not have; "
            f"its columns are {', '.join(sorted(known))}"
        )
    schema_name = adql_name(schema)
    table_name = f"{schema_name}.{adql_name(table)}"
    conn.execute(_query("insert_schema"), [schema_name, _schema_comment(conn, schema)])
    conn.execute(
        _query("upsert_table"),
        [
            schema_name,
            table_name,
            table_type,
            metadata.utype,
            metadata.description or comment,
            _row_estimate(conn, oid, schema, table) if table_type == "table" else None,
        ],
    )
    conn.execute(_query("delete_columns"), [table_name])
    for index, (column, pg_type, column_comment, indexed) in enumerate(columns, start=1):
        given = metadata.columns.get(column, ColumnMetadata())
        vo = votable_type(pg_type)
        size = column_size(vo.arraysize)
        conn.execute(
            _query("insert_column"),
            [
                table_name,
                adql_name(column),
                vo.datatype,
                vo.arraysize,
                given.xtype or vo.xtype,
                size,
                given.description or column_comment,
                given.utype,
                given.unit,
                given.ucd,
                int(bool(indexed)),
                int(bool(given.principal)),
                int(bool(given.std)),
                index,
            ],
        )
    _refresh_keys(conn, oid)
    conn.execute(
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
            sql.Identifier(schema), sql.Identifier(query_role)
        )
    )
    conn.execute(
        sql.SQL("GRANT SELECT ON {}.{} TO {}").format(
            sql.Identifier(schema), sql.Identifier(table), sql.Identifier(query_role)
        )
    )
    return table_name


def _row_estimate(conn: psycopg.Connection[Any], oid: int, schema: str, table: str) -> int | None:
    """The planner's row count of a table: never a count(*), which would read all of it.
    A table never analysed is analysed first (a sample of at most 30,000 rows by default);
    None when that is not allowed (not the owner) or the table is a foreign one."""
    estimate = _reltuples(conn, oid)
    if estimate is None or estimate < 0:
        try:
            with conn.transaction():
                conn.execute(
                    sql.SQL("ANALYZE {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
                )
        except psycopg.Error:
            return None
        estimate = _reltuples(conn, oid)
    return None if estimate is None or estimate < 0 else round(estimate)


def _reltuples(conn: psycopg.Connection[Any], oid: int) -> float | None:
    row = conn.execute(_query("row_estimate"), [oid]).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def _schema_comment(conn: psycopg.Connection[Any], schema: str) -> str | None:
    row = conn.execute(_query("schema_comment"), [schema]).fetchone()
    return row[0] if row else None


def _refresh_keys(conn: psycopg.Connection[Any], oid: int) -> None:
    """Re-derive TAP_SCHEMA.keys for the foreign keys from and to relation ``oid``."""
    published = {row[0] for row in conn.execute("SELECT table_name FROM tap_schema.tables")}
    for (
        key_id,
        from_schema,
        from_table,
        to_schema,
        to_table,
        from_columns,
        to_columns,
    ) in conn.execute(_query("foreign_keys"), [oid, oid]).fetchall():
        from_name = f"{adql_name(from_schema)}.{adql_name(from_table)}"
        to_name = f"{adql_name(to_schema)}.{adql_name(to_table)}"
        conn.execute("DELETE FROM tap_schema.keys WHERE key_id = %s", [key_id])
        if from_name not in published or to_name not in published:
            continue
        conn.execute(_query("insert_key"), [key_id, from_name, to_name])
        for from_column, to_column in zip(from_columns, to_columns, strict=True):
            conn.execute(
                _query("insert_key_column"), [key_id, adql_name(from_column), adql_name(to_column)]
            )


def unpublish_table(
    conn: psycopg.Connection[Any], name: str, query_role: str | None = None
) -> None:
    """Remove ``name`` ("schema.table" as published, or as PostgreSQL spells it) from TAP_SCHEMA.

    Its columns and keys go with it; when ``query_role`` is given, its SELECT
    grant is revoked. Unpublishing TAP_SCHEMA's own tables is refused.
    """
    with conn.transaction():
        if not _has_tap_schema(conn):
            raise CatalogError(f"{name} is not published: this database has no TAP_SCHEMA yet")
        row = conn.execute(_query("find_table"), [name]).fetchone()
        if row is None:
            try:
                _, schema, table, _, _ = _relation(conn, name)
            except CatalogError:
                raise CatalogError(f"{name} is not published") from None
            row = conn.execute(
                _query("find_table"), [f"{adql_name(schema)}.{adql_name(table)}"]
            ).fetchone()
            if row is None:
                raise CatalogError(f"{name} is not published")
        table_name, schema_name = row
        if schema_name == "tap_schema":
            raise CatalogError("TAP_SCHEMA describes the service itself and cannot be unpublished")
        conn.execute("DELETE FROM tap_schema.tables WHERE table_name = %s", [table_name])
        conn.execute(_query("delete_empty_schemas"))
        if query_role:
            sql_schema, sql_table = (p if d else p.lower() for p, d in split_name(table_name))
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL("REVOKE SELECT ON {}.{} FROM {}").format(
                            sql.Identifier(sql_schema),
                            sql.Identifier(sql_table),
                            sql.Identifier(query_role),
                        )
                    )
            except psycopg.Error:
                pass  # the table or role is gone already: nothing left to revoke


# ---- reading


def _has_tap_schema(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('tap_schema.columns') IS NOT NULL").fetchone()
    return bool(row and row[0])


def load_catalog(conn: psycopg.Connection[Any]) -> Catalog:
    """Everything TAP_SCHEMA publishes, with each column's real PostgreSQL type.

    A published table or column that no longer exists in PostgreSQL is left out.
    """
    if not _has_tap_schema(conn):
        raise CatalogError("this database has no TAP_SCHEMA: create it with tapd initdb")
    rows = conn.execute(_query("catalog_columns")).fetchall()
    by_table: dict[str, list[tuple[Any, ...]]] = {}
    table_rows: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        table_rows.setdefault(row[0], row)
        by_table.setdefault(row[0], []).append(row)
    sql_names = {name: _sql_table(name) for name in table_rows}
    schemas = sorted({s for s, _ in sql_names.values()})
    pg_types: dict[tuple[str, str, str], str] = {}
    for schema, table, column, pg_type in conn.execute(
        _query("attribute_types"), [schemas]
    ).fetchall():
        pg_types[(schema, table, column)] = pg_type
    tables = []
    for name, first in table_rows.items():
        sql_schema, sql_table = sql_names[name]
        columns = []
        for row in by_table[name]:
            (
                _,
                _,
                _,
                _,
                column_name,
                datatype,
                arraysize,
                xtype,
                unit,
                ucd,
                utype,
                description,
                indexed,
                principal,
                std,
                _,
            ) = row
            sql_column = pg_name(column_name)
            pg_type = pg_types.get((sql_schema, sql_table, sql_column))
            if pg_type is None:
                continue
            meta = ColumnMeta(
                name=split_name(column_name)[0][0] if '"' in column_name else column_name,
                datatype=datatype,
                arraysize=arraysize,
                xtype=xtype,
                unit=unit,
                ucd=ucd,
                utype=utype,
                description=description,
            )
            columns.append(
                CatalogColumn(
                    column_name,
                    sql_column,
                    pg_type,
                    meta,
                    bool(indexed),
                    bool(principal),
                    bool(std),
                )
            )
        if columns:
            tables.append(
                CatalogTable(
                    first[1],
                    name,
                    sql_schema,
                    sql_table,
                    tuple(columns),
                    first[3],
                    first[2],
                    None if first[15] is None else int(first[15]),
                )
            )
    return Catalog(tuple(tables))


def _sql_table(table_name: str) -> tuple[str, str]:
    parts = [text if delimited else text.lower() for text, delimited in split_name(table_name)]
    if len(parts) == 1:
        return "public", parts[0]
    return parts[-2], parts[-1]


@dataclass(frozen=True)
class PublishedKey:
    """A TAP_SCHEMA.keys row with its column pairs."""

    key_id: str
    from_table: str
    target_table: str
    columns: tuple[tuple[str, str], ...]
    description: str | None = None
    utype: str | None = None


def tap_schema_keys(conn: psycopg.Connection[Any]) -> list[PublishedKey]:
    """Every foreign key TAP_SCHEMA publishes."""
    keys: dict[str, PublishedKey] = {}
    pairs: dict[str, list[tuple[str, str]]] = {}
    for (
        key_id,
        from_table,
        target_table,
        description,
        utype,
        from_column,
        target_column,
    ) in conn.execute(_query("keys")).fetchall():
        keys.setdefault(
            key_id, PublishedKey(key_id, from_table, target_table, (), description, utype)
        )
        if from_column is not None:
            pairs.setdefault(key_id, []).append((from_column, target_column))
    return [
        PublishedKey(
            k.key_id,
            k.from_table,
            k.target_table,
            tuple(pairs.get(k.key_id, ())),
            k.description,
            k.utype,
        )
        for k in keys.values()
    ]


def tap_schema_version(conn: psycopg.Connection[Any]) -> str:
    """A value that changes whenever anything in TAP_SCHEMA changes (not when a published
    table's own definition does): lets a reader keep what it built from TAP_SCHEMA."""
    row = conn.execute(_query("tap_schema_version")).fetchone()
    return str(row[0]) if row else ""


def tap_schema_schemas(conn: psycopg.Connection[Any]) -> Iterator[tuple[str, str | None]]:
    """(schema_name, description) of every published schema."""
    yield from conn.execute("SELECT schema_name, description FROM tap_schema.schemas ORDER BY 1")


def published_names(tables: Iterable[CatalogTable]) -> list[str]:
    """The qualified names of ``tables`` (for messages)."""
    return sorted(t.table_name for t in tables)
