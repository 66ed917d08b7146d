-- Schema version 7: HTTP services announce themselves, for `tapd status`.

-- One row per running HTTP service process (tapd serve), refreshed while it
-- runs: what `tapd status` lists as the services seen recently (hosts is
-- where a fleet's hosts fetch each other's job files, when configured).
CREATE TABLE {schema}.services (
    instance text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    url text NOT NULL,
    metrics_url text,
    started timestamptz NOT NULL DEFAULT now(),
    heartbeat timestamptz NOT NULL DEFAULT now()
);

INSERT INTO {schema}.schema_version (version) VALUES (7);
