-- TAP_SCHEMA (TAP 1.1 §4): what tapd publishes. Created by tapd.catalog.ensure_tap_schema;
-- every statement is idempotent. The foreign keys make unpublishing cascade and are
-- themselves published in TAP_SCHEMA.keys (TAP_SCHEMA describes itself).

CREATE SCHEMA IF NOT EXISTS tap_schema;

CREATE TABLE IF NOT EXISTS tap_schema.schemas (
    schema_name  text PRIMARY KEY,
    utype        text,
    description  text,
    schema_index integer
);

CREATE TABLE IF NOT EXISTS tap_schema.tables (
    schema_name text NOT NULL REFERENCES tap_schema.schemas (schema_name) ON DELETE CASCADE,
    table_name  text PRIMARY KEY,
    table_type  text NOT NULL,
    utype       text,
    description text,
    table_index integer
);
-- tapd extension: rows estimated from PostgreSQL's statistics when published
ALTER TABLE tap_schema.tables ADD COLUMN IF NOT EXISTS nrows bigint;

CREATE TABLE IF NOT EXISTS tap_schema.columns (
    table_name   text NOT NULL REFERENCES tap_schema.tables (table_name) ON DELETE CASCADE,
    column_name  text NOT NULL,
    datatype     text NOT NULL,
    arraysize    text,
    xtype        text,
    "size"       integer,
    description  text,
    utype        text,
    unit         text,
    ucd          text,
    indexed      integer NOT NULL,
    principal    integer NOT NULL,
    std          integer NOT NULL,
    column_index integer,
    PRIMARY KEY (table_name, column_name)
);

CREATE TABLE IF NOT EXISTS tap_schema.keys (
    key_id       text PRIMARY KEY,
    from_table   text NOT NULL REFERENCES tap_schema.tables (table_name) ON DELETE CASCADE,
    target_table text NOT NULL REFERENCES tap_schema.tables (table_name) ON DELETE CASCADE,
    description  text,
    utype        text
);

CREATE TABLE IF NOT EXISTS tap_schema.key_columns (
    key_id        text NOT NULL REFERENCES tap_schema.keys (key_id) ON DELETE CASCADE,
    from_column   text NOT NULL,
    target_column text NOT NULL,
    PRIMARY KEY (key_id, from_column)
);
