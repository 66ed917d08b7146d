-- Schema version 4: a job's ending is announced with its figures ("seconds"
-- it ran, "bytes" of its results) for the metrics of tapd serve, and daemons
-- report their database reconnects in their heartbeat.

ALTER TABLE {schema}.runners ADD COLUMN reconnects integer NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION {schema}.job_phase_change() RETURNS trigger
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

INSERT INTO {schema}.schema_version (version) VALUES (4);
