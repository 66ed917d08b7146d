-- Migration 2: a runner daemon says in its row whether it can do its work.
-- usable_slots: job slots that are running a job or can take one now (fewer
-- than max_jobs while its spare children cannot connect, none while its
-- claims fail); NULL (a daemon older than this column) means max_jobs.
-- degraded: why the daemon is not working normally (the failing operations,
-- each with its cause, SQLSTATE and the server's message), NULL when healthy;
-- degraded_since: when the row first said so.

ALTER TABLE {schema}.runners
    ADD COLUMN usable_slots integer,
    ADD COLUMN degraded text,
    ADD COLUMN degraded_since timestamptz;

INSERT INTO {schema}.schema_version (version) VALUES (2);
