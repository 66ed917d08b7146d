-- Migration 5: several application hosts (issue 14). A job's files live in the
-- jobs directory of the host that wrote them: its inline uploads on the host
-- that received them (upload_host), its result and error document on the host
-- that ran it (runner_host). Each HTTP service advertises the address other
-- hosts reach those files at, with a token they must present.

ALTER TABLE {schema}.jobs ADD COLUMN upload_host text;

CREATE TABLE {schema}.hosts (
    name text PRIMARY KEY,
    internal_url text NOT NULL,
    token text NOT NULL,
    advertised timestamptz NOT NULL DEFAULT now()
);

INSERT INTO {schema}.schema_version (version) VALUES (5);
