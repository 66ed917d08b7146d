-- Schema version 9: PostgreSQL's estimate of a running job's result rows
-- (EXPLAIN, planned before the query runs), recorded with its progress.

ALTER TABLE {schema}.jobs ADD COLUMN progress_expected_rows bigint;

INSERT INTO {schema}.schema_version (version) VALUES (9);
