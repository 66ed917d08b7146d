-- Named queries of tapd.catalog (TAP_SCHEMA maintenance and reading).

-- name: role_exists
SELECT 1 FROM pg_roles WHERE rolname = %s;

-- name: relation
SELECT c.oid, n.nspname, c.relname, c.relkind, obj_description(c.oid, 'pg_class')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%s);

-- name: relation_columns
SELECT a.attname, format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum),
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND a.attnum = ANY (i.indkey))
FROM pg_attribute a
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;

-- name: schema_comment
SELECT obj_description(n.oid, 'pg_namespace') FROM pg_namespace n WHERE n.nspname = %s;

-- name: insert_schema
INSERT INTO tap_schema.schemas (schema_name, description) VALUES (%s, %s)
ON CONFLICT (schema_name) DO NOTHING;

-- name: upsert_table
INSERT INTO tap_schema.tables (schema_name, table_name, table_type, utype, description, nrows)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (table_name) DO UPDATE
SET schema_name = EXCLUDED.schema_name, table_type = EXCLUDED.table_type,
    utype = EXCLUDED.utype, description = EXCLUDED.description, nrows = EXCLUDED.nrows;

-- name: row_estimate
-- The planner's row count (-1: never analysed); a partitioned table's is its leaves' sum.
SELECT CASE WHEN c.relkind = 'p'
            THEN (SELECT CASE WHEN bool_or(l.reltuples < 0) THEN -1 ELSE sum(l.reltuples) END
                  FROM pg_partition_tree(c.oid) AS p JOIN pg_class l ON l.oid = p.relid
                  WHERE p.isleaf)
            ELSE c.reltuples END
FROM pg_class c WHERE c.oid = %s;

-- name: delete_columns
DELETE FROM tap_schema.columns WHERE table_name = %s;

-- name: insert_column
INSERT INTO tap_schema.columns (table_name, column_name, datatype, arraysize, xtype, "size",
    description, utype, unit, ucd, indexed, principal, std, column_index)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s);

-- name: foreign_keys
SELECT fn.nspname || '.' || fc.relname || '.' || con.conname,
       fn.nspname, fc.relname, tn.nspname, tc.relname,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, i)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.i),
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, i)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.i)
FROM pg_constraint con
JOIN pg_class fc ON fc.oid = con.conrelid JOIN pg_namespace fn ON fn.oid = fc.relnamespace
JOIN pg_class tc ON tc.oid = con.confrelid JOIN pg_namespace tn ON tn.oid = tc.relnamespace
WHERE con.contype = 'f' AND (con.conrelid = %s OR con.confrelid = %s)
ORDER BY 1;

-- name: insert_key
INSERT INTO tap_schema.keys (key_id, from_table, target_table) VALUES (%s, %s, %s);

-- name: insert_key_column
INSERT INTO tap_schema.key_columns (key_id, from_column, target_column) VALUES (%s, %s, %s);

-- name: find_table
SELECT table_name, schema_name FROM tap_schema.tables WHERE table_name = %s;

-- name: delete_empty_schemas
DELETE FROM tap_schema.schemas s
WHERE s.schema_name <> 'tap_schema'
  AND NOT EXISTS (SELECT 1 FROM tap_schema.tables t WHERE t.schema_name = s.schema_name);

-- name: catalog_columns
-- (nrows through to_jsonb: a TAP_SCHEMA made before the column existed still reads)
SELECT t.table_name, t.schema_name, t.table_type, t.description,
       c.column_name, c.datatype, c.arraysize, c.xtype, c.unit, c.ucd, c.utype, c.description,
       c.indexed, c.principal, c.std, (to_jsonb(t) ->> 'nrows')::bigint
FROM tap_schema.tables t JOIN tap_schema.columns c ON c.table_name = t.table_name
ORDER BY t.table_name, c.column_index, c.column_name;

-- name: attribute_types
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY (%s) AND a.attnum > 0 AND NOT a.attisdropped;

-- name: keys
SELECT k.key_id, k.from_table, k.target_table, k.description, k.utype, kc.from_column, kc.target_column
FROM tap_schema.keys k LEFT JOIN tap_schema.key_columns kc ON kc.key_id = k.key_id
ORDER BY k.key_id, kc.from_column;

-- name: tap_schema_version
-- Changes whenever a row of TAP_SCHEMA is inserted, updated or deleted: every new row
-- version has a new xmin, and a deletion changes a count. Cheap (5,000 columns: ~2 ms).
SELECT concat_ws('/',
    (SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM tap_schema.schemas),
    (SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM tap_schema.tables),
    (SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM tap_schema.columns),
    (SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM tap_schema.keys),
    (SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM tap_schema.key_columns));
