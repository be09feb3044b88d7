-- jobcast schema: the single source of the database's shape.
-- Safe to apply any number of times: every statement is idempotent.

CREATE TABLE IF NOT EXISTS owners (
    id              uuid PRIMARY KEY,
    -- sha256 of the bearer token; the token itself is never stored
    token_hash      bytea NOT NULL,
    -- signs this owner's completion webhooks (HMAC-SHA256)
    webhook_secret  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
-- token lookup on every authenticated request
CREATE UNIQUE INDEX IF NOT EXISTS owners_token_hash_key ON owners (token_hash);

CREATE TABLE IF NOT EXISTS jobs (
    id            uuid PRIMARY KEY,
    owner_id      uuid NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    type          text NOT NULL,
    input         jsonb NOT NULL DEFAULT '{}'::jsonb,
    status        text NOT NULL DEFAULT 'pending',
    priority      smallint NOT NULL DEFAULT 0,
    -- overall percent, the weighted sum of step progress
    progress      real NOT NULL DEFAULT 0,
    step          text,
    message       text,
    result        jsonb,
    error         jsonb,
    attempts      integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL DEFAULT 3,
    -- seq of the last event written for this job; events are numbered 1, 2, 3, ... without gaps
    seq           bigint NOT NULL DEFAULT 0,
    estimated_s   real,
    -- this job's time limit per attempt, within its type's bounds
    timeout_s     real NOT NULL DEFAULT 3600,
    -- the job that spawned this one; cancelling a parent cancels its children
    parent_id     uuid REFERENCES jobs (id) ON DELETE CASCADE,
    -- a resubmit with the same key (per owner, within 24 h) returns this job
    idempotency_key text,
    -- POSTed the final job when it ends, signed with the owner's webhook secret
    callback_url  text,
    -- set when the result was dropped after its type's result_ttl_s
    result_expired_at timestamptz,
    -- the failed or cancelled job this one retries (POST /api/jobs/{id}/retry)
    retry_of      uuid REFERENCES jobs (id) ON DELETE SET NULL,
    run_at        timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT jobs_status_check
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled',
                          'waiting', 'paused', 'draft')),
    CONSTRAINT jobs_progress_check CHECK (progress >= 0 AND progress <= 100),
    CONSTRAINT jobs_priority_check CHECK (priority BETWEEN -10 AND 10)
);
-- a running job's row is updated with every event it reports: room left on each page lets
-- Postgres write the new version beside the old one (a HOT update, no index touched)
ALTER TABLE jobs SET (fillfactor = 70);
-- an owner's job list, newest first (GET /api/jobs), optionally by status
CREATE INDEX IF NOT EXISTS jobs_owner_created_idx ON jobs (owner_id, created_at DESC);
-- the dispatcher and the reaper scan only unfinished jobs
CREATE INDEX IF NOT EXISTS jobs_active_idx ON jobs (status, run_at)
    WHERE status IN ('pending', 'running');
-- a job's children (GET /api/jobs/{id}, cancel of the parent)
CREATE INDEX IF NOT EXISTS jobs_parent_idx ON jobs (parent_id) WHERE parent_id IS NOT NULL;
-- idempotent submits: one job per owner and key
CREATE UNIQUE INDEX IF NOT EXISTS jobs_idempotency_key
    ON jobs (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- per-type concurrency caps count the running jobs of a type
CREATE INDEX IF NOT EXISTS jobs_type_running_idx ON jobs (type) WHERE status = 'running';
-- ETA: step durations of a type's recent completed jobs
CREATE INDEX IF NOT EXISTS jobs_type_completed_idx ON jobs (type, finished_at DESC)
    WHERE status = 'completed';
-- retention deletes finished jobs by age
CREATE INDEX IF NOT EXISTS jobs_finished_idx ON jobs (status, finished_at)
    WHERE finished_at IS NOT NULL;
-- the jobs not finished, by type and status: the console's counts and queue depth read
-- these alone, not the finished ones retention keeps (a finished job leaves the index)
CREATE INDEX IF NOT EXISTS jobs_unfinished_idx ON jobs (type, status) WHERE finished_at IS NULL;

CREATE TABLE IF NOT EXISTS job_steps (
    job_id       uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    position     smallint NOT NULL,
    name         text NOT NULL,
    title        text NOT NULL,
    weight       real NOT NULL,
    status       text NOT NULL DEFAULT 'waiting',
    started_at   timestamptz,
    finished_at  timestamptz,
    duration_ms  integer,
    -- one row per step of a job, in the order the job type declares them
    PRIMARY KEY (job_id, position),
    CONSTRAINT job_steps_status_check
        CHECK (status IN ('waiting', 'running', 'completed', 'failed', 'cancelled')),
    CONSTRAINT job_steps_name_key UNIQUE (job_id, name)
);

-- each step's row is updated as it starts and ends: room for HOT updates, as on jobs
ALTER TABLE job_steps SET (fillfactor = 70);

CREATE TABLE IF NOT EXISTS job_events (
    job_id   uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq      bigint NOT NULL,
    kind     text NOT NULL,
    payload  jsonb NOT NULL,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- one event per (job, seq); also the index behind replay "events after N"
    PRIMARY KEY (job_id, seq),
    CONSTRAINT job_events_kind_check
        CHECK (kind IN ('status', 'step', 'progress', 'input_required', 'input', 'resumed',
                        'metadata', 'stream'))
);

-- Durable jobs. A database from before them gains the statuses (waiting: a step waits for a
-- person's answer; paused; draft: stored, not queued), the event kinds, a step's checkpoint
-- and count of starts, and the owner's pause request; the rows it has stay as they are.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'jobs_status_check'
                   AND pg_get_constraintdef(oid) LIKE '%draft%') THEN
        ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_status_check;
        ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
            CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled',
                              'waiting', 'paused', 'draft'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'job_events_kind_check'
                   AND pg_get_constraintdef(oid) LIKE '%input_required%') THEN
        ALTER TABLE job_events DROP CONSTRAINT IF EXISTS job_events_kind_check;
        ALTER TABLE job_events ADD CONSTRAINT job_events_kind_check
            CHECK (kind IN ('status', 'step', 'progress', 'input_required', 'input', 'resumed',
                            'metadata', 'stream'));
    END IF;
END
$$;
-- A step open when its job ended (cancelled, or failed while it ran) is closed as the job
-- ended: a database from before that gains the step state 'cancelled'.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'job_steps_status_check'
                   AND pg_get_constraintdef(oid) LIKE '%cancelled%') THEN
        ALTER TABLE job_steps DROP CONSTRAINT IF EXISTS job_steps_status_check;
        ALTER TABLE job_steps ADD CONSTRAINT job_steps_status_check
            CHECK (status IN ('waiting', 'running', 'completed', 'failed', 'cancelled'));
    END IF;
END
$$;
-- a running job whose owner asked for a pause: it stops at its next step boundary
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS pause_requested boolean NOT NULL DEFAULT false;
-- a completed step's checkpoint: the value the job's code gave it, handed back to every later
-- attempt, which skips the step (a claim keeps completed steps as they are)
ALTER TABLE job_steps ADD COLUMN IF NOT EXISTS result jsonb;
-- how many times the step was started, over all the job's attempts
ALTER TABLE job_steps ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS job_inputs (
    job_id          uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    -- the step that asks; one question per step of a job
    step            text NOT NULL,
    prompt          text NOT NULL,
    -- JSON Schema of the answer, checked when the answer comes
    schema          jsonb NOT NULL,
    -- NULL: no time limit
    expires_at      timestamptz,
    -- what the time limit passing does: fail the job, or go on with default_answer
    on_timeout      text NOT NULL DEFAULT 'fail',
    default_answer  jsonb,
    answer          jsonb,
    -- the owner who answered; NULL when the time limit gave the default
    answered_by     uuid,
    answered_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, step),
    CONSTRAINT job_inputs_on_timeout_check CHECK (on_timeout IN ('fail', 'default'))
);
-- the sweep finds the open questions whose time limit passed
CREATE INDEX IF NOT EXISTS job_inputs_open_idx ON job_inputs (expires_at)
    WHERE answered_at IS NULL AND expires_at IS NOT NULL;

-- Server processes whose Redis pub/sub is down, for as long as it is: while any is here,
-- every state change also NOTIFYs jobcast_events (the fallback channel); while none is,
-- the NOTIFY, which takes a cluster-wide lock through each commit, is skipped. Unlogged:
-- a request lives seconds and is renewed while it is needed.
CREATE UNLOGGED TABLE IF NOT EXISTS fallback_listeners (
    holder      text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
-- whether the asking process reads the events NOTIFYs carry (jobcast_notice): an earlier
-- version's reads ids alone, so while one asks, every NOTIFY says ids alone
ALTER TABLE fallback_listeners ADD COLUMN IF NOT EXISTS reads_events boolean NOT NULL
    DEFAULT false;

-- What a NOTIFY on jobcast_events says of one event (jobcast/store/rows.py reads it): its
-- job id, seq, owner id and kind, space-separated; and, where p_carry says so, then its time
-- (UTC, ISO 8601) and its payload's JSON, so that a listening server process sends the event
-- on without reading it. Ids alone where the whole would pass NOTIFY's cap (under 8,000
-- bytes): the listener then reads the event from job_events.
CREATE OR REPLACE FUNCTION jobcast_notice(p_job uuid, p_seq bigint, p_owner uuid,
                                          p_kind text, p_at timestamptz, p_payload jsonb,
                                          p_carry boolean)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_carry AND octet_length(whole) < 8000 THEN whole ELSE ids END
    FROM (SELECT p_job || ' ' || p_seq || ' ' || p_owner || ' ' || p_kind AS ids) i,
         LATERAL (SELECT i.ids || ' '
                         || to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')
                         || ' ' || p_payload::text AS whole) w
$$;

CREATE TABLE IF NOT EXISTS leases (
    -- a named duty that one process holds at a time (the reaper's sweep), until it expires:
    -- a lease, not a lock, so a frozen holder cannot keep it
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    expires_at  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS uploads (
    id            uuid PRIMARY KEY,
    owner_id      uuid NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    -- the job that reads it: deleted with the job; unclaimed uploads expire after a day
    job_id        uuid REFERENCES jobs (id) ON DELETE CASCADE,
    filename      text NOT NULL,
    content_type  text NOT NULL,
    size          integer NOT NULL,
    -- kept in Postgres, so a worker on another machine reads it too
    data          bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- the sweep deletes unclaimed uploads by age
CREATE INDEX IF NOT EXISTS uploads_unclaimed_idx ON uploads (created_at) WHERE job_id IS NULL;
-- uploads of a job, deleted with it
CREATE INDEX IF NOT EXISTS uploads_job_idx ON uploads (job_id) WHERE job_id IS NOT NULL;
-- an owner's quota sums the sizes of its uploads (read from the index alone)
CREATE INDEX IF NOT EXISTS uploads_owner_idx ON uploads (owner_id) INCLUDE (size);

CREATE TABLE IF NOT EXISTS webhook_deliveries (
    job_id        uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt       integer NOT NULL,
    url           text NOT NULL,
    status        text NOT NULL DEFAULT 'pending',
    status_code   integer,
    error         text,
    next_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- one row per try of one job's webhook
    PRIMARY KEY (job_id, attempt),
    CONSTRAINT webhook_deliveries_status_check
        CHECK (status IN ('pending', 'delivered', 'failed', 'retrying'))
);
-- the worker sending a try holds it until then, so no other worker sends it too; a worker
-- that dies mid-send leaves it to another once it passes (NULL: nobody holds it)
ALTER TABLE webhook_deliveries ADD COLUMN IF NOT EXISTS claimed_until timestamptz;
-- workers claim the deliveries that are due
CREATE INDEX IF NOT EXISTS webhook_deliveries_due_idx ON webhook_deliveries (next_at)
    WHERE status = 'pending';

-- Each owner's pending plus running jobs, counted by the triggers below in up to 32 rows
-- per owner, one per shard, the shard chosen by the writing connection: a submit and a
-- finishing worker on different connections never wait for each other's row, and each
-- change rewrites its row in place (a HOT update), so nothing piles up for vacuum to
-- clear. The count is the sum of the owner's rows.
DO $$
BEGIN
    IF to_regclass('owner_job_counts') IS NULL THEN
        CREATE TABLE owner_job_counts (
            owner_id  uuid NOT NULL,
            shard     smallint NOT NULL,
            n         integer NOT NULL,
            PRIMARY KEY (owner_id, shard)
        ) WITH (fillfactor = 50);
        -- a database from before the counts: its jobs, counted once
        INSERT INTO owner_job_counts (owner_id, shard, n)
        SELECT owner_id, 0, count(*) FROM jobs
        WHERE status IN ('pending', 'running') GROUP BY owner_id;
    END IF;
END
$$;

-- The row triggers fire only when a job enters or leaves pending/running, so progress
-- updates and the deletion of finished jobs never touch the counts.
CREATE OR REPLACE FUNCTION jobcast_count_active() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO owner_job_counts AS c (owner_id, shard, n)
        VALUES (OLD.owner_id, pg_backend_pid() % 32, -1)
        ON CONFLICT (owner_id, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSE
        INSERT INTO owner_job_counts AS c (owner_id, shard, n)
        VALUES (NEW.owner_id, pg_backend_pid() % 32,
                CASE WHEN NEW.status IN ('pending', 'running') THEN 1 ELSE -1 END)
        ON CONFLICT (owner_id, shard) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER jobs_active_insert AFTER INSERT ON jobs FOR EACH ROW
    WHEN (NEW.status IN ('pending', 'running')) EXECUTE FUNCTION jobcast_count_active();
CREATE OR REPLACE TRIGGER jobs_active_update AFTER UPDATE OF status ON jobs FOR EACH ROW
    WHEN ((OLD.status IN ('pending', 'running')) <> (NEW.status IN ('pending', 'running')))
    EXECUTE FUNCTION jobcast_count_active();
CREATE OR REPLACE TRIGGER jobs_active_delete AFTER DELETE ON jobs FOR EACH ROW
    WHEN (OLD.status IN ('pending', 'running')) EXECUTE FUNCTION jobcast_count_active();

CREATE OR REPLACE FUNCTION jobcast_active_jobs(p_owner uuid) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- plpgsql, not sql: a plpgsql function keeps its query's plan for the session
    RETURN (SELECT COALESCE(sum(n), 0) FROM owner_job_counts WHERE owner_id = p_owner);
END
$$;

-- The submit gate, called by the submit statement itself. It returns the owner's active
-- jobs (NULL when there is no cap, p_cap NULL, so nothing to count) and the job an
-- idempotency key already made (keys older than 24 hours are freed first).
--
-- The cap is exact under parallel submits from any number of server processes. Far from
-- the cap (more than max_connections below it, the most submits that can be in flight at
-- once), a submit takes the owner's lock in shared mode: such submits run side by side,
-- since even all in flight together cannot pass the cap. Near the cap, or with an
-- idempotency key, it takes the lock exclusively: it waits for every submit in flight,
-- and then counts with a fresh snapshot (VOLATILE: each statement inside takes one).
CREATE OR REPLACE FUNCTION jobcast_submit_gate(p_owner uuid, p_key text, p_cap bigint,
                                               OUT active bigint, OUT existing uuid)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    lock_key bigint := hashtextextended(p_owner::text, 0);
    in_flight bigint := current_setting('max_connections')::bigint;
BEGIN
    IF p_key IS NULL AND p_cap IS NULL THEN
        RETURN;
    END IF;
    IF p_key IS NULL AND jobcast_active_jobs(p_owner) + 2 * in_flight <= p_cap THEN
        PERFORM pg_advisory_xact_lock_shared(lock_key);
        active := jobcast_active_jobs(p_owner);
        IF active + in_flight > p_cap THEN
            -- it rose by more than max_connections since the look above (rare): the shared
            -- lock cannot become exclusive without risking a deadlock, so say "full"
            active := p_cap;
        END IF;
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(lock_key);
    active := jobcast_active_jobs(p_owner);
    IF p_key IS NOT NULL THEN
        SELECT id INTO existing FROM jobs
        WHERE owner_id = p_owner AND idempotency_key = p_key
          AND created_at > now() - interval '24 hours';
        IF existing IS NULL THEN
            UPDATE jobs SET idempotency_key = NULL
            WHERE owner_id = p_owner AND idempotency_key = p_key;
        END IF;
    END IF;
END
$$;
-- The gate of a statement of many submits (create_jobs): each owner with a cap there, in
-- the owners' order, its lock taken exclusively (so the count holds for however many of
-- its jobs the statement makes) and its active jobs counted with a fresh snapshot.
CREATE OR REPLACE FUNCTION jobcast_submit_gate_many(p_owners uuid[], p_caps bigint[])
RETURNS TABLE (gate_owner uuid, gate_active bigint)
LANGUAGE plpgsql VOLATILE ROWS 1 AS $$
DECLARE
    o uuid;
BEGIN
    FOR o IN SELECT DISTINCT x.owner FROM unnest(p_owners, p_caps) AS x(owner, cap)
             WHERE x.cap IS NOT NULL ORDER BY x.owner LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(o::text, 0));
        gate_owner := o;
        gate_active := jobcast_active_jobs(o);
        RETURN NEXT;
    END LOOP;
END
$$;
-- A database from an earlier version keeps that version's two-argument gate, so that
-- its processes still submit during a rolling upgrade: it counts with count(*) under the
-- same lock, taken exclusively, and agrees with this one.

-- The claim gate, called by the claim statement itself: the type of the pending job (NULL
-- when it is not pending), that type's cap on running jobs (from p_types/p_caps; NULL for
-- none) and, for a capped type, how many of it run now, counted under a lock on the type
-- with a fresh snapshot, so that workers claiming at once cannot exceed the cap.
CREATE OR REPLACE FUNCTION jobcast_claim_gate(p_job uuid, p_types text[], p_caps integer[],
                                              OUT job_type text, OUT cap integer,
                                              OUT running bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    SELECT type INTO job_type FROM jobs WHERE id = p_job AND status IS NOT DISTINCT FROM 'pending';
    IF job_type IS NULL THEN
        RETURN;
    END IF;
    cap := p_caps[array_position(p_types, job_type)];
    IF cap IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('type:' || job_type, 0));
        SELECT count(*) INTO running FROM jobs WHERE type = job_type AND status = 'running';
    END IF;
END
$$;

-- Live data of a running job: steps its code adds while it runs, metadata it sets, and the
-- streams of text it writes. A database from before them gains the columns; its rows stay.
-- the app's live key-value data about the job (job code sets keys; a child may set its
-- parent's); capped in size by JOBCAST_METADATA_MAX_BYTES, checked as it is written
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
-- a step added at run time: the declared step it belongs to (NULL: a declared step)
ALTER TABLE job_steps ADD COLUMN IF NOT EXISTS parent text;
-- a run-time step's share of its parent's weight, a fraction in (0, 1]
ALTER TABLE job_steps ADD COLUMN IF NOT EXISTS share real;
-- its counters ({"done": n, "total": m}), its metadata, and its own error when it failed
-- while the job went on
ALTER TABLE job_steps ADD COLUMN IF NOT EXISTS counters jsonb;
ALTER TABLE job_steps ADD COLUMN IF NOT EXISTS metadata jsonb;
ALTER TABLE job_steps ADD COLUMN IF NOT EXISTS error jsonb;

-- A job's named streams of text. The text itself is in its `stream` events (each a flush
-- of the worker's buffer: name, offset, text), so it is stored once; this row keeps each
-- stream's length, the offset its next flush starts at, taken under the row's lock.
CREATE TABLE IF NOT EXISTS job_streams (
    job_id      uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name        text NOT NULL,
    -- characters (Unicode code points) written so far
    length      bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- one row per stream of a job
    PRIMARY KEY (job_id, name)
);

-- App keys: server-to-server credentials an operator makes (`jobcast keys create`). A
-- request with a key acts as the key's own owner (an owners row no token opens), so every
-- job it submits, on behalf of any subject and tenant, is its to read, cancel and answer.
-- Browser tokens minted from a key are JWTs (HS256 over signing_secret, the key's id as
-- `kid`): revoking the key ends all of them at once.
CREATE TABLE IF NOT EXISTS app_keys (
    -- public: names the key in `kid` and in `jobcast keys list`
    id              text PRIMARY KEY,
    name            text NOT NULL,
    owner_id        uuid NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    -- sha256 of the bearer key; the key itself is never stored
    key_hash        bytea NOT NULL,
    -- HS256 secret of the browser tokens minted from the key: verifying needs it as is
    signing_secret  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- set once: a revoked key and its tokens are refused
    revoked_at      timestamptz
);
-- key lookup on every request that brings one
CREATE UNIQUE INDEX IF NOT EXISTS app_keys_key_hash_key ON app_keys (key_hash);

-- Who a job is for, in the app's words: the app's user (subject) and organisation
-- (tenant), given with an app key, and the app's tags (at most 10). A database from
-- before them gains the columns; its rows stay (no subject, no tenant, no tags).
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS subject text;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS tenant text;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS tags text[] NOT NULL DEFAULT '{}';
-- a list by tag (GET /api/jobs?tag=, a token scoped to a tag)
CREATE INDEX IF NOT EXISTS jobs_tags_idx ON jobs USING gin (tags);
-- a list by subject or tenant, newest first
CREATE INDEX IF NOT EXISTS jobs_owner_subject_idx ON jobs (owner_id, subject, created_at DESC)
    WHERE subject IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_owner_tenant_idx ON jobs (owner_id, tenant, created_at DESC)
    WHERE tenant IS NOT NULL;

-- Stuck pending: a due job that waited for a worker slot past its type's pending limit, of a
-- type that reports it rather than fails it, is marked by the sweep with when it found it.
-- A mark from before the job's current wait (run_at moved on since: a retry, a resume, an
-- answer) no longer counts; nothing needs to clear it.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS stuck_since timestamptz;

-- Debounce: submits with one key (per owner and type) make one job while it has not started.
-- debounce_key is the submit's key; debounce_until the latest the job may be held back to
-- (its first submit and debounce.max_seconds). A job stops taking submits once it first
-- starts (started_at is set) or leaves pending (a pause drops its key).
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS debounce_key text;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS debounce_until timestamptz;
-- at most one job per owner, type and key takes submits: the arbiter of the debounce
-- statement's INSERT ... ON CONFLICT, exact however many submits arrive at once
CREATE UNIQUE INDEX IF NOT EXISTS jobs_debounce_key ON jobs (owner_id, type, debounce_key)
    WHERE debounce_key IS NOT NULL AND status = 'pending' AND started_at IS NULL;

-- Operating: job types whose queue an operator paused (workers claim none of their jobs;
-- running ones finish), and the log of the admin's bulk actions with their progress.
CREATE TABLE IF NOT EXISTS paused_types (
    type       text PRIMARY KEY,
    paused_at  timestamptz NOT NULL DEFAULT now(),
    -- the role that paused it (admin), for the console
    paused_by  text NOT NULL
);
CREATE TABLE IF NOT EXISTS admin_actions (
    id           uuid PRIMARY KEY,
    action       text NOT NULL,
    -- the role and address that asked
    actor        text NOT NULL,
    -- the ids or the filter, as given
    target       jsonb NOT NULL,
    matched      integer NOT NULL,
    done         integer NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    CONSTRAINT admin_actions_action_check CHECK (action IN ('retry', 'cancel', 'delete'))
);
-- a bulk retry retries a job once: its retry is found by retry_of
CREATE INDEX IF NOT EXISTS jobs_retry_of_idx ON jobs (retry_of) WHERE retry_of IS NOT NULL;
-- the admin feed follows status changes of every job by time
CREATE INDEX IF NOT EXISTS job_events_status_at_idx ON job_events (at) WHERE kind = 'status';

-- Batches: up to 1,000 jobs submitted in one request (POST /api/jobs/batch), in one
-- transaction. The batch keeps its jobs' ids in the order given, a job an idempotency key
-- had made before included, so its view lists each job where the request had it.
CREATE TABLE IF NOT EXISTS batches (
    id          uuid PRIMARY KEY,
    owner_id    uuid NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    job_ids     uuid[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Retries: the policy a job was submitted with (its type's, changed by the submit's
-- "retry"), and the error classes its type retries at most once that it has spent that
-- retry on. No row: the type's policy, nothing spent. Removed with its job.
CREATE TABLE IF NOT EXISTS job_retries (
    job_id      uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    policy      jsonb,
    once_spent  text[] NOT NULL DEFAULT '{}'
);

-- The install this database belongs to: one row, written by the first web or worker
-- process to start, naming the Redis prefix (JOBCAST_REDIS_PREFIX) its queue and
-- channels live under. A process of another install (another prefix) pointed at this
-- database refuses to start: two installs on one database would take each other's
-- jobs for lost and queue them again on their own Redis (docs/deploy.md).
CREATE TABLE IF NOT EXISTS install (
    only_row      boolean PRIMARY KEY DEFAULT true,
    redis_prefix  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- one install per database: the row cannot be doubled
    CONSTRAINT install_one_row CHECK (only_row)
);

-- Who ran each attempt: the worker (host:pid) whose claim started it, written by the claim
-- itself. An attempt handed back (a worker's SIGTERM, Postgres gone) is claimed again under
-- the same number, so an attempt may have more than one row, each with its own time.
CREATE TABLE IF NOT EXISTS job_claims (
    job_id      uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    worker      text NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- a job's claims in order (the console's timeline)
    PRIMARY KEY (job_id, claimed_at)
);
-- when each webhook try was sent (NULL: not yet): the console lists every try with its time
ALTER TABLE webhook_deliveries ADD COLUMN IF NOT EXISTS tried_at timestamptz;

-- Concurrency keys and throttles. A job's keys (its type's, derived from the job, and its
-- submit's): 'concurrency' rows say at most `lim` jobs holding the key run at once;
-- 'throttle' rows say at most `lim` starts of the key per `period_s`. Removed with the job.
CREATE TABLE IF NOT EXISTS job_keys (
    job_id    uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    kind      text NOT NULL,
    key       text NOT NULL,
    lim       integer NOT NULL,
    period_s  real,
    -- one row per key and kind of a job; a running job's keys are read by its id
    PRIMARY KEY (job_id, kind, key),
    CONSTRAINT job_keys_kind_check CHECK (kind IN ('concurrency', 'throttle')),
    CONSTRAINT job_keys_lim_check CHECK (lim > 0)
);
-- Limits an operator set at run time (`jobcast limits set`): they replace what the jobs
-- declared for the key, for every job, at its next start.
CREATE TABLE IF NOT EXISTS key_limits (
    key         text NOT NULL,
    kind        text NOT NULL,
    lim         integer NOT NULL,
    period_s    real,
    set_by      text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- one limit per key and kind
    PRIMARY KEY (key, kind),
    CONSTRAINT key_limits_kind_check CHECK (kind IN ('concurrency', 'throttle')),
    CONSTRAINT key_limits_lim_check CHECK (lim > 0)
);
-- Starts of throttled keys, the throttle's window counts them; the sweep drops old ones.
CREATE TABLE IF NOT EXISTS key_starts (
    key  text NOT NULL,
    at   timestamptz NOT NULL
);
-- a throttle counts a key's starts within its window
CREATE INDEX IF NOT EXISTS key_starts_key_at_idx ON key_starts (key, at);
-- A pending job held back by a key is parked: off arq's queue, in Postgres, until a slot
-- of its key frees (parked_on, the limit it saw) or the throttle's window does
-- (parked_until). waiting_reason says why it waits; released_by names the job whose end
-- released it, so that job's worker queues it (the outbox queues what no worker did).
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS parked_on text;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS parked_limit integer;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS parked_until timestamptz;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS waiting_reason text;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS released_by uuid;
-- Fairness under a backlog: the group a job takes turns in ('fair:tenant:<t>', or
-- 'fair:owner:<id>' without a tenant). At most JOBCAST_FAIR_WINDOW jobs of a group are
-- on arq's queue at once; the rest are parked on the group and released as those start.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS fair_key text;
-- a group's jobs on the queue (pending, not parked) are counted at each submit, and by the
-- sweep's pass that fills a group's share (jobcast_release)
CREATE INDEX IF NOT EXISTS jobs_fair_queued_idx ON jobs (fair_key)
    WHERE status = 'pending' AND parked_on IS NULL AND fair_key IS NOT NULL;
-- a key's parked jobs, in the order they are released: priority, then age. Only a
-- pending job is parked (jobs_unpark below), so a query of a key's parked jobs needs no
-- condition on the status, and this is the one index that answers it, read in its order:
-- a release stops at the first job it can take, and marks dead the entries of the jobs
-- released before it as it passes them (a plan that also read the status index, through
-- bitmaps, read every entry of those each time)
CREATE INDEX IF NOT EXISTS jobs_parked_idx ON jobs (parked_on, priority DESC, created_at)
    WHERE parked_on IS NOT NULL;
-- the worker whose job ended queues the jobs it released
CREATE INDEX IF NOT EXISTS jobs_released_by_idx ON jobs (released_by) WHERE released_by IS NOT NULL;

-- How many jobs holding a key run now: counted from the running rows (never a counter,
-- so a killed worker's slot comes back as soon as its job stops running). A type's
-- implicit key 'type:<name>' counts the running jobs of that type.
CREATE OR REPLACE FUNCTION jobcast_key_running(p_key text) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_key LIKE 'type:%' THEN
        RETURN (SELECT count(*) FROM jobs WHERE type = substr(p_key, 6) AND status = 'running');
    END IF;
    -- from the running jobs, each one's keys looked up by its id: a finished job keeps its
    -- keys until retention deletes it, so the key's rows are mostly of finished jobs, and
    -- the LIMIT keeps Postgres from reading them all (as a semi-join would) to find the few
    RETURN (SELECT count(*) FROM jobs j
            CROSS JOIN LATERAL (SELECT 1 FROM job_keys k WHERE k.job_id = j.id
                                AND k.kind = 'concurrency' AND k.key = p_key LIMIT 1) held
            WHERE j.status = 'running');
END
$$;

-- How many jobs of a fairness group are on the queue now: due, pending, not parked (but
-- for p_but, a job being claimed).
CREATE OR REPLACE FUNCTION jobcast_fair_queued(p_key text, p_but uuid) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT count(*) FROM jobs
            WHERE fair_key = p_key AND status = 'pending' AND parked_on IS NULL
              AND run_at <= now() AND id IS DISTINCT FROM p_but);
END
$$;

-- The effective limit of a key: the operator's, else what the job declared.
CREATE OR REPLACE FUNCTION jobcast_key_limit(p_key text, p_kind text, p_declared integer,
                                             p_period real, OUT lim integer, OUT period_s real)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    SELECT l.lim, COALESCE(l.period_s, p_period) INTO lim, period_s
    FROM key_limits l WHERE l.key = p_key AND l.kind = p_kind;
    IF lim IS NULL THEN
        lim := p_declared;
        period_s := p_period;
    END IF;
END
$$;

-- The next parked job of a fairness group (highest priority, then oldest), released: off
-- its parking, with what queueing it needs. One that another transaction is releasing
-- or claiming is skipped, never waited for. Nothing when the group has none parked.
CREATE OR REPLACE FUNCTION jobcast_fair_next(p_group text, OUT released uuid,
                                             OUT released_priority smallint,
                                             OUT released_delay_s float8)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- plpgsql, not sql: its plan is kept for the session, where a sql function called by
    -- another function is planned again at each call
    UPDATE jobs SET parked_on = NULL, parked_limit = NULL, waiting_reason = NULL,
        updated_at = now()
    WHERE id = (SELECT p.id FROM jobs p WHERE p.parked_on = p_group
                ORDER BY p.priority DESC, p.created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING id, priority, GREATEST(0, extract(epoch FROM run_at - now()))::float8
    INTO released, released_priority, released_delay_s;
END
$$;

-- The start gate, called by the claim statement: the pending job's type (NULL when it is
-- not pending, is parked, or its type is paused), and the key that holds it back, if any.
-- Each key (the job's, and its type's cap as 'type:<name>') is looked at under a lock on
-- the key, taken in key order (so two claims never wait on each other in a circle), and
-- counted with a fresh snapshot: workers claiming at once cannot exceed a limit. A job
-- held back is parked in this same transaction; one admitted logs its throttled starts.
-- Either way the job leaves its fairness group's share of the queue, and the group's next
-- parked job (highest priority, then oldest) is released in its place: released, with
-- what queueing it needs. One for one, with no lock on the group and no count of its
-- queue, so that a tenant's starts never wait for each other here; a group whose share
-- fell short of the window meanwhile (a queued job cancelled) is filled by the sweep
-- (jobcast_release, which counts).
CREATE OR REPLACE FUNCTION jobcast_admit(p_job uuid, p_types text[], p_caps integer[],
                                         OUT job_type text, OUT held_key text,
                                         OUT held_limit integer, OUT held_until timestamptz,
                                         OUT held_reason text, OUT released uuid,
                                         OUT released_priority smallint,
                                         OUT released_delay_s float8, OUT released_group text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    k record;
    eff record;
    n bigint;
    cap integer;
    held_period real;
    fkey text;
BEGIN
    SELECT type, fair_key INTO job_type, fkey FROM jobs
    WHERE id = p_job AND status IS NOT DISTINCT FROM 'pending' AND parked_on IS NULL FOR UPDATE;
    IF job_type IS NULL OR EXISTS (SELECT 1 FROM paused_types p WHERE p.type = job_type) THEN
        job_type := NULL;
        RETURN;
    END IF;
    cap := p_caps[array_position(p_types, job_type)];
    FOR k IN SELECT x.key, x.kind, x.lim, x.period_s FROM (
                 SELECT jk.key, jk.kind, jk.lim, jk.period_s FROM job_keys jk
                 WHERE jk.job_id = p_job
                 UNION ALL
                 -- the type's cap, or an operator's limit for a type without one
                 SELECT 'type:' || job_type, 'concurrency', cap, NULL::real
                 WHERE cap IS NOT NULL OR EXISTS (SELECT 1 FROM key_limits l
                     WHERE l.key = 'type:' || job_type AND l.kind = 'concurrency')
             ) x ORDER BY x.key, x.kind LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended(k.key, 0));
        eff := jobcast_key_limit(k.key, k.kind, k.lim, k.period_s);
        IF k.kind = 'concurrency' THEN
            IF jobcast_key_running(k.key) >= eff.lim THEN
                held_key := k.key;
                held_limit := eff.lim;
                EXIT;
            END IF;
        ELSE
            SELECT count(*) INTO n FROM key_starts s
            WHERE s.key = k.key AND s.at > clock_timestamp() - eff.period_s * interval '1 second';
            IF n >= eff.lim THEN
                -- the window frees when the start that puts it at its limit leaves it
                SELECT s.at + eff.period_s * interval '1 second' INTO held_until FROM key_starts s
                WHERE s.key = k.key AND s.at > clock_timestamp() - eff.period_s * interval '1 second'
                ORDER BY s.at OFFSET n - eff.lim LIMIT 1;
                held_period := eff.period_s;
                held_key := k.key;
                held_limit := eff.lim;
                EXIT;
            END IF;
        END IF;
    END LOOP;
    IF held_key IS NOT NULL THEN
        held_reason := CASE
            WHEN held_until IS NOT NULL THEN format(
                'Waiting: throttled by %s (at most %s starts per %s s)',
                held_key, held_limit, held_period)
            WHEN held_key LIKE 'type:%' THEN format(
                'Waiting: at most %s %s job%s run at once',
                held_limit, substr(held_key, 6), CASE WHEN held_limit > 1 THEN 's' ELSE '' END)
            ELSE format('Waiting for a slot of %s (at most %s at once)', held_key, held_limit)
        END;
        UPDATE jobs SET parked_on = held_key, parked_limit = held_limit,
            parked_until = held_until, updated_at = now(),
            waiting_reason = held_reason
        WHERE id = p_job;
    ELSE
        INSERT INTO key_starts (key, at)
        SELECT jk.key, clock_timestamp() FROM job_keys jk
        WHERE jk.job_id = p_job AND jk.kind = 'throttle';
    END IF;
    -- started or parked, the job leaves its group's share of the queue: the next parked
    -- job of the group takes its place (its worker queues it); one being released by
    -- another start is skipped, never waited for
    IF fkey IS NOT NULL THEN
        SELECT * INTO released, released_priority, released_delay_s
        FROM jobcast_fair_next(fkey);
        released_group := CASE WHEN released IS NOT NULL THEN fkey END;
    END IF;
END
$$;

-- The gate of many pending jobs at once, called by the statement of many claims
-- (`claims` in jobcast/queries.sql): each job, in the order of their ids, as jobcast_admit
-- finds it, but with no key's lock. A job with a key of its own, a capped type (p_types)
-- or an operator's limit on its type is answered 'alone': its worker claims it by the
-- one-job statement, whose gate takes those locks in key order (the keys of many jobs,
-- locked in one transaction, could wait on another worker's in a circle). A job not
-- pending, parked, or of a paused type is answered 'none'; any other 'claim'. Then each
-- fairness group releases as many of its parked jobs as it has jobs claimed here, in one
-- pass in their order (highest priority, then oldest; one that another transaction holds
-- is skipped), each in the place of one of them, as jobcast_admit releases one. A job
-- answered 'none' because it was parked, and released by that pass, is answered 'alone'
-- (claimed twice in one statement, its row would change twice). The only rows locked are
-- the jobs in order of id, and parked ones that no other transaction holds.
CREATE OR REPLACE FUNCTION jobcast_admit_many(p_jobs uuid[], p_types text[])
RETURNS TABLE (gate_job uuid, verdict text, released uuid, released_priority smallint,
               released_delay_s float8, released_group text)
-- a worker's claims of a moment (its default, 1,000 rows, had the planner read the whole
-- jobs table once to answer may_release for all, rather than look each up by its index)
LANGUAGE plpgsql VOLATILE ROWS 10 AS $$
DECLARE
    jt text;
    fkey text;
    ids uuid[] := '{}';
    verdicts text[] := '{}';
    groups text[] := '{}';
    rel uuid[];
    rel_priority smallint[];
    rel_delay float8[];
    rel_group text[];
    grp record;
    took uuid[];
    took_priority smallint[];
    took_delay float8[];
BEGIN
    FOR gate_job IN SELECT DISTINCT u.id FROM unnest(p_jobs) AS u(id) ORDER BY u.id LOOP
        SELECT NULL, NULL INTO jt, fkey;
        SELECT jb.type, jb.fair_key INTO jt, fkey FROM jobs jb
        WHERE jb.id = gate_job AND jb.status IS NOT DISTINCT FROM 'pending'
          AND jb.parked_on IS NULL FOR UPDATE;
        IF jt IS NULL OR EXISTS (SELECT 1 FROM paused_types p WHERE p.type = jt) THEN
            verdict := 'none';
        ELSIF jt = ANY(p_types)
              -- read from the job's keys in the key's order, one entry: as EXISTS, planned
              -- while job_keys was empty (a new install's first claims), it was a scan of
              -- the table that stops at the first match, kept for the session's life and
              -- reading every key of every job kept once keyed jobs came
              OR (SELECT true FROM job_keys jk WHERE jk.job_id = gate_job
                  ORDER BY jk.job_id, jk.kind, jk.key LIMIT 1) IS NOT NULL
              OR EXISTS (SELECT 1 FROM key_limits l
                         WHERE l.key = 'type:' || jt AND l.kind = 'concurrency') THEN
            verdict := 'alone';
        ELSE
            verdict := 'claim';
        END IF;
        ids := ids || gate_job;
        verdicts := verdicts || verdict;
        groups := groups || CASE WHEN verdict = 'claim' THEN fkey END;
    END LOOP;
    rel := array_fill(NULL::uuid, ARRAY[cardinality(ids)]);
    rel_priority := array_fill(NULL::smallint, ARRAY[cardinality(ids)]);
    rel_delay := array_fill(NULL::float8, ARRAY[cardinality(ids)]);
    rel_group := array_fill(NULL::text, ARRAY[cardinality(ids)]);
    FOR grp IN SELECT u.g, array_agg(u.at ORDER BY u.at) AS places
               FROM unnest(groups) WITH ORDINALITY AS u(g, at)
               WHERE u.g IS NOT NULL GROUP BY u.g ORDER BY u.g LOOP
        WITH x AS (
            UPDATE jobs SET parked_on = NULL, parked_limit = NULL, waiting_reason = NULL,
                updated_at = now()
            WHERE id = ANY(ARRAY(SELECT p.id FROM jobs p WHERE p.parked_on = grp.g
                                 ORDER BY p.priority DESC, p.created_at
                                 LIMIT cardinality(grp.places) FOR UPDATE SKIP LOCKED))
            RETURNING id, priority, created_at,
                      GREATEST(0, extract(epoch FROM run_at - now()))::float8 AS delay_s
        )
        SELECT array_agg(x.id ORDER BY x.priority DESC, x.created_at),
               array_agg(x.priority ORDER BY x.priority DESC, x.created_at),
               array_agg(x.delay_s ORDER BY x.priority DESC, x.created_at)
        INTO took, took_priority, took_delay FROM x;
        FOR n IN 1 .. coalesce(cardinality(took), 0) LOOP
            rel[grp.places[n]] := took[n];
            rel_priority[grp.places[n]] := took_priority[n];
            rel_delay[grp.places[n]] := took_delay[n];
            rel_group[grp.places[n]] := grp.g;
        END LOOP;
    END LOOP;
    RETURN QUERY
    SELECT ids[i], CASE WHEN verdicts[i] = 'none' AND ids[i] = ANY(rel) THEN 'alone'
                        ELSE verdicts[i] END,
           rel[i], rel_priority[i], rel_delay[i], rel_group[i]
    FROM generate_subscripts(ids, 1) AS i;
END
$$;

-- The start gate of earlier versions, for their workers during a rolling upgrade: the
-- gate above, with the job it released marked for that worker to queue (released_by).
CREATE OR REPLACE FUNCTION jobcast_start_gate(p_job uuid, p_types text[], p_caps integer[],
                                              OUT job_type text, OUT held_key text,
                                              OUT held_limit integer,
                                              OUT held_until timestamptz,
                                              OUT held_reason text,
                                              OUT released integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    g record;
BEGIN
    SELECT * INTO g FROM jobcast_admit(p_job, p_types, p_caps);
    SELECT g.job_type, g.held_key, g.held_limit, g.held_until, g.held_reason,
           (g.released IS NOT NULL)::integer
    INTO job_type, held_key, held_limit, held_until, held_reason, released;
    UPDATE jobs SET released_by = p_job WHERE id = g.released;
END
$$;

-- Release parked jobs of a key, as many as it has room for now (a concurrency key: its
-- limit less the jobs holding it; a throttle: its limit less the starts in its window),
-- highest priority first, then oldest. Under the key's lock, so that a job parking at the
-- same moment is either seen here or sees the slot free. A job being claimed meanwhile is
-- skipped, never waited for. p_by: the job whose end frees the slot (its worker queues
-- what is released), or NULL (the caller queues the ids returned).
CREATE OR REPLACE FUNCTION jobcast_release(p_key text, p_by uuid) RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    r record;
    eff record;
    n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_key, 0));
    FOR r IN SELECT id, parked_limit, parked_until FROM jobs
             WHERE parked_on = p_key
             ORDER BY priority DESC, created_at FOR UPDATE SKIP LOCKED LOOP
        IF p_key LIKE 'fair:%' THEN
            SELECT r.parked_limit AS lim INTO eff;
            IF n IS NULL THEN
                n := jobcast_fair_queued(p_key, p_by);
            END IF;
        ELSIF r.parked_until IS NULL THEN
            eff := jobcast_key_limit(p_key, 'concurrency', r.parked_limit, NULL);
            IF n IS NULL THEN
                n := jobcast_key_running(p_key);
            END IF;
        ELSE
            SELECT l.lim, l.period_s INTO eff FROM key_limits l
            WHERE l.key = p_key AND l.kind = 'throttle';
            IF eff.lim IS NULL THEN
                SELECT jk.lim, jk.period_s INTO eff FROM job_keys jk
                WHERE jk.job_id = r.id AND jk.kind = 'throttle' AND jk.key = p_key;
            END IF;
            IF n IS NULL THEN
                SELECT count(*) INTO n FROM key_starts s WHERE s.key = p_key
                  AND s.at > clock_timestamp() - COALESCE(eff.period_s, 0) * interval '1 second';
            END IF;
        END IF;
        EXIT WHEN n >= COALESCE(eff.lim, r.parked_limit);
        UPDATE jobs SET parked_on = NULL, parked_limit = NULL, parked_until = NULL,
            waiting_reason = NULL, released_by = p_by, updated_at = now()
        WHERE id = r.id;
        n := n + 1;
        RETURN NEXT r.id;
    END LOOP;
END
$$;

-- A job that stops running (completed, failed, retried, cancelled, waiting, paused, handed
-- back, or recovered from a dead worker by the sweep) gives its slots back in the same
-- transaction: the parked jobs its keys now have room for are released. Its type's key is
-- released only where jobs are parked on it (the sweep's pass catches a race there). The
-- claim's may_release (jobcast/queries.sql) looks ahead at these same keys: change both.
-- Whether jobs are parked on the type is asked of the parked jobs' index in its order, one
-- entry: not as `EXISTS (... WHERE parked_on = 'type:' || OLD.type)`, which Postgres plans
-- as a read of the whole table once its statistics say most jobs are parked (one tenant's
-- backlog, parked on its fairness group: one value of parked_on), expecting to find a
-- match at once; it finds none, and reads every job at every end of a job.
CREATE OR REPLACE FUNCTION jobcast_release_slots() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    k text;
BEGIN
    FOR k IN SELECT x.key FROM (
                 SELECT jk.key FROM job_keys jk
                 WHERE jk.job_id = OLD.id AND jk.kind = 'concurrency'
                 UNION
                 SELECT 'type:' || OLD.type
                 WHERE (SELECT true FROM jobs p WHERE p.parked_on = 'type:' || OLD.type
                        ORDER BY p.parked_on, p.priority DESC, p.created_at LIMIT 1) IS NOT NULL
             ) x ORDER BY x.key LOOP
        PERFORM jobcast_release(k, OLD.id);
    END LOOP;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER jobs_release_slots AFTER UPDATE OF status ON jobs FOR EACH ROW
    WHEN (OLD.status = 'running' AND NEW.status <> 'running')
    EXECUTE FUNCTION jobcast_release_slots();

-- A job that leaves pending (cancelled, paused, failed for waiting too long, ...) is no
-- longer parked: whatever statement moves it, its key forgets it. A paused job that was
-- parked is queued when resumed, and its claim looks at its keys again.
CREATE OR REPLACE FUNCTION jobcast_unpark() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.parked_on := NULL;
    NEW.parked_limit := NULL;
    NEW.parked_until := NULL;
    RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER jobs_unpark BEFORE UPDATE OF status ON jobs FOR EACH ROW
    WHEN (NEW.status <> 'pending' AND NEW.parked_on IS NOT NULL)
    EXECUTE FUNCTION jobcast_unpark();
-- jobs of an earlier version that left pending parked
UPDATE jobs SET parked_on = NULL, parked_limit = NULL, parked_until = NULL
WHERE parked_on IS NOT NULL AND status <> 'pending';
