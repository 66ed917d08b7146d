-- Schema version 8: a running job's progress (rows and bytes of its result
-- written so far), recorded by its daemon every few seconds.

ALTER TABLE {schema}.jobs
    ADD COLUMN progress_rows bigint,
    ADD COLUMN progress_bytes bigint,
    ADD COLUMN progress_time timestamptz;

INSERT INTO {schema}.schema_version (version) VALUES (8);
