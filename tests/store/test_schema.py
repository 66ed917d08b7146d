"""The schema: created and upgraded by initdb, the UWS state machine enforced in the database."""

from __future__ import annotations

import psycopg
import pytest

from tapd.store import JobPhase, JobStore, SchemaVersionError
from tapd.store.migrate import (
    apply_migrations,
    current_version,
    initialise_schema,
    migrations,
    require_current_schema,
    schema_file_version,
)
from tapd.store.phases import TRANSITIONS

CATALOG_QUERY = """
SELECT 'column', c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
       || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = %(s)s AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'index', replace(pg_get_indexdef(i.indexrelid), %(s)s || '.', '')
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(s)s
UNION ALL
SELECT 'constraint', conname || ' ' || pg_get_constraintdef(co.oid)
FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace WHERE n.nspname = %(s)s
UNION ALL
SELECT 'function', p.proname || ' ' || replace(pg_get_functiondef(p.oid), %(s)s || '.', '')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(s)s
UNION ALL
SELECT 'trigger', replace(pg_get_triggerdef(t.oid), %(s)s || '.', '')
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(s)s AND NOT t.tgisinternal
UNION ALL
SELECT 'transition', old_phase || '->' || new_phase FROM {schema}.phase_transitions
ORDER BY 1, 2
"""


def describe(conn: psycopg.Connection, schema: str) -> list[tuple[str, str]]:
    query = CATALOG_QUERY.replace("{schema}", schema)
    rows = conn.execute(query.encode(), {"s": schema}).fetchall()
    return [(kind, text.replace(f'"{schema}".', "SCHEMA.")) for kind, text in rows]


def test_initdb_creates_the_schema_once_and_is_idempotent(conn: psycopg.Connection) -> None:
    first = initialise_schema(conn, "tapd")
    second = initialise_schema(conn, "tapd")
    assert (first.before, first.after) == (None, schema_file_version())
    assert (second.before, second.after) == (schema_file_version(), schema_file_version())
    assert require_current_schema(conn, "tapd") == schema_file_version()


def test_initdb_refuses_to_downgrade_a_newer_schema(conn: psycopg.Connection) -> None:
    initialise_schema(conn, "tapd")
    conn.execute("INSERT INTO tapd.schema_version (version) VALUES (999)")
    with pytest.raises(SchemaVersionError, match="refusing to downgrade"):
        initialise_schema(conn, "tapd")
    assert current_version(conn, "tapd") == 999


def test_missing_schema_is_reported_with_what_to_do(conn: psycopg.Connection) -> None:
    with pytest.raises(SchemaVersionError, match="run `tapd initdb`"):
        require_current_schema(conn, "tapd")


def test_replaying_every_migration_gives_exactly_the_schema_file(conn: psycopg.Connection) -> None:
    initialise_schema(conn, "fresh")
    apply_migrations(conn, "replayed", up_to=schema_file_version())
    assert [m.version for m in migrations()] == list(range(1, schema_file_version() + 1))
    assert describe(conn, "replayed") == describe(conn, "fresh")
    assert describe(conn, "fresh")  # the comparison saw something


def test_upgrade_from_each_older_version_reaches_the_current_one(conn: psycopg.Connection) -> None:
    for start in range(1, schema_file_version()):
        schema = f"from_{start}"
        apply_migrations(conn, schema, up_to=start)
        result = initialise_schema(conn, schema)
        assert (result.before, result.after) == (start, schema_file_version())


def test_database_transition_table_matches_the_python_phase_rules(store: JobStore) -> None:
    """(UWS-31)"""
    rows = store.conn.execute("SELECT old_phase, new_phase FROM tapd.phase_transitions").fetchall()
    in_database = {(JobPhase(a), JobPhase(b)) for a, b in rows}
    in_python = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert in_database == in_python


def test_illegal_phase_change_is_refused_even_in_plain_sql(store: JobStore) -> None:
    """(UWS-31)"""
    job = store.create_job({"QUERY": "SELECT 1"}, execution_duration=60, destruction=None)
    with pytest.raises(psycopg.errors.CheckViolation, match="PENDING; it cannot become COMPLETED"):
        store.conn.execute(
            "UPDATE tapd.jobs SET phase = 'COMPLETED' WHERE job_id = %s", (job.job_id,)
        )
    assert store.get_job(job.job_id).phase == JobPhase.PENDING
