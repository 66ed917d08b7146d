-- tapd job store, schema version 8 (the whole current schema; tapd/store/migrations
-- upgrades older databases to it). {schema} is replaced by the configured schema
-- name, quoted. Read by tapd.store.migrate; run in one transaction by `tapd initdb`.

CREATE SCHEMA IF NOT EXISTS {schema};

CREATE TABLE {schema}.schema_version (
    version integer PRIMARY KEY,
    applied timestamptz NOT NULL DEFAULT now()
);

-- The UWS state machine (UWS 1.1 section 2.1.3), as data: a phase change not
-- listed here is refused by the trigger below, whoever makes it. Mirrors
-- tapd.store.phases.TRANSITIONS (a test checks they agree). Any phase may
-- become UNKNOWN.
CREATE TABLE {schema}.phase_transitions (
    old_phase text NOT NULL,
    new_phase text NOT NULL,
    PRIMARY KEY (old_phase, new_phase)
);

INSERT INTO {schema}.phase_transitions (old_phase, new_phase) VALUES
    ('PENDING', 'QUEUED'), ('PENDING', 'ABORTED'), ('PENDING', 'ERROR'),
    ('QUEUED', 'EXECUTING'), ('QUEUED', 'ABORTED'), ('QUEUED', 'ERROR'),
    ('EXECUTING', 'COMPLETED'), ('EXECUTING', 'ERROR'), ('EXECUTING', 'ABORTED'),
    ('EXECUTING', 'SUSPENDED'), ('EXECUTING', 'HELD'), ('EXECUTING', 'QUEUED'),
    ('SUSPENDED', 'EXECUTING'), ('SUSPENDED', 'ABORTED'), ('SUSPENDED', 'ERROR'),
    ('HELD', 'EXECUTING'), ('HELD', 'QUEUED'), ('HELD', 'ABORTED'),
    ('COMPLETED', 'ARCHIVED'), ('ERROR', 'ARCHIVED'), ('ABORTED', 'ARCHIVED'),
    ('UNKNOWN', 'PENDING'), ('UNKNOWN', 'QUEUED'), ('UNKNOWN', 'EXECUTING'),
    ('UNKNOWN', 'COMPLETED'), ('UNKNOWN', 'ERROR'), ('UNKNOWN', 'ABORTED'),
    ('UNKNOWN', 'HELD'), ('UNKNOWN', 'SUSPENDED'), ('UNKNOWN', 'ARCHIVED');

-- One row per UWS job.
CREATE TABLE {schema}.jobs (
    job_id text PRIMARY KEY,
    run_id text,
    owner text,
    phase text NOT NULL CHECK (phase IN ('PENDING', 'QUEUED', 'EXECUTING', 'COMPLETED',
        'ERROR', 'ABORTED', 'UNKNOWN', 'HELD', 'SUSPENDED', 'ARCHIVED')),
    creation_time timestamptz NOT NULL DEFAULT now(),
    -- When the job (last) entered QUEUED: the claim order. Kept on a requeue,
    -- so a job put back goes to the head of the queue.
    queued_time timestamptz,
    start_time timestamptz,
    end_time timestamptz,
    execution_duration integer NOT NULL CHECK (execution_duration >= 0),
    destruction timestamptz,
    quote timestamptz,
    -- {"NAME": ["value", ...]}: upper-case names, every value a list (UPLOAD
    -- accumulates; a repeated single-valued parameter is reported at run time).
    parameters jsonb NOT NULL DEFAULT jsonb_build_object(),
    error_type text CHECK (error_type IN ('fatal', 'transient')),
    error_message text,
    error_has_detail boolean NOT NULL DEFAULT false,
    -- [{"id", "filename", "mime_type", "size", "rows", "overflow"}], filename
    -- relative to the job directory.
    results jsonb NOT NULL DEFAULT jsonb_build_array(),
    -- The daemon that claimed the job, its child process and that child's
    -- database backend (cancelled or terminated when the job is aborted).
    runner_instance text,
    runner_host text,
    runner_pid integer,
    runner_backend_pid integer,
    -- How often the job was claimed (a job requeued after losing the database
    -- too often ends in ERROR instead).
    attempts integer NOT NULL DEFAULT 0,
    -- The client address an anonymous job came from (quota and job list per
    -- address); NULL for named owners' jobs.
    client_address text,
    -- The host whose jobs directory holds the job's inline uploads (the one
    -- that received them); its result and error document are on runner_host.
    upload_host text,
    -- Whose job this is for fair share and limits.running_per_owner: the
    -- owner, or an anonymous client's address (as the HTTP service knows it).
    account text GENERATED ALWAYS AS (
        CASE WHEN owner IS NOT NULL THEN 'owner:' || owner
             ELSE 'address:' || coalesce(client_address, '') END) STORED,
    -- How far the job got while EXECUTING: its result's rows and bytes written
    -- so far, recorded by its daemon every few seconds (cleared by a claim).
    progress_rows bigint,
    progress_bytes bigint,
    progress_time timestamptz,
    -- PostgreSQL's estimate of the result's rows (EXPLAIN, before the query ran).
    progress_expected_rows bigint
);

-- The claim reads the head of the queue through this small partial index (its
-- predicate names queued_time so that only queries saying so use it: reading
-- one account's jobs through it would pass over every other account's).
CREATE INDEX jobs_queue_in_time ON {schema}.jobs (queued_time, job_id)
    WHERE phase = 'QUEUED' AND queued_time IS NOT NULL;
CREATE INDEX jobs_executing ON {schema}.jobs (runner_instance) WHERE phase = 'EXECUTING';
CREATE INDEX jobs_destruction ON {schema}.jobs (destruction);
CREATE INDEX jobs_creation ON {schema}.jobs (creation_time);
CREATE INDEX jobs_owner ON {schema}.jobs (owner, creation_time);
CREATE INDEX jobs_client_address ON {schema}.jobs (client_address, creation_time)
    WHERE owner IS NULL;
-- The fair claim reads an account's oldest queued jobs, and walks the
-- accounts with queued jobs, through this index.
CREATE INDEX jobs_queue_by_account ON {schema}.jobs (account, queued_time, job_id)
    WHERE phase = 'QUEUED';

-- One row per live runner daemon; a row whose heartbeat is older than the
-- configured timeout belongs to a dead daemon, and its jobs are reconciled.
CREATE TABLE {schema}.runners (
    instance text PRIMARY KEY,
    host text NOT NULL,
    boot_id text NOT NULL,
    pid integer NOT NULL,
    started timestamptz NOT NULL DEFAULT now(),
    heartbeat timestamptz NOT NULL DEFAULT now(),
    max_jobs integer NOT NULL,
    running integer NOT NULL DEFAULT 0,
    stopping boolean NOT NULL DEFAULT false,
    -- Job slots running a job or able to take one now (NULL: max_jobs).
    usable_slots integer,
    -- Why the daemon is not working normally (NULL: it is), and since when.
    degraded text,
    degraded_since timestamptz,
    -- How often the daemon reconnected to the database since it started.
    reconnects integer NOT NULL DEFAULT 0
);

-- One row per HTTP service host of a fleet: the address other hosts fetch the
-- job files in its jobs directory from ([http] internal_url), and the token
-- they must present (renewed whenever the service starts).
CREATE TABLE {schema}.hosts (
    name text PRIMARY KEY,
    internal_url text NOT NULL,
    token text NOT NULL,
    advertised timestamptz NOT NULL DEFAULT now()
);

-- One row per running HTTP service process (tapd serve), refreshed while it
-- runs: what `tapd status` lists as the services seen recently (hosts, above,
-- is where a fleet's hosts fetch each other's job files, when configured).
CREATE TABLE {schema}.services (
    instance text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    url text NOT NULL,
    metrics_url text,
    started timestamptz NOT NULL DEFAULT now(),
    heartbeat timestamptz NOT NULL DEFAULT now()
);

-- Checks every phase change against phase_transitions, keeps the times
-- consistent, and announces the change:
--   channel "<schema>.phase": {"job_id", "phase", "old_phase", "runner"} as JSON,
--     and when the job ended (COMPLETED, ERROR, ABORTED) "seconds" it ran (null
--     if it never started) and "bytes" of its results (null if none): the
--     metrics of tapd serve count from these
--   channel "<schema>.queue": empty payload, whenever a job enters QUEUED
-- NOTIFY is delivered at commit and identical queue wake-ups in one
-- transaction collapse into one.
CREATE FUNCTION {schema}.job_phase_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    payload jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.phase NOT IN ('PENDING', 'QUEUED') THEN
            RAISE EXCEPTION 'a new job must be PENDING or QUEUED, not %', NEW.phase
                USING ERRCODE = 'check_violation', CONSTRAINT = 'phase_transition';
        END IF;
    ELSIF NEW.phase = OLD.phase THEN
        RETURN NEW;
    ELSIF NEW.phase <> 'UNKNOWN' AND NOT EXISTS (
        SELECT FROM {schema}.phase_transitions t
        WHERE t.old_phase = OLD.phase AND t.new_phase = NEW.phase
    ) THEN
        RAISE EXCEPTION 'job % is %; it cannot become %', NEW.job_id, OLD.phase, NEW.phase
            USING ERRCODE = 'check_violation', CONSTRAINT = 'phase_transition';
    END IF;

    IF NEW.phase = 'QUEUED' THEN
        NEW.queued_time := coalesce(NEW.queued_time, now());
        NEW.start_time := NULL;
        NEW.runner_instance := NULL;
        NEW.runner_host := NULL;
        NEW.runner_pid := NULL;
        NEW.runner_backend_pid := NULL;
    ELSIF NEW.phase = 'EXECUTING' THEN
        NEW.start_time := now();
        NEW.end_time := NULL;
    ELSIF NEW.phase IN ('COMPLETED', 'ERROR', 'ABORTED') THEN
        NEW.end_time := coalesce(NEW.end_time, now());
    END IF;

    payload := jsonb_build_object(
        'job_id', NEW.job_id,
        'phase', NEW.phase,
        'old_phase', CASE WHEN TG_OP = 'UPDATE' THEN OLD.phase END,
        'runner', NEW.runner_instance);
    IF NEW.phase IN ('COMPLETED', 'ERROR', 'ABORTED') THEN
        payload := payload || jsonb_build_object(
            'seconds', extract(epoch FROM NEW.end_time - NEW.start_time),
            'bytes', (SELECT sum((r ->> 'size')::bigint)
                      FROM jsonb_array_elements(NEW.results) AS r));
    END IF;
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.phase', payload::text);
    IF NEW.phase = 'QUEUED' THEN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '.queue', '');
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER jobs_phase_change BEFORE INSERT OR UPDATE OF phase ON {schema}.jobs
    FOR EACH ROW EXECUTE FUNCTION {schema}.job_phase_change();

-- Merges newly posted parameters into a job's (TAP-18): names in `replaced`
-- replace the stored values, names in `appended` (UPLOAD) add to them.
CREATE FUNCTION {schema}.merge_parameters(stored jsonb, replaced jsonb, appended jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT (stored || replaced) || coalesce(
        (SELECT jsonb_object_agg(a.key, coalesce(stored -> a.key, jsonb_build_array()) || a.value)
         FROM jsonb_each(appended) AS a),
        jsonb_build_object())
$$;

INSERT INTO {schema}.schema_version (version) VALUES (9);
