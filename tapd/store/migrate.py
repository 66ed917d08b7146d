"""Create or upgrade the job store schema: ``schema.sql`` plus numbered migrations.

A fresh database gets ``schema.sql`` (the whole current schema); an older one
gets the migrations ``migrations/NNNN_*.sql`` after its recorded version, in
order; a newer one is refused (no downgrades). Everything runs in one
transaction under an advisory lock, so concurrent ``tapd initdb`` runs are safe
and a failed upgrade changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from tapd.store.errors import SchemaVersionError
from tapd.store.queries import bind_schema, check_schema_name, read_sql_file

_MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_SCHEMA_VERSION_LINE = re.compile(
    r"INSERT INTO \{schema\}\.schema_version \(version\) VALUES \((\d+)\);"
)


@dataclass(frozen=True)
class Migration:
    version: int
    filename: str

    def sql(self) -> str:
        return resources.files("tapd.store").joinpath("migrations", self.filename).read_text()


def migrations() -> list[Migration]:
    """The packaged migrations, in version order."""
    found = []
    for entry in resources.files("tapd.store").joinpath("migrations").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name))
    found.sort(key=lambda m: m.version)
    return found


def schema_file_version() -> int:
    """The version ``schema.sql`` creates (its last line records it)."""
    match = _SCHEMA_VERSION_LINE.search(read_sql_file("schema.sql"))
    assert match, "schema.sql must end by recording its version"
    return int(match.group(1))


def current_version(conn: psycopg.Connection[Any], schema: str) -> int | None:
    """The schema version recorded in the database, or None if tapd is not installed."""
    check_schema_name(schema)
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}".schema_version',)
    ).fetchone()
    if not row or not row[0]:
        return None
    found = conn.execute(
        bind_schema("SELECT max(version) FROM {schema}.schema_version", schema)
    ).fetchone()
    return int(found[0]) if found and found[0] is not None else None


def require_current_schema(conn: psycopg.Connection[Any], schema: str) -> int:
    """The schema version, if it is the one this tapd needs; else a clear error."""
    version = current_version(conn, schema)
    wanted = schema_file_version()
    if version is None:
        raise SchemaVersionError(
            f"the database has no tapd schema {schema!r}: run `tapd initdb` first"
        )
    if version != wanted:
        raise SchemaVersionError(
            f"the database's tapd schema is version {version}, this tapd needs {wanted}:"
            + (" run `tapd initdb` to upgrade" if version < wanted else " upgrade tapd")
        )
    return version


@dataclass(frozen=True)
class InitResult:
    before: int | None  # version found (None: fresh)
    after: int


def initialise_schema(conn: psycopg.Connection[Any], schema: str = "tapd") -> InitResult:
    """Create the job store, or upgrade it to this tapd's version (idempotent)."""
    check_schema_name(schema)
    target = schema_file_version()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('tapd initdb'))")
        before = current_version(conn, schema)
        if before is None:
            conn.execute(bind_schema(read_sql_file("schema.sql"), schema))
        elif before > target:
            raise SchemaVersionError(
                f"the database's tapd schema {schema!r} is version {before}, newer than this"
                f" tapd's {target}: refusing to downgrade"
            )
        else:
            for migration in migrations():
                if migration.version > before:
                    conn.execute(bind_schema(migration.sql(), schema))
        after = current_version(conn, schema)
    assert after == target, f"schema reached version {after}, expected {target}"
    return InitResult(before=before, after=target)


def apply_migrations(conn: psycopg.Connection[Any], schema: str, up_to: int) -> None:
    """Run migrations 1..``up_to`` on an empty schema (tests compare this with schema.sql)."""
    with conn.transaction():
        for migration in migrations():
            if migration.version <= up_to:
                conn.execute(bind_schema(migration.sql(), schema))
