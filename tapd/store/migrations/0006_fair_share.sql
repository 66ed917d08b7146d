-- Schema version 6: fair share. Each job names the account it counts for
-- (its owner, or an anonymous client's address); the claim reads an
-- account's oldest queued jobs, and walks the accounts, through an index of
-- their own, and the head of the queue through an index no per-account query
-- can pick by mistake.

ALTER TABLE {schema}.jobs ADD COLUMN account text GENERATED ALWAYS AS (
    CASE WHEN owner IS NOT NULL THEN 'owner:' || owner
         ELSE 'address:' || coalesce(client_address, '') END) STORED;

CREATE INDEX jobs_queue_by_account ON {schema}.jobs (account, queued_time, job_id)
    WHERE phase = 'QUEUED';

DROP INDEX {schema}.jobs_queue;
CREATE INDEX jobs_queue_in_time ON {schema}.jobs (queued_time, job_id)
    WHERE phase = 'QUEUED' AND queued_time IS NOT NULL;

INSERT INTO {schema}.schema_version (version) VALUES (6);
