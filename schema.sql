-- jobcast schema: the single source of the database's shape.
-- Safe to apply any number of times: every statement is idempotent.

CREATE TABLE IF NOT EXISTS owners (
    id          uuid PRIMARY KEY,
    -- sha256 of the bearer token; the token itself is never stored
    token_hash  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
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
    run_at        timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT jobs_status_check
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    CONSTRAINT jobs_progress_check CHECK (progress >= 0 AND progress <= 100),
    CONSTRAINT jobs_priority_check CHECK (priority BETWEEN -10 AND 10)
);
-- an owner's job list, newest first (GET /api/jobs), optionally by status
CREATE INDEX IF NOT EXISTS jobs_owner_created_idx ON jobs (owner_id, created_at DESC);
-- the dispatcher and the reaper scan only unfinished jobs
CREATE INDEX IF NOT EXISTS jobs_active_idx ON jobs (status, run_at)
    WHERE status IN ('pending', 'running');
-- retention deletes finished jobs by age
CREATE INDEX IF NOT EXISTS jobs_finished_idx ON jobs (status, finished_at)
    WHERE finished_at IS NOT NULL;

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
        CHECK (status IN ('waiting', 'running', 'completed', 'failed')),
    CONSTRAINT job_steps_name_key UNIQUE (job_id, name)
);

CREATE TABLE IF NOT EXISTS job_events (
    job_id   uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq      bigint NOT NULL,
    kind     text NOT NULL,
    payload  jsonb NOT NULL,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- one event per (job, seq); also the index behind replay "events after N"
    PRIMARY KEY (job_id, seq),
    CONSTRAINT job_events_kind_check CHECK (kind IN ('status', 'step', 'progress'))
);

CREATE TABLE IF NOT EXISTS leases (
    -- a named duty that one process holds at a time (the reaper's sweep), until it expires:
    -- a lease, not a lock, so a frozen holder cannot keep it
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    expires_at  timestamptz NOT NULL
);
