-- Every statement tapd runs against its job tables, by name. Read once by
-- tapd.store.queries; {schema} is the configured schema (quoted), %(name)s a
-- psycopg parameter. Each query starts with a "-- name: NAME" line followed by
-- comment lines saying what it is for.

-- name: create_job
-- A new job, PENDING or QUEUED (PHASE=RUN at creation); the quote is the
-- latest moment the job can end if it started now.
INSERT INTO {schema}.jobs
    (job_id, run_id, owner, client_address, phase, execution_duration, destruction, quote,
     parameters, upload_host)
VALUES
    (%(job_id)s, %(run_id)s, %(owner)s, %(client_address)s, %(phase)s, %(execution_duration)s,
     %(destruction)s,
     CASE WHEN %(execution_duration)s > 0
          THEN now() + make_interval(secs => %(execution_duration)s) END,
     %(parameters)s, %(upload_host)s)
RETURNING *

-- name: lock_quota
-- Serialise job creation within one quota (an owner, an anonymous address, or
-- all anonymous jobs) until the transaction ends, so that counting and
-- inserting are one step: concurrent creates cannot overshoot the limit.
SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0))

-- name: count_quota_jobs
-- Stored jobs (ARCHIVED aside) of an owner (NULL: anonymous), from one client
-- address unless any_address.
SELECT count(*) AS jobs FROM {schema}.jobs
WHERE owner IS NOT DISTINCT FROM %(owner)s::text
  AND (%(any_address)s OR client_address IS NOT DISTINCT FROM %(client_address)s::text)
  AND phase <> 'ARCHIVED'

-- name: get_job
-- One job by id.
SELECT * FROM {schema}.jobs WHERE job_id = %(job_id)s

-- name: list_jobs
-- The UWS job list, newest first: PHASE (a list, NULL for all but ARCHIVED),
-- AFTER (created after), LAST (at most that many), owner (when not any_owner),
-- client address (when not any_address).
SELECT * FROM {schema}.jobs
WHERE (%(any_owner)s OR owner IS NOT DISTINCT FROM %(owner)s::text)
  AND (%(any_address)s OR client_address IS NOT DISTINCT FROM %(client_address)s::text)
  AND CASE WHEN %(phases)s::text[] IS NULL THEN phase <> 'ARCHIVED'
           ELSE phase = ANY (%(phases)s::text[]) END
  AND (%(after)s::timestamptz IS NULL OR creation_time > %(after)s::timestamptz)
ORDER BY creation_time DESC, job_id DESC
LIMIT %(last)s

-- name: lock_pending_job
-- A PENDING job with its row locked until the transaction ends: a PHASE=RUN
-- (queue_job) waits, so a run sees a parameter change whole or not at all.
SELECT * FROM {schema}.jobs WHERE job_id = %(job_id)s AND phase = 'PENDING' FOR UPDATE

-- name: set_parameters
-- Merge posted parameters into a PENDING job (replace single-valued ones,
-- append to UPLOAD); RUNID also sets the runId; upload_host (when not NULL)
-- is the host that now holds all of the job's inline uploads.
UPDATE {schema}.jobs
SET parameters = {schema}.merge_parameters(parameters, %(replaced)s, %(appended)s),
    run_id = CASE WHEN %(set_run_id)s THEN %(run_id)s::text ELSE run_id END,
    upload_host = coalesce(%(upload_host)s::text, upload_host)
WHERE job_id = %(job_id)s AND phase = 'PENDING'
RETURNING *

-- name: set_execution_duration
-- A new executionDuration (already clamped) for a job that has not started.
UPDATE {schema}.jobs
SET execution_duration = %(execution_duration)s,
    quote = CASE WHEN %(execution_duration)s > 0
                 THEN now() + make_interval(secs => %(execution_duration)s) END
WHERE job_id = %(job_id)s AND phase IN ('PENDING', 'QUEUED', 'HELD')
RETURNING *

-- name: set_destruction
-- A new destruction time (already clamped), in any phase.
UPDATE {schema}.jobs SET destruction = %(destruction)s
WHERE job_id = %(job_id)s
RETURNING *

-- name: queue_job
-- PHASE=RUN: PENDING (or HELD) becomes QUEUED; the trigger wakes the runners.
UPDATE {schema}.jobs SET phase = 'QUEUED'
WHERE job_id = %(job_id)s AND phase IN ('PENDING', 'HELD')
RETURNING *

-- name: abort_job
-- PHASE=ABORT of an unfinished job; the daemon running it learns of it by
-- NOTIFY (or its next poll) and stops the child.
UPDATE {schema}.jobs
SET phase = 'ABORTED', error_type = 'fatal', error_message = %(message)s,
    error_has_detail = false
WHERE job_id = %(job_id)s AND phase IN ('PENDING', 'QUEUED', 'EXECUTING', 'HELD', 'SUSPENDED')
RETURNING *

-- name: delete_job
-- Forget a job (its files are the caller's to remove; abort it first).
DELETE FROM {schema}.jobs WHERE job_id = %(job_id)s
RETURNING *

-- name: claim_lock
-- Claims take turns, fleet-wide: a claim takes this lock in its transaction,
-- then runs claim_jobs as its next statement, whose snapshot then includes
-- every claim before it. Without it two daemons woken
-- by the same NOTIFY would both count an owner's running jobs before either
-- claim and together start more than limits.running_per_owner. Also, for the
-- claim's transaction: synchronous_commit on (a claim a child acts on must
-- survive a server crash, whatever the server's setting, or the attempt
-- number would be handed out twice) and no JIT (compiling costs far more
-- than a claim's work).
SELECT pg_advisory_xact_lock(hashtext('{schema}.claim_jobs')),
       set_config('synchronous_commit', 'on', true), set_config('jit', 'off', true)

-- name: claim_jobs
-- Take up to %(limit)s queued jobs for one daemon, fairly, in one statement,
-- and record the child that runs each: the n-th claimed job gets the n-th of
-- %(pids)s and %(backend_pids)s (the daemon's connected spares; NULL arrays
-- leave them unset). Each claim starts a new attempt (attempts + 1, see
-- tapd.store.jobs.Attempt); claim_lock made its transaction durable.
-- Fair share: an account (owner, or anonymous client address) offers its
-- oldest queued jobs, as many as it may still start; a job's load is the
-- account's running jobs (all daemons) counting itself; the jobs with the
-- least load go first, the oldest among equals. So the first job claimed is
-- the oldest job of the account running the fewest, and one claim of several
-- jobs spreads them over the accounts. An account running
-- %(running_per_owner)s jobs (0: half the live daemons' slots, at least 1;
-- NULL: no limit) offers none: its jobs wait QUEUED.
-- Which accounts to ask, cheaply with a long queue: those running jobs (as
-- many as the fleet's slots) and, from a short walk along the head of the
-- queue, the first accounts running nothing: the first job of each there is
-- its oldest, and load 1 beats any other, so they are all a claim can take.
-- Only when the head shows fewer of them than the claim takes (one account's
-- many jobs in front) are all accounts with queued jobs asked, one index probe
-- each. The CTE `next` fences the LIMIT so the planner cannot re-run it and
-- claim more rows; SKIP LOCKED passes over a job someone else holds (an abort
-- in progress). Run after claim_lock.
WITH RECURSIVE running AS MATERIALIZED (
    SELECT account, count(*) AS jobs FROM {schema}.jobs
    WHERE phase = 'EXECUTING'
    GROUP BY account
), cap AS MATERIALIZED (
    SELECT CASE
        WHEN %(running_per_owner)s::integer IS NULL THEN NULL  -- least() skips it
        WHEN %(running_per_owner)s::integer > 0 THEN %(running_per_owner)s::integer
        ELSE greatest(1, (
            SELECT coalesce(sum(max_jobs), 0)::integer / 2 FROM {schema}.runners
            WHERE NOT stopping
              AND heartbeat > now() - make_interval(secs => %(heartbeat_timeout)s)))
        END AS jobs
), head AS MATERIALIZED (
    SELECT account, row_number() OVER () AS position FROM (
        SELECT account FROM {schema}.jobs
        WHERE phase = 'QUEUED' AND queued_time IS NOT NULL
        ORDER BY queued_time, job_id
        LIMIT 8 * %(limit)s
    ) AS walk
), fresh AS MATERIALIZED (
    SELECT account FROM head
    WHERE account NOT IN (SELECT account FROM running)
    GROUP BY account
    ORDER BY min(position)
    LIMIT %(limit)s
), everyone AS (
    (SELECT account FROM {schema}.jobs
     WHERE phase = 'QUEUED' AND (SELECT count(*) FROM fresh) < %(limit)s
     ORDER BY account LIMIT 1)
    UNION ALL
    SELECT (SELECT j.account FROM {schema}.jobs AS j
            WHERE j.phase = 'QUEUED' AND j.account > e.account
            ORDER BY j.account LIMIT 1)
    FROM everyone AS e
    WHERE e.account IS NOT NULL
), accounts AS (
    SELECT account FROM fresh
    UNION
    SELECT account FROM running
    UNION
    SELECT account FROM everyone WHERE account IS NOT NULL
), candidates AS (
    SELECT c.job_id, c.queued_time, coalesce(r.jobs, 0) + c.rank AS load
    FROM accounts AS a
    CROSS JOIN cap
    LEFT JOIN running AS r ON r.account = a.account
    CROSS JOIN LATERAL (
        SELECT j.job_id, j.queued_time,
               row_number() OVER (ORDER BY j.queued_time, j.job_id) AS rank
        FROM {schema}.jobs AS j
        WHERE j.phase = 'QUEUED' AND j.account = a.account
        ORDER BY j.queued_time, j.job_id
        LIMIT greatest(0, least(%(limit)s, cap.jobs - coalesce(r.jobs, 0)))
    ) AS c
), next AS MATERIALIZED (
    -- The candidates in order, each locked (or passed over) in turn until
    -- enough are taken: a nested loop, never a scan of the queue.
    SELECT locked.job_id
    FROM (SELECT * FROM candidates ORDER BY load, queued_time, job_id) AS c
    CROSS JOIN LATERAL (
        SELECT j.job_id FROM {schema}.jobs AS j
        WHERE j.job_id = c.job_id AND j.phase = 'QUEUED'
        FOR UPDATE SKIP LOCKED
    ) AS locked
    LIMIT %(limit)s
), numbered AS (
    SELECT job_id, row_number() OVER () AS n FROM next
)
UPDATE {schema}.jobs AS j
SET phase = 'EXECUTING', runner_instance = %(instance)s, runner_host = %(host)s,
    runner_pid = (%(pids)s::integer[])[numbered.n],
    runner_backend_pid = (%(backend_pids)s::integer[])[numbered.n],
    attempts = j.attempts + 1,
    progress_rows = NULL, progress_bytes = NULL, progress_time = NULL,
    progress_expected_rows = NULL
FROM numbered
WHERE j.job_id = numbered.job_id
RETURNING j.*

-- name: start_job
-- A runner records itself on its claimed job and reads it back; no row means
-- the job is no longer this daemon's to run (aborted, reconciled, deleted).
-- (tapd's daemon records its children in the claim instead.)
-- In the same round trip it names its session after the job, which is how
-- the job's backends are found and terminated (terminate_job_backends).
WITH session AS MATERIALIZED (
    SELECT set_config('application_name', %(application_name)s, false) AS name
)
UPDATE {schema}.jobs AS j
SET runner_pid = %(pid)s, runner_backend_pid = %(backend_pid)s
FROM session
WHERE j.job_id = %(job_id)s AND j.phase = 'EXECUTING' AND j.runner_instance = %(instance)s
  AND session.name IS NOT NULL
RETURNING j.*

-- name: finish_job
-- End one attempt of a job (tapd.store.jobs.Attempt): COMPLETED with
-- results, or ERROR/ABORTED with an error summary. No row means the attempt
-- no longer holds the job (someone else ended, requeued or took it over).
-- Durable whatever the server's synchronous_commit (see claim_jobs).
WITH durable AS MATERIALIZED (
    SELECT set_config('synchronous_commit', 'on', true) AS setting
)
UPDATE {schema}.jobs
SET phase = %(phase)s, results = %(results)s,
    error_type = %(error_type)s, error_message = %(error_message)s,
    error_has_detail = %(error_has_detail)s
FROM durable
WHERE job_id = %(job_id)s AND phase = 'EXECUTING' AND attempts = %(attempt)s
  AND runner_instance IS NOT DISTINCT FROM %(instance)s::text
  AND durable.setting IS NOT NULL
RETURNING job_id

-- name: record_progress
-- How far running jobs got (rows and bytes of their results written so far,
-- and the rows PostgreSQL expects, NULL if unknown), each only while its
-- attempt still holds it: the n-th of %(job_ids)s in its attempt
-- %(numbers)s[n], claimed by %(instance)s.
UPDATE {schema}.jobs AS j
SET progress_rows = p.rows, progress_bytes = p.bytes, progress_time = now(),
    progress_expected_rows = p.expected
FROM unnest(%(job_ids)s::text[], %(numbers)s::integer[], %(rows)s::bigint[],
            %(bytes)s::bigint[], %(expected)s::bigint[])
     AS p (job_id, number, rows, bytes, expected)
WHERE j.job_id = p.job_id AND j.attempts = p.number AND j.phase = 'EXECUTING'
  AND j.runner_instance = %(instance)s

-- name: rehearse_start
-- A rehearsal job (created in a transaction that is rolled back) starts, as a
-- claim would start it: see JobStore.rehearse_job.
UPDATE {schema}.jobs
SET phase = 'EXECUTING', runner_instance = %(instance)s, attempts = attempts + 1
WHERE job_id = %(job_id)s AND phase = 'QUEUED'
RETURNING job_id, attempts

-- name: requeue_jobs
-- Put attempts back in the queue (the jobs keep their place): the n-th of
-- %(job_ids)s in its attempt %(numbers)s[n] claimed by %(instances)s[n], each
-- only while it still holds its job, and end the database sessions of the
-- attempts requeued (application_name %(application_prefix)s || job_id) in
-- the same statement: the row stays locked until commit, so no new attempt
-- can have opened sessions of that name yet. Durable (see claim_jobs).
WITH durable AS MATERIALIZED (
    SELECT set_config('synchronous_commit', 'on', true) AS setting
), requeued AS (
    UPDATE {schema}.jobs AS j SET phase = 'QUEUED'
    FROM durable,
         unnest(%(job_ids)s::text[], %(numbers)s::integer[], %(instances)s::text[])
             AS a (job_id, number, instance)
    WHERE j.job_id = a.job_id AND j.phase = 'EXECUTING' AND j.attempts = a.number
      AND j.runner_instance IS NOT DISTINCT FROM a.instance
      AND durable.setting IS NOT NULL
    RETURNING j.job_id
)
SELECT r.job_id, (
    SELECT count(pg_terminate_backend(s.pid)) FROM pg_stat_activity AS s
    WHERE s.application_name = %(application_prefix)s || r.job_id AND s.pid <> pg_backend_pid()
) AS sessions_ended
FROM requeued AS r

-- name: runner_jobs
-- What the database says about the jobs a daemon thinks it runs, plus every
-- job the database thinks it runs (reconciliation in both directions).
SELECT job_id, phase, runner_instance, runner_pid, attempts FROM {schema}.jobs
WHERE (phase = 'EXECUTING' AND runner_instance = %(instance)s)
   OR job_id = ANY (%(job_ids)s::text[])

-- name: orphaned_jobs
-- EXECUTING jobs whose daemon has no runners row (dead, expired, or never).
SELECT * FROM {schema}.jobs AS j
WHERE phase = 'EXECUTING'
  AND NOT EXISTS (SELECT FROM {schema}.runners AS r WHERE r.instance = j.runner_instance)

-- name: terminate_job_backends
-- End the database sessions a job's runner opened; they carry the job id in
-- application_name, so a recycled backend pid is never hit.
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE application_name = %(application_name)s AND pid <> pg_backend_pid()

-- name: cancel_job_queries
-- Cancel the running statement of a job's sessions (the session survives).
SELECT pg_cancel_backend(pid) FROM pg_stat_activity
WHERE application_name = %(application_name)s AND pid <> pg_backend_pid()

-- name: job_sessions
-- Database sessions of a job's runner still open.
SELECT pid, state, query FROM pg_stat_activity
WHERE application_name = %(application_name)s AND pid <> pg_backend_pid()

-- name: register_runner
-- A daemon announces itself (again, after a reconnect).
INSERT INTO {schema}.runners (instance, host, boot_id, pid, max_jobs)
VALUES (%(instance)s, %(host)s, %(boot_id)s, %(pid)s, %(max_jobs)s)
ON CONFLICT (instance) DO UPDATE
SET heartbeat = now(), max_jobs = EXCLUDED.max_jobs, stopping = false

-- name: heartbeat
-- A daemon is alive, and says how well; returns the queue length for its
-- status line. No row: the daemon was given up for dead and must register again.
UPDATE {schema}.runners
SET heartbeat = now(), running = %(running)s, stopping = %(stopping)s,
    max_jobs = %(max_jobs)s, usable_slots = %(usable_slots)s, degraded = %(degraded)s,
    degraded_since = CASE WHEN %(degraded)s::text IS NOT NULL
                          THEN coalesce(degraded_since, now()) END,
    reconnects = %(reconnects)s
WHERE instance = %(instance)s
RETURNING (SELECT count(*) FROM {schema}.jobs WHERE phase = 'QUEUED') AS queued

-- name: unregister_runner
-- A daemon leaves cleanly.
DELETE FROM {schema}.runners WHERE instance = %(instance)s

-- name: list_runners
-- Every registered daemon, with the age of its heartbeat in seconds.
-- usable_slots of a daemon older than that column: all its slots.
SELECT instance, host, boot_id, pid, started, heartbeat, max_jobs, running, stopping,
       coalesce(usable_slots, max_jobs) AS usable_slots, degraded, degraded_since, reconnects,
       extract(epoch FROM now() - heartbeat)::float8 AS heartbeat_age
FROM {schema}.runners ORDER BY started

-- name: forget_runners
-- Remove runners rows that are known dead (their jobs become orphans).
DELETE FROM {schema}.runners WHERE instance = ANY (%(instances)s::text[])
RETURNING instance

-- name: expire_runners
-- Remove daemons whose heartbeat is older than the timeout (but not the
-- caller's own row, which it is about to refresh).
DELETE FROM {schema}.runners
WHERE heartbeat < now() - make_interval(secs => %(timeout)s)
  AND instance IS DISTINCT FROM %(keep)s::text
RETURNING instance

-- name: abort_expired_jobs
-- Jobs past their destruction time that have not ended are aborted first.
UPDATE {schema}.jobs
SET phase = 'ABORTED', error_type = 'fatal',
    error_message = 'The job reached its destruction time.', error_has_detail = false
WHERE destruction <= now() AND phase IN ('PENDING', 'QUEUED', 'EXECUTING', 'HELD', 'SUSPENDED')
RETURNING job_id

-- name: delete_expired_jobs
-- Forget ended jobs past their destruction time; a job aborted by the sweep
-- itself is left to the next sweep so its runner can stop first.
DELETE FROM {schema}.jobs
WHERE job_id IN (
    SELECT job_id FROM {schema}.jobs
    WHERE destruction <= now()
      AND phase NOT IN ('PENDING', 'QUEUED', 'EXECUTING', 'HELD', 'SUSPENDED')
      AND (end_time IS NULL OR end_time < now() - interval '2 seconds')
    ORDER BY destruction
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
RETURNING job_id

-- name: oldest_queued_age
-- Seconds the oldest QUEUED job has waited (NULL when none), through the
-- queue's partial index.
SELECT extract(epoch FROM now() - min(queued_time))::float8 AS age
FROM {schema}.jobs WHERE phase = 'QUEUED' AND queued_time IS NOT NULL

-- name: existing_jobs
-- Which of these job ids still have a row (the others' directories are garbage).
SELECT job_id FROM {schema}.jobs WHERE job_id = ANY (%(job_ids)s::text[])

-- name: advertise_host
-- An HTTP service tells the other hosts where they reach its job files.
INSERT INTO {schema}.hosts (name, internal_url, token)
VALUES (%(host)s, %(internal_url)s, %(token)s)
ON CONFLICT (name) DO UPDATE
SET internal_url = EXCLUDED.internal_url, token = EXCLUDED.token, advertised = now()

-- name: host_address
-- Where another host's job files are reached, and the token to present.
SELECT name, internal_url, token FROM {schema}.hosts WHERE name = %(host)s

-- name: heaviest_accounts
-- The accounts with the most jobs running or queued (fleet-wide): owner, or
-- the anonymous client address, with both counts (read from the jobs, exact:
-- for an operator's look, not a hot path).
SELECT CASE WHEN account LIKE 'owner:%%' THEN substr(account, 7) END AS owner,
       CASE WHEN account LIKE 'address:%%' THEN substr(account, 9) END AS address,
       (count(*) FILTER (WHERE phase = 'EXECUTING'))::integer AS running,
       (count(*) FILTER (WHERE phase = 'QUEUED'))::integer AS queued
FROM {schema}.jobs
WHERE phase IN ('QUEUED', 'EXECUTING')
GROUP BY account
ORDER BY count(*) DESC, account
LIMIT %(limit)s

-- name: abort_account_jobs
-- Abort every unfinished job of one owner, or of one anonymous client address
-- (owner NULL); running ones are stopped by their daemons, as for abort_job.
UPDATE {schema}.jobs
SET phase = 'ABORTED', error_type = 'fatal', error_message = %(message)s,
    error_has_detail = false
WHERE account = CASE WHEN %(owner)s::text IS NOT NULL THEN 'owner:' || %(owner)s::text
                     ELSE 'address:' || coalesce(%(client_address)s::text, '') END
  AND phase IN ('PENDING', 'QUEUED', 'EXECUTING', 'HELD', 'SUSPENDED')
RETURNING job_id

-- name: register_service
-- An HTTP service announces itself (at start, and again if its row was lost);
-- rows of services not seen for a day are forgotten.
WITH forget AS (
    DELETE FROM {schema}.services WHERE heartbeat < now() - interval '1 day'
)
INSERT INTO {schema}.services (instance, host, pid, url, metrics_url)
VALUES (%(instance)s, %(host)s, %(pid)s, %(url)s, %(metrics_url)s)
ON CONFLICT (instance) DO UPDATE SET heartbeat = now()

-- name: service_heartbeat
-- An HTTP service is alive. No row: it must register again.
UPDATE {schema}.services SET heartbeat = now() WHERE instance = %(instance)s
RETURNING instance

-- name: unregister_service
-- An HTTP service stops.
DELETE FROM {schema}.services WHERE instance = %(instance)s

-- name: list_services
-- HTTP services seen in the last %(within)s seconds, with the age of their
-- heartbeat in seconds.
SELECT *, extract(epoch FROM now() - heartbeat)::float8 AS heartbeat_age
FROM {schema}.services
WHERE heartbeat > now() - make_interval(secs => %(within)s)
ORDER BY host, started

-- name: phase_counts
-- How many jobs are in each phase.
SELECT phase, count(*) AS jobs FROM {schema}.jobs GROUP BY phase
