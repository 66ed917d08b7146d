-- Migration 3: anonymous jobs remember the client address they came from, so
-- they can be counted per address against limits.jobs_per_owner and a job list
-- can show an anonymous caller only its own (NULL for named owners' jobs and
-- for jobs created before this column).

ALTER TABLE {schema}.jobs ADD COLUMN client_address text;

CREATE INDEX jobs_client_address ON {schema}.jobs (client_address, creation_time)
    WHERE owner IS NULL;

INSERT INTO {schema}.schema_version (version) VALUES (3);
