-- Every SQL statement of jobcast, by name; schema.sql holds the tables they work on.
--
-- `-- name: x` starts the statement the store runs as QUERIES["x"]; the comment lines
-- under it say what it does and its parameters in order (asyncpg's $1, $2, ...).
-- `-- part: x` starts a piece that statements share, pasted where a statement says
-- `-- include: x`. Nothing else is ever pasted into a statement: no name of a table or
-- column, no value, comes from Python (jobcast/sql.py reads this file once, at import).
--
-- Each state change of a job is one statement: a data-modifying CTE `j` that updates
-- the jobs row (bumping its seq) and returns, besides the row, the kind and payload of
-- the event it makes; the shared `event_tail` inserts that event with that seq and
-- NOTIFYs jobcast_events with it, while a server process asks for it. One
-- statement is one round trip and one implicit transaction, so an event exists exactly
-- when the change it describes does, and seq has no gaps. A worker's writes are fenced
-- by its attempt (WHERE attempts = $2 AND status IS NOT DISTINCT FROM 'running'). A
-- running job's reports (progress, steps, metadata, streams: many a job) return of the
-- row only what their event needs (id, seq, owner_id, type; jobcast/store/rows.py
-- event_of_change), not the row, whose input, result and metadata would otherwise go back
-- to the worker with each one; so do the ends of an attempt (finishes, retry_later,
-- hand_back).
--
-- A statement that finds a job by its id tests its status with IS NOT DISTINCT FROM, the
-- same test for a column that is never NULL, but one that no index can answer: the job is
-- found by its key. With `status = 'pending'`, Postgres may take jobs_active_idx instead
-- whenever its statistics say few jobs are pending (the table was small when the plan was
-- made, or ANALYZE ran while none were), and then reads every pending job to find the one
-- (tests/integration/test_plans.py: a claim read 117-157 pages with 2,000 jobs queued, and
-- 26-41 by its key). A table of a few pages, analyzed that small, is read whole instead,
-- which is cheaper there, until its next ANALYZE (docs/performance.md).
--
-- A statement of many that a worker often runs with one job (reports, finishes, heartbeat)
-- reads its ids through a sub-select, `unnest((SELECT $1::uuid[]), ...)`: no plan knows
-- that list's length, so a plan made for one job is no cheaper than the generic plan,
-- which Postgres then keeps after its first five runs rather than planning every run
-- afresh.


-- part: notify
-- NOTIFY the fallback channel, but only while a server process asks for it (a row in
-- fallback_listeners: its Redis pub/sub is down). A NOTIFY takes a cluster-wide lock
-- through its transaction's commit, so when nobody needs it, it is skipped: the check
-- is one look at an empty table. The payload is the event (schema.sql, jobcast_notice;
-- `j` has its time as event_at), or its ids alone while a process of an earlier version,
-- which reads nothing more, asks too (a rolling upgrade).
CASE WHEN EXISTS (SELECT 1 FROM fallback_listeners WHERE expires_at > now())
     THEN pg_notify('jobcast_events', jobcast_notice(
              j.id, j.seq, j.owner_id, j.event_kind, j.event_at, j.event_payload,
              NOT EXISTS (SELECT 1 FROM fallback_listeners
                          WHERE expires_at > now() AND NOT reads_events)))
END AS notified

-- part: event_tail
-- The end of every state change: the event of `j` (its event_kind and event_payload),
-- and `made`, the changed job with its event, announced.
, e AS (
    INSERT INTO job_events (job_id, seq, kind, payload)
    SELECT j.id, j.seq, j.event_kind, j.event_payload FROM j
    RETURNING at
), made AS (
    SELECT j.*,
-- include: notify
    FROM (SELECT j.*, e.at AS event_at FROM j, e) j
)

-- part: webhook
-- A final change also schedules the job's completion webhook, in the same statement.
, w AS (
    INSERT INTO webhook_deliveries (job_id, attempt, url)
    SELECT id, 1, callback_url FROM j WHERE callback_url IS NOT NULL
)

-- part: open_steps
-- The start of a final change: `o`, the open steps of the jobs it closes (a step running,
-- or the step a waiting job asked from), for close_steps. The statement goes on with its
-- condition on the job (`AND s.job_id = ...`), then includes close_jobs.
WITH o AS (
    SELECT s.job_id, s.position FROM job_steps s JOIN jobs jb ON jb.id = s.job_id
    WHERE (s.status = 'running' OR (jb.status = 'waiting' AND s.name = jb.step))

-- part: close_jobs
-- The final change `j` after open_steps: it counts the steps it closes in its seq.
), j AS (
    UPDATE jobs SET seq = seq + 1 + (SELECT count(*) FROM o WHERE o.job_id = jobs.id),

-- part: close_steps
-- A final change `j` closes the steps it found open in `o` (a step running, or the step a
-- waiting job asked from): each ends as the job did (cancelled; failed when the job failed)
-- with its duration, and gets its `step` event. `j` counted `o` in its seq, so these events
-- come just before the change's own, in step order, and seq stays gap-free. A step another
-- statement ended meanwhile keeps its state (its event then repeats it).
, c AS (
    UPDATE job_steps s SET
        status = CASE WHEN s.status IN ('completed', 'failed', 'cancelled') THEN s.status
                      WHEN j.status = 'cancelled' THEN 'cancelled' ELSE 'failed' END,
        finished_at = CASE WHEN s.status IN ('running', 'waiting') THEN now()
                           ELSE s.finished_at END,
        duration_ms = CASE WHEN s.status = 'running'
                           THEN (extract(epoch FROM now() - s.started_at) * 1000)::integer
                           ELSE s.duration_ms END
    FROM j, o
    WHERE s.job_id = j.id AND o.job_id = j.id AND s.position = o.position
    RETURNING s.job_id, s.position, s.name, s.status, s.duration_ms
), ce AS (
    INSERT INTO job_events (job_id, seq, kind, payload)
    SELECT c.job_id,
           j.seq - row_number() OVER (PARTITION BY c.job_id ORDER BY c.position DESC), 'step',
           jsonb_strip_nulls(jsonb_build_object('step', c.name, 'state', c.status,
                                                'duration_ms', c.duration_ms,
                                                'progress', j.progress))
    FROM c JOIN j ON j.id = c.job_id
)

-- part: fair_columns
-- A new job's columns fair_key, parked_on, parked_limit and waiting_reason, from `p`: its
-- fairness group (key), and whether the group's window (fair_window) is full, when the job
-- is made parked on the group, saying why (its tenant's group, else its owner's).
           p.key, CASE WHEN p.full THEN p.key END, CASE WHEN p.full THEN p.fair_window END,
           CASE WHEN p.full THEN format('Waiting its turn: %s jobs of this %s go to the '
                                        'workers at a time', p.fair_window,
                                        CASE WHEN p.tenant IS NULL THEN 'owner'
                                             ELSE 'tenant' END) END

-- part: job_columns
-- The columns of a job as the API shows it (jobcast.store.rows.job reads them).
j.id, j.owner_id, j.type, j.input, j.status, j.priority, j.progress, j.step, j.message,
j.result, j.error, j.attempts, j.max_attempts, j.seq, j.estimated_s, j.timeout_s, j.run_at,
j.created_at, j.started_at, j.finished_at, j.parent_id, j.callback_url, j.result_expired_at,
j.retry_of, j.pause_requested, j.metadata, j.subject, j.tenant, j.tags, j.stuck_since,
j.waiting_reason,
-- the names of the files it reads, by upload id (null: none), and their bytes together
(SELECT json_object_agg(u.id, u.filename) FROM uploads u WHERE u.job_id = j.id) AS upload_names,
(SELECT COALESCE(sum(u.size), 0) FROM uploads u WHERE u.job_id = j.id)::bigint AS upload_bytes,
(SELECT json_build_object('step', i.step, 'prompt', i.prompt, 'schema', i.schema,
                          'expires_at', i.expires_at, 'on_timeout', i.on_timeout)
 FROM job_inputs i WHERE j.status = 'waiting' AND i.job_id = j.id AND i.answered_at IS NULL
 ORDER BY i.created_at DESC LIMIT 1) AS input_request

-- part: steps_json
-- The steps of job j, in order.
COALESCE((SELECT json_agg(json_build_object(
    'name', s.name, 'title', s.title, 'weight', s.weight, 'status', s.status,
    'started_at', s.started_at, 'finished_at', s.finished_at, 'duration_ms', s.duration_ms,
    'attempts', s.attempts, 'parent', s.parent, 'share', s.share, 'counters', s.counters,
    'metadata', s.metadata, 'error', s.error
-- a step added at run time comes after its parent and the parent's earlier ones
) ORDER BY COALESCE((SELECT p.position FROM job_steps p
                     WHERE p.job_id = s.job_id AND p.name = s.parent), s.position),
           s.parent IS NOT NULL, s.position) FROM job_steps s WHERE s.job_id = j.id), '[]'::json) AS steps


-- owners

-- name: create_owner
-- A new owner. $1 id, $2 token hash, $3 webhook secret
INSERT INTO owners (id, token_hash, webhook_secret) VALUES ($1, $2, $3)

-- name: ensure_owner
-- An owner no token opens (the one scheduled jobs belong to), unless it exists.
-- $1 id, $2 random token hash, $3 webhook secret
INSERT INTO owners (id, token_hash, webhook_secret) VALUES ($1, $2, $3)
ON CONFLICT (id) DO NOTHING

-- name: owner_for_token
-- $1 token hash
SELECT id FROM owners WHERE token_hash = $1

-- name: webhook_secret
-- $1 owner id
SELECT webhook_secret FROM owners WHERE id = $1


-- uploads

-- name: create_upload
-- $1 id, $2 owner id, $3 filename, $4 content type, $5 size in bytes, $6 data
INSERT INTO uploads (id, owner_id, filename, content_type, size, data)
VALUES ($1, $2, $3, $4, $5, $6)

-- name: lock_owner_uploads
-- Hold the owner's uploads still until the transaction ends, so that uploads made at once
-- cannot pass the owner's quota together. $1 owner id
SELECT pg_advisory_xact_lock(hashtextextended('uploads:' || $1::uuid::text, 0))

-- name: owner_upload_bytes
-- The bytes an owner keeps in uploads, claimed or not. $1 owner id
SELECT COALESCE(sum(size), 0)::bigint FROM uploads WHERE owner_id = $1

-- name: read_upload
-- One upload of its owner. $1 upload id, $2 owner id
SELECT id, filename, content_type, data FROM uploads WHERE id = $1 AND owner_id = $2

-- name: claim_uploads
-- Ties the owner's unclaimed uploads to a job: the ids tied.
-- $1 upload ids, $2 owner id, $3 job id
UPDATE uploads SET job_id = $3
WHERE id = ANY($1::uuid[]) AND owner_id = $2 AND job_id IS NULL
RETURNING id

-- name: upload_bytes
-- The bytes of these uploads together (an ETA's scale). $1 upload ids
SELECT COALESCE(sum(size), 0)::bigint FROM uploads WHERE id = ANY($1::uuid[])

-- name: delete_unclaimed_uploads
-- Uploads no job took. $1 seconds since they were made
DELETE FROM uploads WHERE job_id IS NULL AND created_at < now() - $1 * interval '1 second'


-- jobs: submit, read, cancel

-- name: create_job
-- A job, in one statement: the gate (jobcast_submit_gate in schema.sql), the job, its
-- steps, its first event and the NOTIFY. It answers one row: the gate's verdict (the job
-- an idempotency key made already, gate_existing), and the job with its event if made.
-- A due pending job whose fairness group (its tenant, else its owner) has the window's
-- worth of jobs on the queue is made parked on the group (its waiting_reason says so):
-- it is queued when one of those starts.
-- $1 id, $2 owner id, $3 type, $4 input, $5 priority, $6 max_attempts, $7 delay_s,
-- $8 estimated_s, $9 step names, $10 step titles, $11 step weights, $12 first event
-- payload, $13 timeout_s, $14 parent id, $15 idempotency key, $16 callback url,
-- $17 message, $18 retry_of, $19 the owner's cap on active jobs (NULL: none),
-- $20 status ('pending', or 'draft': stored, not queued), $21 subject, $22 tenant,
-- $23 tags, $24 the app's metadata, $25 the fairness window (0: none)
WITH g AS (
    SELECT * FROM jobcast_submit_gate($2, $15, $19)
), f AS (
    SELECT CASE WHEN $25::int > 0 AND $20 = 'pending'
                THEN 'fair:' || COALESCE('tenant:' || $22::text, 'owner:' || $2::text) END AS key
), p AS MATERIALIZED (  -- once: inlined, the count would run for each use of `full`
    SELECT f.key, f.key IS NOT NULL AND $7::float8 <= 0
                  AND jobcast_fair_queued(f.key, NULL) >= $25::int AS full,
           $25::int AS fair_window, $22::text AS tenant
    FROM f
), j AS (
    INSERT INTO jobs (id, owner_id, type, input, priority, max_attempts, run_at, estimated_s, seq,
                      timeout_s, parent_id, idempotency_key, callback_url, message, retry_of,
                      status, subject, tenant, tags, metadata, fair_key, parked_on,
                      parked_limit, waiting_reason)
    SELECT $1, $2, $3, $4, $5, $6, now() + $7 * interval '1 second', $8, 1, $13, $14, $15, $16,
           $17, $18, $20, $21, $22, COALESCE($23::text[], '{}'), COALESCE($24::jsonb, '{}'),
-- include: fair_columns
    FROM g, p WHERE g.existing IS NULL AND ($19::bigint IS NULL OR g.active < $19)
    ON CONFLICT (id) DO NOTHING
    RETURNING *, 'status'::text AS event_kind, $12::jsonb AS event_payload
), s AS (
    INSERT INTO job_steps (job_id, position, name, title, weight)
    SELECT j.id, t.position, t.name, t.title, t.weight
    FROM j, unnest($9::text[], $10::text[], $11::real[]) WITH ORDINALITY
         AS t(name, title, weight, position)
)
-- include: event_tail
SELECT g.existing AS gate_existing, made.* FROM g LEFT JOIN made ON true

-- name: create_jobs
-- Many jobs in one statement (submits made while the web process's last statement of
-- submits ran, server/submits.py), each as `create_job` makes one: its steps, its first
-- event and the NOTIFY, parked on its fairness group past the group's window. Only jobs
-- with no idempotency key, debounce, uploads or keys of their own come this way. The gate
-- (jobcast_submit_gate_many in schema.sql) takes the lock of each owner with a cap,
-- exclusively and in the owners' order, and counts the owner's active jobs: its jobs here
-- are made in their order while the count stays within their cap. A group's queued jobs
-- are counted once, and its due jobs here parked, in their order, past its window. The
-- first event's payload is `create_job`'s, made of the row: status, attempt 0, message
-- and progress 0. One answer row a job given, in their order: its id (given_id), and the
-- job with its event when it was made (all NULL: its owner is at its cap, or the id is
-- taken).
-- $1 ids, $2 owner ids, $3 types, $4 inputs (JSON text), $5 priorities, $6 max_attempts,
-- $7 delay_s, $8 estimated_s, $9 timeout_s, $10 parent ids, $11 callback urls, $12
-- messages, $13 retry_of, $14 caps on the owners' active jobs (NULL: none), $15 statuses,
-- $16 subjects, $17 tenants, $18 tags and $19 metadata (JSON text), $20 the fairness
-- window (0: none); the steps of them all: $21 their job's id, $22 names, $23 titles, $24
-- weights, $25 positions
WITH b AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::smallint[],
                         $6::integer[], $7::float8[], $8::real[], $9::real[], $10::uuid[],
                         $11::text[], $12::text[], $13::uuid[], $14::bigint[], $15::text[],
                         $16::text[], $17::text[], $18::text[], $19::text[])
        WITH ORDINALITY AS b(id, owner_id, type, input, priority, max_attempts, delay_s,
                             estimated_s, timeout_s, parent_id, callback_url, message,
                             retry_of, cap, status, subject, tenant, tags, metadata, n)
), g AS (
    SELECT * FROM jobcast_submit_gate_many($2::uuid[], $14::bigint[])
), a AS (
    SELECT b.*, g.gate_active + row_number() OVER (PARTITION BY b.owner_id ORDER BY b.n)
                AS counted,
           CASE WHEN $20::int > 0 AND b.status = 'pending'
                THEN 'fair:' || COALESCE('tenant:' || b.tenant, 'owner:' || b.owner_id::text)
           END AS key
    FROM b LEFT JOIN g ON g.gate_owner = b.owner_id
), q AS MATERIALIZED (  -- once a group
    SELECT k.key, jobcast_fair_queued(k.key, NULL) AS queued
    FROM (SELECT DISTINCT a.key FROM a WHERE a.key IS NOT NULL AND a.delay_s <= 0) k
), p AS (
    SELECT a.*, q.queued IS NOT NULL
                AND q.queued + row_number() OVER (PARTITION BY a.key, q.queued IS NOT NULL
                                                  ORDER BY a.n) > $20::int AS full,
           $20::int AS fair_window
    FROM a LEFT JOIN q ON q.key = a.key AND a.delay_s <= 0
    WHERE a.cap IS NULL OR a.counted <= a.cap
), j AS (
    INSERT INTO jobs (id, owner_id, type, input, priority, max_attempts, run_at, estimated_s, seq,
                      timeout_s, parent_id, callback_url, message, retry_of, status, subject,
                      tenant, tags, metadata, fair_key, parked_on, parked_limit, waiting_reason)
    SELECT p.id, p.owner_id, p.type, p.input::jsonb, p.priority, p.max_attempts,
           now() + p.delay_s * interval '1 second', p.estimated_s, 1, p.timeout_s, p.parent_id,
           p.callback_url, p.message, p.retry_of, p.status, p.subject, p.tenant,
           ARRAY(SELECT jsonb_array_elements_text(p.tags::jsonb)),
           COALESCE(p.metadata::jsonb, '{}'),
-- include: fair_columns
    FROM p ORDER BY p.n
    ON CONFLICT (id) DO NOTHING
    RETURNING *, 'status'::text AS event_kind,
              jsonb_build_object('status', status, 'attempt', 0, 'message', message,
                                 'progress', 0) AS event_payload,
              clock_timestamp() AS event_at
), s AS (
    INSERT INTO job_steps (job_id, position, name, title, weight)
    SELECT t.job_id, t.position, t.name, t.title, t.weight
    FROM unnest($21::uuid[], $22::text[], $23::text[], $24::real[], $25::integer[])
         AS t(job_id, name, title, weight, position)
    WHERE t.job_id IN (SELECT j.id FROM j)
)
-- include: events_of_many
SELECT b.id AS given_id, made.* FROM b LEFT JOIN made ON made.id = b.id ORDER BY b.n

-- name: debounce_job
-- A debounced submit, in one statement: a new job, as create_job makes it (held back for
-- the window, $7), or, when a job of the owner with this type and key has not started
-- yet, that job with this submit's input, held back for the window again from now but no
-- later than its debounce_until (the unique index jobs_debounce_key is the arbiter: exact
-- under concurrent submits). The owner's cap does not refuse a submit that joins a job.
-- The answer row: the job with its event (a new job's first one; a joined job's `status`
-- event with `debounced`), debounce_new saying which; no row when the cap refused it.
-- $1 id, $2 owner id, $3 type, $4 input, $5 priority, $6 max_attempts, $7 the window in
-- seconds, $8 estimated_s, $9 step names, $10 step titles, $11 step weights, $12 first
-- event payload, $13 timeout_s, $14 parent id, $15 idempotency key (NULL), $16 callback
-- url, $17 message, $18 retry_of, $19 the owner's cap on active jobs (NULL: none),
-- $20 status ('pending'), $21 subject, $22 tenant, $23 tags, $24 the app's metadata,
-- $25 debounce key, $26 the longest it may be held back from its first submit, in seconds
WITH g AS (
    SELECT * FROM jobcast_submit_gate($2, $15, $19)
), j AS (
    INSERT INTO jobs AS d (id, owner_id, type, input, priority, max_attempts, run_at,
                           estimated_s, seq, timeout_s, parent_id, idempotency_key,
                           callback_url, message, retry_of, status, subject, tenant, tags,
                           metadata, debounce_key, debounce_until)
    SELECT $1, $2, $3, $4, $5, $6, now() + $7 * interval '1 second', $8, 1, $13, $14, $15, $16,
           $17, $18, $20, $21, $22, COALESCE($23::text[], '{}'), COALESCE($24::jsonb, '{}'),
           $25, now() + $26 * interval '1 second'
    FROM g
    WHERE $19::bigint IS NULL OR g.active < $19
       OR EXISTS (SELECT 1 FROM jobs o WHERE o.owner_id = $2 AND o.type = $3
                  AND o.debounce_key = $25 AND o.status = 'pending' AND o.started_at IS NULL)
    ON CONFLICT (owner_id, type, debounce_key)
        WHERE debounce_key IS NOT NULL AND status = 'pending' AND started_at IS NULL
    DO UPDATE SET input = EXCLUDED.input, estimated_s = EXCLUDED.estimated_s,
        run_at = LEAST(now() + $7 * interval '1 second', d.debounce_until),
        seq = d.seq + 1, message = EXCLUDED.message, updated_at = now()
    RETURNING *, 'status'::text AS event_kind, (xmax = 0) AS debounce_new,
              CASE WHEN xmax = 0 THEN $12::jsonb
                   ELSE jsonb_build_object('status', 'pending', 'attempt', attempts,
                                           'message', message, 'debounced', true,
                                           'run_at', run_at) END AS event_payload
), s AS (
    INSERT INTO job_steps (job_id, position, name, title, weight)
    SELECT j.id, t.position, t.name, t.title, t.weight
    FROM j, unnest($9::text[], $10::text[], $11::real[]) WITH ORDINALITY
         AS t(name, title, weight, position)
    WHERE j.debounce_new
)
-- include: event_tail
SELECT * FROM made

-- name: get_job
-- One job with its steps, its children, its webhook tries and its streams.
-- $1 id, $2 owner id, or NULL for any owner
SELECT
-- include: job_family
,   -- each stream's text so far, joined from its stream events
    COALESCE((SELECT json_object_agg(x.name, x.text) FROM (
        SELECT e.payload->>'name' AS name, string_agg(e.payload->>'text', '' ORDER BY e.seq) AS text
        FROM job_events e WHERE e.job_id = j.id AND e.kind = 'stream' GROUP BY 1
    ) x), '{}'::json) AS streams
FROM jobs j WHERE j.id = $1 AND ($2::uuid IS NULL OR j.owner_id = $2)

-- name: job_snapshot
-- What a job's websocket starts with: the job as get_job reads it, but for its streams,
-- whose text the stream events replayed after it carry (joining it here would read every
-- chunk of a long stream at each connect, only to drop it); and the first of those events,
-- the stored events after the client's seq (no later than the job's: one snapshot).
-- $1 id, $2 owner id, $3 the client's seq, $4 at most this many events
SELECT
-- include: job_family
,   ARRAY(SELECT ROW(e.seq, e.kind, e.payload::text, e.at) FROM job_events e
          WHERE e.job_id = j.id AND e.seq > LEAST($3::bigint, j.seq) ORDER BY e.seq LIMIT $4)
    AS replay
FROM jobs j WHERE j.id = $1 AND j.owner_id = $2

-- part: job_family
-- A job's columns with its steps, its children and its webhook tries (j: the job).
-- include: job_columns
,
-- include: steps_json
,   COALESCE((SELECT json_agg(json_build_object(
        'id', c.id, 'type', c.type, 'status', c.status, 'progress', c.progress
    ) ORDER BY c.created_at, c.id) FROM jobs c WHERE c.parent_id = j.id), '[]'::json)
    AS children,
    COALESCE((SELECT json_agg(json_build_object(
        'attempt', d.attempt, 'status', d.status, 'status_code', d.status_code,
        'error', d.error, 'at', COALESCE(d.delivered_at, d.next_at), 'tried_at', d.tried_at,
        'next_at', (SELECT n.next_at FROM webhook_deliveries n
                    WHERE n.job_id = d.job_id AND n.attempt = d.attempt + 1)
    ) ORDER BY d.attempt) FROM webhook_deliveries d WHERE d.job_id = j.id), '[]'::json)
    AS deliveries

-- name: job_seq
-- A job's seq, all a conditional GET needs to answer 304. $1 id, $2 owner id
SELECT seq FROM jobs WHERE id = $1 AND owner_id = $2

-- name: list_jobs
-- An owner's jobs, newest first. $1 owner id, $2 status or NULL, $3 type or NULL, $4 limit
SELECT
-- include: job_columns
,
-- include: steps_json
FROM jobs j
WHERE j.owner_id = $1 AND ($2::text IS NULL OR j.status = $2) AND ($3::text IS NULL OR j.type = $3)
ORDER BY j.created_at DESC, j.id
LIMIT $4

-- name: children_state
-- A parent's children, oldest first. $1 parent id
SELECT id, type, status, progress, result, error FROM jobs WHERE parent_id = $1
ORDER BY created_at, id

-- name: events_after
-- A job's events after a seq, in order. $1 job id, $2 after seq, $3 limit
SELECT job_id, seq, kind, payload, at FROM job_events
WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3

-- name: events_since
-- The events of some jobs written after a time, as the owner's feed carries them (no
-- progress), oldest first: what a feed resuming from a position missed.
-- $1 job ids, $2 since, $3 limit
SELECT job_id, seq, kind, payload, at FROM job_events
WHERE job_id = ANY($1::uuid[]) AND at > $2 AND kind <> 'progress'
ORDER BY at, job_id, seq LIMIT $3

-- name: cancel
-- Cancel an unfinished job of the owner (pending, running, waiting, paused or a draft).
-- $1 id, $2 owner id, $3 payload
-- include: open_steps
      AND s.job_id = $1
-- include: close_jobs
        status = 'cancelled', message = 'Cancelled',
        finished_at = now(), heartbeat_at = NULL, pause_requested = false, updated_at = now()
    WHERE id = $1 AND owner_id = $2
      AND status IN ('pending', 'running', 'waiting', 'paused', 'draft')
    RETURNING *, 'status'::text AS event_kind,
              $3::jsonb || jsonb_build_object('attempt', attempts) AS event_payload
)
-- include: close_steps
-- include: webhook
-- include: event_tail
SELECT * FROM made

-- name: tree
-- A job and all its descendants, parents first. $1 id, $2 owner id
WITH RECURSIVE tree AS (
    SELECT id, 0 AS depth FROM jobs WHERE id = $1 AND owner_id = $2
    UNION ALL
    SELECT c.id, t.depth + 1 FROM jobs c JOIN tree t ON c.parent_id = t.id
)
SELECT id FROM tree ORDER BY depth

-- name: notify_event
-- Announce an event whose publish on Redis failed: by its ids alone, for every listening
-- process hears it, whether it asked or not, of whatever version.
-- $1 the NOTIFY payload: job id, seq, owner id and kind, space-separated, as `notify` says
SELECT pg_notify('jobcast_events', $1)


-- attempts: the state changes a worker makes

-- part: claim_start
-- The claim's change `j` of its pending jobs: the next attempt starts, progress from 0.
-- The statement goes on with which jobs (`WHERE ...`) and what it returns.
, j AS (
    UPDATE jobs SET status = 'running', attempts = attempts + 1, seq = seq + 1,
        progress = 0, step = NULL, message = NULL, error = NULL, pause_requested = false,
        waiting_reason = NULL,
        started_at = COALESCE(started_at, now()), heartbeat_at = now(), updated_at = now()

-- part: claim_answer
-- The end of a claim's answer row, of a job `c` it claimed (or none: all NULL): where its
-- attempt starts from (checkpoints, read as the statement began) and whether its end may
-- release parked jobs (may_release); $2 is the statement's capped types.
       (SELECT jsonb_agg(jsonb_build_object('name', s.name,
                                            'completed', s.status = 'completed',
                                            'result', s.result,
                                            'answered', i.answered_at IS NOT NULL,
                                            'answer', i.answer) ORDER BY s.position)
        FROM job_steps s LEFT JOIN job_inputs i ON i.job_id = s.job_id AND i.step = s.name
        WHERE s.job_id = c.id) AS checkpoints,
       c.id IS NOT NULL AND (
           c.type = ANY($2::text[])
           -- the job's concurrency keys read from their index in its order, one entry: as
           -- EXISTS, planned while job_keys was empty, it hashed every key of every job
           -- kept, at each statement of claims, until the plan was made again
           OR (SELECT true FROM job_keys k WHERE k.job_id = c.id AND k.kind = 'concurrency'
               ORDER BY k.job_id, k.kind, k.key LIMIT 1) IS NOT NULL
           OR EXISTS (SELECT 1 FROM key_limits l
                      WHERE l.key = 'type:' || c.type AND l.kind = 'concurrency')
           -- read from the parked jobs' index in its order: see jobcast_release_slots
           OR (SELECT true FROM jobs p WHERE p.parked_on = 'type:' || c.type
               ORDER BY p.parked_on, p.priority DESC, p.created_at LIMIT 1) IS NOT NULL
       ) AS may_release

-- name: claim
-- Start the next attempt of a pending job: steps that did not complete are reset (a
-- completed step is a checkpoint the attempt skips), progress starts again from 0. The
-- gate (jobcast_admit in schema.sql) says whether the job is pending (not parked, its
-- type not paused) and whether every key of it, its type's cap included, has room; a job
-- held back by a key is parked by the gate. The answer row carries the verdict (gate_type,
-- held_key, held_limit, held_until, held_reason), the parked job of its fairness group
-- released in its place (released, released_priority, released_delay_s, released_group:
-- the worker queues it), and the claimed job with its event when it was claimed.
-- The claiming worker is written down with the attempt's number (job_claims). The answer
-- also holds where the attempt starts from (checkpoints): each step of the job in order,
-- whether it completed (and its stored result), and the answer a person gave to its
-- question, if any; read as the statement began, before it resets the steps that did not
-- complete (a completed one, the checkpoint, it leaves as it is). And whether the job's end
-- may release parked jobs (may_release: it holds a concurrency key, or its type has a cap,
-- an operator's limit or jobs parked on it: the keys jobcast_release_slots in schema.sql
-- releases at its end, looked at ahead; change both); only then does its worker look.
-- $1 id, $2 capped types, $3 their caps, $4 the worker (host:pid)
WITH g AS (
    SELECT * FROM jobcast_admit($1, $2::text[], $3::integer[])
)
-- include: claim_start
    WHERE id = $1 AND status IS NOT DISTINCT FROM 'pending'
      AND EXISTS (SELECT 1 FROM g WHERE g.job_type IS NOT NULL AND g.held_key IS NULL)
    RETURNING *, 'status'::text AS event_kind,
              jsonb_build_object('status', 'running', 'attempt', attempts, 'progress', 0,
                                 'message', NULL) AS event_payload
), r AS (
    UPDATE job_steps SET status = 'waiting', started_at = NULL, finished_at = NULL,
        duration_ms = NULL
    WHERE job_id = $1 AND status NOT IN ('waiting', 'completed') AND EXISTS (SELECT 1 FROM j)
), a AS (
    INSERT INTO job_claims (job_id, attempt, worker) SELECT id, attempts, $4 FROM j
)
-- include: event_tail
SELECT g.job_type AS gate_type, g.held_key, g.held_limit, g.held_until, g.held_reason,
       g.released, g.released_priority, g.released_delay_s, g.released_group, c.*,
-- include: claim_answer
FROM g LEFT JOIN made AS c ON true

-- name: claims
-- The claims of many pending jobs in one statement (a worker's jobs that start while its
-- last statement of claims runs, workers/claims.py), each as `claim` claims one: its
-- event, its claim's record and its checkpoints included. The gate (jobcast_admit_many in
-- schema.sql) admits only jobs that need no key's lock. One answer row a job: its id
-- (gate_job) and the verdict, 'claim', 'alone' (its worker claims it by `claim`, whose
-- gate takes its keys' locks) or 'none' (not pending, parked, or its type paused); a
-- claimed job's row also holds what `claim`'s does. The parts after `j` read `j` alone,
-- and the event's time is taken with the change; the answer joins `g` to them once, on
-- the job's id.
-- $1 ids, $2 capped types, $3 the worker (host:pid)
WITH g AS (
    SELECT * FROM jobcast_admit_many($1::uuid[], $2::text[])
)
-- include: claim_start
    FROM g
    WHERE jobs.id = g.gate_job AND g.verdict = 'claim'
      AND jobs.status IS NOT DISTINCT FROM 'pending'
    RETURNING jobs.*, 'status'::text AS event_kind,
              jsonb_build_object('status', 'running', 'attempt', jobs.attempts,
                                 'progress', 0, 'message', NULL) AS event_payload,
              clock_timestamp() AS event_at
), r AS (
    UPDATE job_steps SET status = 'waiting', started_at = NULL, finished_at = NULL,
        duration_ms = NULL
    FROM j
    WHERE job_steps.job_id = j.id AND job_steps.status NOT IN ('waiting', 'completed')
), a AS (
    INSERT INTO job_claims (job_id, attempt, worker) SELECT id, attempts, $3 FROM j
)
-- include: events_of_many
SELECT g.gate_job, g.verdict, g.released, g.released_priority, g.released_delay_s,
       g.released_group, c.*,
-- include: claim_answer
FROM g LEFT JOIN made AS c ON c.id = g.gate_job

-- name: note_waiting
-- Say why a pending job waits, once per reason. $1 id, $2 message, $3 payload
WITH j AS (
    UPDATE jobs SET seq = seq + 1, message = $2, updated_at = now()
    WHERE id = $1 AND status IS NOT DISTINCT FROM 'pending' AND message IS DISTINCT FROM $2
    RETURNING *, 'status'::text AS event_kind,
              $3::jsonb || jsonb_build_object('attempt', attempts) AS event_payload
)
-- include: event_tail
SELECT * FROM made

-- name: reports
-- The reports of running jobs, one a job, in one statement (a worker's reports made while
-- its last such statement ran), each fenced by its attempt: a progress report, or a step
-- that starts (counted in its attempts), completes (its checkpoint, the result, stored in
-- the same statement as its event) or fails. A step's start is refused while the owner
-- asks for a pause: the step boundary is where the job pauses (pause_at_boundary). Each
-- job whose report applies gets its event (`progress` or `step`) and its row the report.
-- A worker runs one such statement at a time, and its heartbeat only between them
-- (workers/report_writes.py): the rows are updated as the plan reaches them, with no
-- pass that locks them in an order first. Each part after `j` reads `j` alone, which
-- carries what it needs of the report, and the event's time is taken with the change:
-- a join of two of the statement's parts is planned as a loop over one for each row of
-- the other, which for a worker's thousand reports was a million comparisons.
-- $1 ids, $2 attempts, $3 kinds ('progress' or 'step'), $4 progress, $5 steps (the step
-- a progress report was made in, or the step that changes), $6 step states, $7 steps'
-- duration_ms, $8 messages (a progress report's, or a starting step's), $9 payloads and
-- $10 results (of a step that completes), each as JSON text: an array of jsonb would take
-- a result that is itself a list for a dimension of the array.
-- The ids are read through a sub-select, whose length a plan cannot know: a plan made for
-- one report then looks no cheaper than the plan for many, and Postgres keeps its generic
-- plan. Read as given, a statement of one report looked cheaper planned for its one row,
-- and was planned again at every run (0.4 ms of Postgres a statement).
WITH j AS (
    UPDATE jobs SET seq = seq + 1, progress = b.progress, step = b.step,
        message = CASE WHEN b.kind = 'progress' OR b.state = 'running' THEN b.message
                       ELSE jobs.message END,
        heartbeat_at = now(), updated_at = now()
    FROM unnest((SELECT $1::uuid[]), $2::integer[], $3::text[], $4::real[], $5::text[],
                $6::text[], $7::integer[], $8::text[], $9::text[], $10::text[])
        AS b(id, attempt, kind, progress, step, state, duration_ms, message, payload, result)
    WHERE jobs.id = b.id AND jobs.attempts = b.attempt
      AND jobs.status IS NOT DISTINCT FROM 'running'
      AND NOT (b.kind = 'step' AND b.state = 'running' AND jobs.pause_requested)
    RETURNING jobs.id, jobs.seq, jobs.owner_id, jobs.type, b.kind AS event_kind,
              b.payload::jsonb AS event_payload, clock_timestamp() AS event_at,
              b.step AS step_name, b.state AS step_state, b.duration_ms AS step_ms,
              b.result AS step_result
), s AS (
    UPDATE job_steps SET status = j.step_state,
        started_at = CASE WHEN j.step_state = 'running' THEN now()
                          ELSE job_steps.started_at END,
        finished_at = CASE WHEN j.step_state = 'running' THEN NULL ELSE now() END,
        duration_ms = j.step_ms,
        result = CASE WHEN j.step_state = 'completed' THEN j.step_result::jsonb END,
        attempts = job_steps.attempts + CASE WHEN j.step_state = 'running' THEN 1 ELSE 0 END
    FROM j
    WHERE j.event_kind = 'step' AND job_steps.job_id = j.id AND job_steps.name = j.step_name
)
-- include: events_of_many
SELECT id, seq, owner_id, type, event_kind, event_payload, event_at, notified FROM made

-- name: finishes
-- The ends of running attempts, one a job, in one statement (a worker's jobs that ended
-- while its last statement of reports ran, workers/report_writes.py; or one job's end),
-- each fenced by its attempt: its final status, result, error and message, its open steps
-- closed (close_listed_steps), its webhook scheduled, and its event. As in `reports` and
-- `admin_cancel`, every part after `j` reads `j` alone, which carries each job's running
-- steps as the statement found them (`open_steps`, read once: they number the steps'
-- events and count in the job's seq) and the event's time, taken with the change.
-- $1 ids, $2 attempts, $3 final statuses, $4 results, $5 errors and $7 payloads, each as
-- JSON text (an array of jsonb would take a result that is itself a list for a dimension
-- of the array), $6 messages. The ids are read through a sub-select, as in `reports`: a
-- statement of one end keeps the generic plan, not a plan made again at each run.
WITH j AS (
    UPDATE jobs SET seq = jobs.seq + 1 + cardinality(b.open_steps),
        status = b.status, result = b.result::jsonb, error = b.error::jsonb,
        message = b.message,
        progress = CASE WHEN b.status = 'completed' THEN 100 ELSE jobs.progress END,
        finished_at = now(), heartbeat_at = NULL, updated_at = now()
    FROM (SELECT u.*, ARRAY(SELECT s.position FROM job_steps s
                            WHERE s.job_id = u.id AND s.status = 'running'
                            ORDER BY s.position) AS open_steps
          FROM unnest((SELECT $1::uuid[]), $2::integer[], $3::text[], $4::text[],
                      $5::text[], $6::text[], $7::text[])
              AS u(id, attempt, status, result, error, message, payload)) b
    WHERE jobs.id = b.id AND jobs.attempts = b.attempt
      AND jobs.status IS NOT DISTINCT FROM 'running'
    RETURNING jobs.id, jobs.seq, jobs.owner_id, jobs.type, jobs.status, jobs.progress,
              jobs.callback_url, 'status'::text AS event_kind,
              b.payload::jsonb AS event_payload, clock_timestamp() AS event_at, b.open_steps
)
-- include: close_listed_steps
-- include: webhook
-- include: batch_events

-- name: retry_later
-- $1 id, $2 attempt, $3 delay_s, $4 message, $5 error, $6 payload
WITH j AS (
    UPDATE jobs SET seq = seq + 1, status = 'pending', message = $4, error = $5,
        run_at = now() + $3 * interval '1 second', heartbeat_at = NULL, updated_at = now()
    WHERE id = $1 AND attempts = $2 AND status IS NOT DISTINCT FROM 'running'
    RETURNING *, 'status'::text AS event_kind, $6::jsonb AS event_payload
)
-- include: event_tail
SELECT id, seq, owner_id, type, event_kind, event_payload, event_at, notified FROM made

-- name: hand_back
-- A worker that stops (SIGTERM) hands its attempt back: the job is pending again and
-- the attempt is not counted. $1 id, $2 attempt, $3 message, $4 payload
WITH j AS (
    UPDATE jobs SET seq = seq + 1, status = 'pending', attempts = attempts - 1, message = $3,
        run_at = now(), heartbeat_at = NULL, updated_at = now()
    WHERE id = $1 AND attempts = $2 AND status IS NOT DISTINCT FROM 'running'
    RETURNING *, 'status'::text AS event_kind, $4::jsonb AS event_payload
)
-- include: event_tail
SELECT id, seq, owner_id, type, event_kind, event_payload, event_at, notified FROM made

-- name: heartbeat
-- Beat for running attempts: the ids whose attempt is still running. A worker beats only
-- between its `reports` statements (workers/report_writes.py), so the two never wait on
-- each other. The ids are read through a sub-select, as in `reports`: a worker with one
-- job running beats with one id, and that statement keeps the generic plan too.
-- $1 job ids, $2 their attempts
WITH beat AS (
    SELECT * FROM unnest((SELECT $1::uuid[]), $2::int[]) AS beat(id, attempt)
)
UPDATE jobs SET heartbeat_at = now()
FROM beat
WHERE jobs.id = beat.id AND jobs.attempts = beat.attempt
  AND jobs.status IS NOT DISTINCT FROM 'running'
RETURNING jobs.id


-- durable jobs: checkpoints, a person in the loop, pause, drafts

-- name: resumed
-- An attempt resumes from checkpoints: progress starts at the completed steps' share.
-- $1 id, $2 attempt, $3 progress, $4 step it resumes at, $5 payload
WITH j AS (
    UPDATE jobs SET seq = seq + 1, progress = $3, step = $4, heartbeat_at = now(),
        updated_at = now()
    WHERE id = $1 AND attempts = $2 AND status IS NOT DISTINCT FROM 'running'
    RETURNING *, 'resumed'::text AS event_kind, $5::jsonb AS event_payload
)
-- include: event_tail
SELECT * FROM made

-- name: wait_for_input
-- A step asks a person: the job is waiting, its attempt ends uncounted and nothing holds
-- it (no heartbeat). The question is stored once per step; the event says when it expires.
-- $1 id, $2 attempt, $3 step, $4 prompt, $5 schema, $6 seconds it may wait (NULL: no
-- limit), $7 on_timeout, $8 default answer, $9 payload
WITH q AS (
    INSERT INTO job_inputs (job_id, step, prompt, schema, expires_at, on_timeout,
                            default_answer)
    SELECT id, $3, $4, $5, now() + $6 * interval '1 second', $7, $8 FROM jobs
    WHERE id = $1 AND attempts = $2 AND status IS NOT DISTINCT FROM 'running'
    ON CONFLICT (job_id, step) DO UPDATE SET prompt = EXCLUDED.prompt,
        schema = EXCLUDED.schema, on_timeout = EXCLUDED.on_timeout,
        default_answer = EXCLUDED.default_answer
    WHERE job_inputs.answered_at IS NULL
    RETURNING expires_at
), j AS (
    UPDATE jobs SET seq = seq + 1, status = 'waiting', attempts = attempts - 1, step = $3,
        message = $4, heartbeat_at = NULL, pause_requested = false, updated_at = now()
    FROM q
    WHERE id = $1 AND attempts = $2 AND status IS NOT DISTINCT FROM 'running'
    RETURNING jobs.*, 'input_required'::text AS event_kind,
              $9::jsonb || jsonb_build_object('expires_at', q.expires_at, 'attempt', $2)
              AS event_payload
), s AS (
    -- the step runs again from its start once answered: until then it has not started
    UPDATE job_steps SET status = 'waiting', started_at = NULL, finished_at = NULL,
        duration_ms = NULL
    WHERE job_id = $1 AND name = $3 AND EXISTS (SELECT 1 FROM j)
)
-- include: event_tail
SELECT * FROM made

-- name: answer_input
-- A person (or the time limit, with the default) answers a waiting job's question: the
-- answer is stored once, and the job is pending again, to go on at that step.
-- $1 id, $2 owner id (NULL: the sweep, for an expired question), $3 step, $4 answer,
-- $5 payload
WITH a AS (
    UPDATE job_inputs i SET answer = $4, answered_by = $2, answered_at = now()
    FROM jobs
    WHERE i.job_id = $1 AND i.step = $3 AND i.answered_at IS NULL
      AND jobs.id = $1 AND jobs.status = 'waiting' AND ($2::uuid IS NULL OR jobs.owner_id = $2)
    RETURNING i.step
), j AS (
    UPDATE jobs SET seq = seq + 1, status = 'pending', run_at = now(),
        message = 'Answered; going on at ' || $3, updated_at = now()
    WHERE id = $1 AND status = 'waiting' AND EXISTS (SELECT 1 FROM a)
    RETURNING *, 'input'::text AS event_kind, $5::jsonb AS event_payload
)
-- include: event_tail
SELECT * FROM made

-- name: expired_inputs
-- Waiting jobs whose question's time limit passed, with what to do about it. $1 limit
SELECT i.job_id, i.step, i.on_timeout, i.default_answer, j.owner_id, j.priority
FROM job_inputs i JOIN jobs j ON j.id = i.job_id
WHERE i.answered_at IS NULL AND i.expires_at < now() AND j.status = 'waiting'
ORDER BY i.expires_at LIMIT $1

-- name: fail_waiting
-- A waiting job's question went unanswered past its time limit: the job fails.
-- $1 id, $2 error, $3 message, $4 payload
-- include: open_steps
      AND s.job_id = $1
-- include: close_jobs
        status = 'failed', error = $2, message = $3,
        finished_at = now(), updated_at = now()
    WHERE id = $1 AND status = 'waiting'
    RETURNING *, 'status'::text AS event_kind, $4::jsonb AS event_payload
)
-- include: close_steps
-- include: webhook
-- include: event_tail
SELECT * FROM made

-- name: pause_pending
-- The owner pauses a job that has not started: paused at once. $1 id, $2 owner id,
-- $3 payload
WITH j AS (
    -- a debounced job that is paused takes no more submits: they make a new job
    UPDATE jobs SET seq = seq + 1, status = 'paused', message = 'Paused', debounce_key = NULL,
        updated_at = now()
    WHERE id = $1 AND owner_id = $2 AND status IS NOT DISTINCT FROM 'pending'
    RETURNING *, 'status'::text AS event_kind,
              $3::jsonb || jsonb_build_object('attempt', attempts) AS event_payload
)
-- include: event_tail
SELECT * FROM made

-- name: request_pause
-- The owner pauses a running job: it stops at its next step boundary (no event until
-- then). $1 id, $2 owner id
UPDATE jobs SET pause_requested = true, updated_at = now()
WHERE id = $1 AND owner_id = $2 AND status IS NOT DISTINCT FROM 'running'
RETURNING id

-- name: pause_at_boundary
-- A running job whose owner asked for a pause reaches a step boundary: it is paused, its
-- attempt ends uncounted. $1 id, $2 attempt, $3 payload
WITH j AS (
    UPDATE jobs SET seq = seq + 1, status = 'paused', attempts = attempts - 1,
        pause_requested = false, message = 'Paused', heartbeat_at = NULL, updated_at = now()
    WHERE id = $1 AND attempts = $2 AND status IS NOT DISTINCT FROM 'running' AND pause_requested
    RETURNING *, 'status'::text AS event_kind,
              $3::jsonb || jsonb_build_object('attempt', attempts) AS event_payload
)
-- include: event_tail
SELECT * FROM made

-- name: resume
-- The owner resumes a paused job: pending again, to resume from its checkpoints.
-- $1 id, $2 owner id, $3 payload
WITH j AS (
    UPDATE jobs SET seq = seq + 1, status = 'pending', run_at = now(), message = 'Resumed',
        updated_at = now()
    WHERE id = $1 AND owner_id = $2 AND status = 'paused'
    RETURNING *, 'status'::text AS event_kind,
              $3::jsonb || jsonb_build_object('attempt', attempts) AS event_payload
)
-- include: event_tail
SELECT * FROM made

-- name: withdraw_pause
-- The owner resumes a running job before it reached the boundary it was to pause at.
-- $1 id, $2 owner id
UPDATE jobs SET pause_requested = false, updated_at = now()
WHERE id = $1 AND owner_id = $2 AND status IS NOT DISTINCT FROM 'running' AND pause_requested
RETURNING id

-- name: edit_draft
-- The owner replaces a draft's input (checked by its type first).
-- $1 id, $2 owner id, $3 input, $4 estimated_s, $5 payload
WITH j AS (
    UPDATE jobs SET seq = seq + 1, input = $3, estimated_s = $4, message = 'Input changed',
        updated_at = now()
    WHERE id = $1 AND owner_id = $2 AND status = 'draft'
    RETURNING *, 'status'::text AS event_kind, $5::jsonb AS event_payload
)
-- include: event_tail
SELECT * FROM made

-- name: start_draft
-- The owner starts a draft: pending, to run now, unless the owner is at the cap on active
-- jobs. $1 id, $2 owner id, $3 the cap (NULL: none), $4 payload
WITH j AS (
    UPDATE jobs SET seq = seq + 1, status = 'pending', run_at = now(), message = NULL,
        updated_at = now()
    WHERE id = $1 AND owner_id = $2 AND status = 'draft'
      AND ($3::bigint IS NULL OR jobcast_active_jobs($2) < $3)
    RETURNING *, 'status'::text AS event_kind, $4::jsonb AS event_payload
)
-- include: event_tail
SELECT * FROM made


-- webhook deliveries

-- name: claim_deliveries
-- Webhook tries that are due, each claimed by this worker alone until the claim passes
-- (rows another worker is claiming are skipped; a claimed row is not due), with what they
-- need to be sent. $1 limit, $2 seconds the claim lasts
WITH due AS (
    SELECT job_id, attempt FROM webhook_deliveries
    WHERE status = 'pending' AND next_at <= now()
      AND (claimed_until IS NULL OR claimed_until < now())
    ORDER BY next_at LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_deliveries d SET claimed_until = now() + $2 * interval '1 second'
FROM due, jobs j, owners o
WHERE d.job_id = due.job_id AND d.attempt = due.attempt AND j.id = d.job_id
  AND o.id = j.owner_id
RETURNING d.job_id, d.attempt, d.url, j.owner_id, o.webhook_secret

-- name: record_delivery
-- The outcome of one try. $1 job id, $2 attempt, $3 status, $4 status_code, $5 error
UPDATE webhook_deliveries SET status = $3, status_code = $4, error = $5, tried_at = now(),
    delivered_at = CASE WHEN $3 = 'delivered' THEN now() END
WHERE job_id = $1 AND attempt = $2

-- name: next_delivery
-- The next try after a failed one. $1 job id, $2 attempt, $3 seconds from now
INSERT INTO webhook_deliveries (job_id, attempt, url, next_at)
SELECT job_id, $2, url, now() + $3 * interval '1 second' FROM webhook_deliveries
WHERE job_id = $1 AND attempt = $2 - 1
ON CONFLICT DO NOTHING


-- the sweep

-- name: take_lease
-- The lease is taken when free, expired, or ours. $1 lease name, $2 holder, $3 seconds
INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, now() + $3 * interval '1 second')
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE leases.expires_at < now() OR leases.holder = EXCLUDED.holder
RETURNING holder

-- name: stale_running
-- Running jobs whose worker has not beaten for a while.
-- $1 seconds without a heartbeat, $2 limit
SELECT id, owner_id, attempts, max_attempts, priority FROM jobs
WHERE status = 'running' AND heartbeat_at < now() - $1 * interval '1 second'
ORDER BY heartbeat_at LIMIT $2

-- name: pending
-- Pending jobs unchanged for a while, which should be on the queue (not those of a paused
-- type: resuming it queues them; nor parked ones: a freed slot or the sweep releases them). $1 seconds since the last change, $2 limit
SELECT id, priority, GREATEST(0, extract(epoch FROM run_at - now()))::float8 AS delay_s
FROM jobs
WHERE status = 'pending' AND updated_at < now() - $1 * interval '1 second'
  AND parked_on IS NULL
  AND NOT EXISTS (SELECT 1 FROM paused_types p WHERE p.type = jobs.type)
ORDER BY run_at LIMIT $2

-- name: past_pending_limit
-- Due jobs that have waited for a worker slot longer than their type's pending limit, the
-- longest first: not those not yet due (their wait counts from run_at), nor those of a
-- paused type, nor those already marked stuck in this wait. $1 types, $2 their limits in
-- seconds, $3 limit
SELECT j.id, j.type, extract(epoch FROM now() - j.run_at)::float8 AS waited_s,
       t.limit_s
FROM jobs j JOIN unnest($1::text[], $2::float8[]) AS t(type, limit_s) ON t.type = j.type
WHERE j.status = 'pending' AND j.run_at < now() - t.limit_s * interval '1 second'
  AND (j.stuck_since IS NULL OR j.stuck_since < j.run_at)
  AND NOT EXISTS (SELECT 1 FROM paused_types p WHERE p.type = j.type)
ORDER BY j.run_at LIMIT $3

-- name: fail_pending
-- A job waited for a worker slot past its type's pending limit: it fails, fenced by the same
-- conditions (still pending, still past the limit, its type not paused). A step its lost
-- worker left running is closed as failed. $1 id, $2 limit seconds, $3 error, $4 message,
-- $5 payload
WITH o AS (
    -- the job's open steps (close_steps)
    SELECT s.job_id, s.position FROM job_steps s WHERE s.job_id = $1 AND s.status = 'running'
), j AS (
    UPDATE jobs SET seq = seq + 1 + (SELECT count(*) FROM o WHERE o.job_id = jobs.id),
        status = 'failed', error = $3, message = $4, finished_at = now(), updated_at = now()
    WHERE id = $1 AND status IS NOT DISTINCT FROM 'pending'
      AND run_at < now() - $2 * interval '1 second'
      AND NOT EXISTS (SELECT 1 FROM paused_types p WHERE p.type = jobs.type)
    RETURNING *, 'status'::text AS event_kind,
              $5::jsonb || jsonb_build_object('attempt', attempts) AS event_payload
)
-- include: close_steps
-- include: webhook
-- include: event_tail
SELECT * FROM made

-- name: mark_stuck
-- A job waited for a worker slot past its type's pending limit, and its type reports it:
-- marked stuck once in this wait, with an event that says so. $1 id, $2 limit seconds,
-- $3 message, $4 payload
WITH j AS (
    UPDATE jobs SET seq = seq + 1, stuck_since = now(), message = $3, updated_at = now()
    WHERE id = $1 AND status IS NOT DISTINCT FROM 'pending'
      AND run_at < now() - $2 * interval '1 second'
      AND (stuck_since IS NULL OR stuck_since < run_at)
      AND NOT EXISTS (SELECT 1 FROM paused_types p WHERE p.type = jobs.type)
    RETURNING *, 'status'::text AS event_kind,
              $4::jsonb || jsonb_build_object('attempt', attempts, 'stuck_since', stuck_since)
              AS event_payload
)
-- include: event_tail
SELECT * FROM made

-- name: priorities
-- The priorities of those of these jobs still pending. $1 job ids
SELECT id, priority FROM jobs WHERE id = ANY($1::uuid[]) AND status IS NOT DISTINCT FROM 'pending'

-- name: expire_results
-- Drop the results past their type's time to live, of the jobs that finished since the
-- type's last pass. $1 types, $2 their result_ttl_s, $3 where each type's last pass
-- stopped (NULL: none here yet, so from the first job). Each type's cutoff (where its next
-- pass starts) and the results dropped in all.
-- A pass reads, in each type's index of completed jobs, the jobs finished since the last:
-- joined to the types as one, Postgres read every job to hash them once it had statistics,
-- and a pass from the first job on would read again at every sweep the results it had
-- already dropped (kept until retention deletes their jobs).
WITH t AS (
    SELECT t.type, t.since, now() - t.ttl_s * interval '1 second' AS cutoff
    FROM unnest($1::text[], $2::float8[], $3::timestamptz[]) AS t(type, ttl_s, since)
), expired AS (
    UPDATE jobs SET result = NULL, result_expired_at = now()
    WHERE id = ANY (ARRAY(
        SELECT e.id FROM t CROSS JOIN LATERAL (
            SELECT j.id FROM jobs j
            WHERE j.type = t.type AND j.status = 'completed' AND j.result_expired_at IS NULL
              AND j.finished_at < t.cutoff AND j.finished_at >= COALESCE(t.since, '-infinity')
            OFFSET 0  -- a scan of the index for each type, not one join of all jobs
        ) AS e
    ))
    RETURNING 1
)
SELECT t.type, t.cutoff, (SELECT count(*) FROM expired) AS expired FROM t

-- name: retention
-- Delete finished jobs past their retention. $1 completed days, $2 failed days,
-- $3 cancelled days
DELETE FROM jobs WHERE finished_at IS NOT NULL AND (
       (status = 'completed' AND finished_at < now() - $1 * interval '1 day')
    OR (status = 'failed' AND finished_at < now() - $2 * interval '1 day')
    OR (status = 'cancelled' AND finished_at < now() - $3 * interval '1 day'))


-- stats

-- name: counts
-- Jobs by type and status.
SELECT type, status, count(*)::int AS n FROM jobs GROUP BY type, status

-- name: live_counts
-- Jobs not finished (pending, running, waiting, paused, draft) by type and status, through
-- jobs_unfinished_idx: what the console shows, without a pass over the finished jobs.
SELECT type, status, count(*)::int AS n FROM jobs WHERE finished_at IS NULL
GROUP BY type, status

-- name: active_by_type
-- Pending and running jobs by type.
SELECT type, status, count(*)::int AS n FROM jobs
WHERE status IN ('pending', 'running') GROUP BY type, status

-- name: oldest_pending
-- The wait in seconds of the longest-waiting job that is due to run (a paused type's jobs
-- wait on purpose: they are left out).
SELECT COALESCE(extract(epoch FROM now() - min(run_at)), 0)::float8 FROM jobs
WHERE status = 'pending' AND run_at <= now()
  AND NOT EXISTS (SELECT 1 FROM paused_types p WHERE p.type = jobs.type)

-- name: stuck_pending
-- Pending jobs marked stuck in their current wait (past their type's pending limit), by
-- type; a paused type's jobs wait on purpose and are left out.
SELECT type, count(*)::int AS n FROM jobs
WHERE status = 'pending' AND stuck_since >= run_at
  AND NOT EXISTS (SELECT 1 FROM paused_types p WHERE p.type = jobs.type)
GROUP BY type

-- name: stuck
-- Running jobs whose worker has not beaten for a while. $1 seconds without a heartbeat
SELECT count(*)::int FROM jobs
WHERE status = 'running' AND heartbeat_at < now() - $1 * interval '1 second'

-- name: type_windows
-- Per type, over two windows that end now ($1 and $2 seconds, the first the shorter): jobs
-- finished and failed, and the p50 and p95 run time of those completed. One pass over the
-- jobs that finished within the longer window, found through jobs_finished_idx: a console
-- asks for these every few seconds, and its cost stays that of a day's jobs, not of
-- everything retention keeps (a finished job is completed, failed or cancelled).
SELECT type,
       count(*) FILTER (WHERE short)::int AS short_finished,
       count(*) FILTER (WHERE short AND status = 'failed')::int AS short_failed,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY run_s)
           FILTER (WHERE short AND status = 'completed') AS short_p50_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY run_s)
           FILTER (WHERE short AND status = 'completed') AS short_p95_s,
       count(*)::int AS long_finished,
       count(*) FILTER (WHERE status = 'failed')::int AS long_failed,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY run_s)
           FILTER (WHERE status = 'completed') AS long_p50_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY run_s)
           FILTER (WHERE status = 'completed') AS long_p95_s
FROM (SELECT type, status, extract(epoch FROM finished_at - started_at) AS run_s,
             finished_at > now() - $1 * interval '1 second' AS short
      FROM jobs
      WHERE status IN ('completed', 'failed', 'cancelled')
        AND finished_at > now() - $2 * interval '1 second') finished
GROUP BY type ORDER BY type

-- name: step_history
-- Inputs, bytes uploaded and step durations of a type's last completed jobs (the ETA's
-- sample). $1 type, $2 how many recent jobs
SELECT j.input, s.name, s.duration_ms,
       (SELECT COALESCE(sum(u.size), 0) FROM uploads u WHERE u.job_id = j.id)::bigint
           AS upload_bytes
FROM (SELECT id, input FROM jobs WHERE type = $1 AND status = 'completed'
      ORDER BY finished_at DESC LIMIT $2) j
JOIN job_steps s ON s.job_id = j.id
WHERE s.status = 'completed'


-- connections

-- name: ping
-- Is Postgres there?
SELECT 1

-- name: rollback
-- A pooled connection given back inside a transaction.
ROLLBACK

-- name: schema_lock
-- One lock while schema.sql is applied, so two processes starting together do not race;
-- held by the transaction, not the session, so that behind PgBouncer in transaction
-- mode it is released with the transaction instead of staying on a server connection.
SELECT pg_advisory_xact_lock(7213400)

-- name: want_notify
-- This server process wants NOTIFYs for a while (renewed while its pub/sub is down), and
-- reads the events they carry; long-expired requests of processes that died are dropped.
-- $1 holder, $2 seconds
WITH gone AS (DELETE FROM fallback_listeners WHERE expires_at < now() - interval '1 minute')
INSERT INTO fallback_listeners (holder, expires_at, reads_events)
VALUES ($1, now() + $2 * interval '1 second', true)
ON CONFLICT (holder) DO UPDATE SET expires_at = EXCLUDED.expires_at, reads_events = true

-- name: stop_notify
-- This server process's pub/sub is back. $1 holder
DELETE FROM fallback_listeners WHERE holder = $1


-- live data: steps added at run time, metadata, streams

-- name: add_run_step
-- Job code adds a step while it runs (one per item found): a row after every other step,
-- and a step event. The same name added again (a later attempt runs the code again) starts
-- that step afresh; a declared step's name is refused by the caller.
-- $1 id, $2 attempt, $3 name, $4 title, $5 parent (the declared step), $6 share of its
-- weight, $7 weight, $8 counters, $9 metadata, $10 payload
WITH j AS (
    UPDATE jobs SET seq = seq + 1, heartbeat_at = now(), updated_at = now()
    WHERE id = $1 AND attempts = $2 AND status IS NOT DISTINCT FROM 'running'
    RETURNING id, seq, owner_id, type, 'step'::text AS event_kind, $10::jsonb AS event_payload
), s AS (
    INSERT INTO job_steps AS s (job_id, position, name, title, weight, parent, share, counters,
                                metadata)
    SELECT j.id, (SELECT COALESCE(max(position), 0) + 1 FROM job_steps WHERE job_id = $1),
           $3, $4, $7, $5, $6, $8, $9
    FROM j
    ON CONFLICT (job_id, name) DO UPDATE SET title = EXCLUDED.title, weight = EXCLUDED.weight,
        parent = EXCLUDED.parent, share = EXCLUDED.share, counters = EXCLUDED.counters,
        metadata = EXCLUDED.metadata, error = NULL, status = 'waiting', started_at = NULL,
        finished_at = NULL, duration_ms = NULL
    WHERE s.parent IS NOT NULL
)
-- include: event_tail
SELECT * FROM made

-- name: update_run_step
-- A step added at run time starts, counts, gains metadata, completes or fails (with its own
-- error, while the job goes on). NULL leaves a field as it is; metadata keys are merged.
-- $1 id, $2 attempt, $3 name, $4 new state or NULL, $5 overall progress, $6 counters or
-- NULL, $7 metadata keys or NULL, $8 error (when it fails), $9 duration_ms, $10 payload
WITH j AS (
    UPDATE jobs SET seq = seq + 1, progress = $5, heartbeat_at = now(), updated_at = now()
    WHERE id = $1 AND attempts = $2 AND status IS NOT DISTINCT FROM 'running'
    RETURNING id, seq, owner_id, type, 'step'::text AS event_kind, $10::jsonb AS event_payload
), s AS (
    UPDATE job_steps SET status = COALESCE($4, status),
        started_at = CASE WHEN $4 = 'running' THEN now() ELSE started_at END,
        finished_at = CASE WHEN $4 = 'running' THEN NULL
                           WHEN $4 IN ('completed', 'failed') THEN now() ELSE finished_at END,
        duration_ms = COALESCE($9, duration_ms),
        attempts = attempts + CASE WHEN $4 = 'running' THEN 1 ELSE 0 END,
        counters = COALESCE($6::jsonb, counters),
        metadata = CASE WHEN $7::jsonb IS NULL THEN metadata
                        ELSE COALESCE(metadata, '{}'::jsonb) || $7::jsonb END,
        error = CASE WHEN $4 = 'failed' THEN $8::jsonb WHEN $4 = 'running' THEN NULL
                     ELSE error END
    WHERE job_id = $1 AND name = $3 AND parent IS NOT NULL AND EXISTS (SELECT 1 FROM j)
)
-- include: event_tail
SELECT * FROM made

-- name: set_metadata
-- Merge keys into a job's metadata, within the cap, and say so in a metadata event. The
-- job's own running attempt sets its own; a child sets its parent's while that is not
-- finished. $1 the job setting it, $2 its attempt, $3 whether it sets its parent's,
-- $4 keys, $5 cap in bytes of the merged JSON, $6 payload
WITH j AS (
    UPDATE jobs SET seq = seq + 1, metadata = metadata || $4::jsonb, updated_at = now()
    WHERE octet_length((metadata || $4::jsonb)::text) <= $5
      AND CASE WHEN $3 THEN id = (SELECT c.parent_id FROM jobs c
                                  WHERE c.id = $1 AND c.attempts = $2
                                    AND c.status IS NOT DISTINCT FROM 'running')
                            AND status NOT IN ('completed', 'failed', 'cancelled')
               ELSE id = $1 AND attempts = $2 AND status IS NOT DISTINCT FROM 'running' END
    RETURNING id, seq, owner_id, type, 'metadata'::text AS event_kind, $6::jsonb AS event_payload
)
-- include: event_tail
SELECT * FROM made

-- name: metadata_size
-- Why a metadata write was refused: the size the merge would have, of the job or of its
-- parent. $1 job id, $2 whether its parent's, $3 keys
SELECT octet_length((metadata || $3::jsonb)::text) AS size FROM jobs
WHERE id = CASE WHEN $2 THEN (SELECT parent_id FROM jobs WHERE id = $1) ELSE $1 END

-- name: append_stream
-- A flush of a stream's buffer: the text joins the stream (within its cap) and is its
-- stream event, with the offset of its first character. The job's row is locked first,
-- so a fenced-off attempt moves neither the stream's length nor the job's seq.
-- $1 id, $2 attempt, $3 stream name, $4 text, $5 the stream's cap in characters
WITH l AS (
    SELECT id FROM jobs
    WHERE id = $1 AND attempts = $2 AND status IS NOT DISTINCT FROM 'running' FOR UPDATE
), s AS (
    INSERT INTO job_streams AS s (job_id, name, length)
    SELECT l.id, $3, length($4) FROM l WHERE length($4) <= $5
    ON CONFLICT (job_id, name) DO UPDATE SET length = s.length + EXCLUDED.length,
        updated_at = now()
    WHERE s.length + EXCLUDED.length <= $5
    RETURNING s.length - length($4) AS start
), j AS (
    UPDATE jobs SET seq = seq + 1, heartbeat_at = now(), updated_at = now()
    WHERE id IN (SELECT id FROM l) AND EXISTS (SELECT 1 FROM s)
    RETURNING id, seq, owner_id, type, 'stream'::text AS event_kind,
              jsonb_build_object('name', $3::text, 'offset', (SELECT start FROM s),
                                 'text', $4::text) AS event_payload
)
-- include: event_tail
SELECT * FROM made

-- name: stream_length
-- Why a flush was refused: the stream's length now (NULL: none yet), and whether the
-- attempt still runs. $1 id, $2 attempt, $3 stream name
SELECT (SELECT length FROM job_streams WHERE job_id = $1 AND name = $3) AS length,
       EXISTS (SELECT 1 FROM jobs
               WHERE id = $1 AND attempts = $2 AND status IS NOT DISTINCT FROM 'running')
       AS running


-- app keys and the scope of browser tokens

-- name: create_app_key
-- A key and the owner its jobs belong to (no token opens that owner), in one statement.
-- $1 key id, $2 name, $3 owner id, $4 key hash, $5 signing secret, $6 random owner token
-- hash, $7 the owner's webhook secret
WITH o AS (
    INSERT INTO owners (id, token_hash, webhook_secret) VALUES ($3, $6, $7)
)
INSERT INTO app_keys (id, name, owner_id, key_hash, signing_secret)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, name, owner_id, created_at, revoked_at

-- name: app_key_for_hash
-- The key a bearer key hashes to, revoked or not. $1 key hash
SELECT id, name, owner_id, signing_secret, created_at, revoked_at FROM app_keys
WHERE key_hash = $1

-- name: app_key_by_id
-- A key by its id (a token's kid), revoked or not. $1 key id
SELECT id, name, owner_id, signing_secret, created_at, revoked_at FROM app_keys WHERE id = $1

-- name: list_app_keys
-- Every key, oldest first, without secrets.
SELECT id, name, owner_id, '' AS signing_secret, created_at, revoked_at FROM app_keys
ORDER BY created_at, id

-- name: revoke_app_key
-- Revoke a key (once: revoking it again keeps the first time); the key, or no row.
-- $1 key id
UPDATE app_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1
RETURNING id, name, owner_id, '' AS signing_secret, created_at, revoked_at

-- name: job_scope
-- What a browser token's scope is checked against: a job's subject, tenant and tags.
-- $1 job id, $2 owner id
SELECT subject, tenant, tags FROM jobs WHERE id = $1 AND owner_id = $2


-- admin: search every owner's jobs, act on many at once, pause a type's queue

-- part: admin_filter
-- The admin's filter over jobs j, every clause off when its parameter is NULL:
-- $1 owner id, $2 status, $3 type, $4 tag, $5 tenant, $6 subject, $7 error class,
-- $8 created at or after, $9 created before, $10 text in the error's message
    ($1::uuid IS NULL OR j.owner_id = $1) AND ($2::text IS NULL OR j.status = $2)
AND ($3::text IS NULL OR j.type = $3) AND ($4::text IS NULL OR j.tags @> ARRAY[$4::text])
AND ($5::text IS NULL OR j.tenant = $5) AND ($6::text IS NULL OR j.subject = $6)
AND ($7::text IS NULL OR j.error ->> 'type' = $7)
AND ($8::timestamptz IS NULL OR j.created_at >= $8)
AND ($9::timestamptz IS NULL OR j.created_at < $9)
AND ($10::text IS NULL OR strpos(lower(j.error ->> 'message'), lower($10)) > 0)

-- name: admin_jobs
-- Any owner's jobs the filter matches, newest first, after a cursor.
-- $1 owner id, $2 status, $3 type, $4 tag, $5 tenant, $6 subject, $7 error class,
-- $8 created at or after, $9 created before, $10 text in the error (each NULL: any),
-- $11 the cursor's created_at and $12 its id (NULL: from the newest), $13 limit
SELECT
-- include: job_columns
,
-- include: steps_json
FROM jobs j
WHERE
-- include: admin_filter
  AND ($11::timestamptz IS NULL OR (j.created_at, j.id) < ($11, $12::uuid))
ORDER BY j.created_at DESC, j.id DESC
LIMIT $13

-- name: admin_count
-- How many jobs the filter matches among those in the statuses an action applies to.
-- $1 owner id, $2 status, $3 type, $4 tag, $5 tenant, $6 subject, $7 error class,
-- $8 created at or after, $9 created before, $10 text in the error, $11 action statuses
SELECT count(*)::int FROM jobs j
WHERE
-- include: admin_filter
  AND j.status = ANY($11::text[])

-- name: admin_batch
-- The next batch of ids the filter matches among the action's statuses, by id.
-- $1 owner id, $2 status, $3 type, $4 tag, $5 tenant, $6 subject, $7 error class,
-- $8 created at or after, $9 created before, $10 text in the error, $11 action statuses,
-- $12 the last id of the batch before (NULL: from the start), $13 batch size
SELECT j.id FROM jobs j
WHERE
-- include: admin_filter
  AND j.status = ANY($11::text[]) AND ($12::uuid IS NULL OR j.id > $12)
ORDER BY j.id
LIMIT $13

-- name: admin_cancel
-- Cancel a batch of unfinished jobs and every unfinished descendant of them (as cancelling
-- one job cancels its children) in one statement: all of them or, on a crash, none. A
-- finished job in the batch keeps its children as they are. Each job's open steps (a step
-- running, or the step a waiting job asked from) are closed as close_steps closes one
-- job's, with their `step` events. Every part reads the changed jobs `j` alone, which
-- carry their open steps as the statement found them (`was`, read once: they number the
-- steps' events and count in the job's seq):
-- a join of two parts would be planned as a loop over one for each row of the other,
-- which for a batch of 500 jobs was 250,000 rows read.
-- $1 ids, $2 event payload, $3 a descendant's event payload
WITH RECURSIVE t AS (
    SELECT id FROM jobs
    WHERE id = ANY($1::uuid[]) AND status IN ('pending', 'running', 'waiting', 'paused', 'draft')
    UNION
    SELECT c.id FROM jobs c JOIN t ON c.parent_id = t.id
), j AS (
    UPDATE jobs SET seq = jobs.seq + 1 + cardinality(was.open_steps),
        status = 'cancelled',
        message = CASE WHEN jobs.id = ANY($1::uuid[]) THEN 'Cancelled'
                       ELSE $3::jsonb ->> 'message' END,
        finished_at = now(), heartbeat_at = NULL, pause_requested = false, updated_at = now()
    FROM (SELECT b.id, ARRAY(SELECT s.position FROM job_steps s WHERE s.job_id = b.id
                             AND (s.status = 'running'
                                  OR (b.status = 'waiting' AND s.name = b.step))
                             ORDER BY s.position) AS open_steps
          FROM jobs b WHERE b.id IN (SELECT id FROM t)) was
    WHERE jobs.id = was.id
      AND jobs.status IN ('pending', 'running', 'waiting', 'paused', 'draft')
    RETURNING jobs.*, 'status'::text AS event_kind,
              CASE WHEN jobs.id = ANY($1::uuid[]) THEN $2::jsonb ELSE $3::jsonb END
              || jsonb_build_object('attempt', jobs.attempts) AS event_payload,
              clock_timestamp() AS event_at, was.open_steps
)
-- include: close_listed_steps
-- include: webhook
-- include: batch_events

-- part: close_listed_steps
-- A final change `j` of many jobs closes each job's open steps, listed in `j.open_steps` as
-- the statement found them (a step running, or the step a waiting job asked from; `j`
-- counted them in its seq): each ends as its job did (cancelled; failed when the job
-- completed or failed) with its duration, and gets its `step` event, numbered from the
-- list, just before the job's own, in step order. A step another statement ended
-- meanwhile keeps its state (its event then repeats it). Driven by the lists in `j`
-- alone: a join of two parts would be planned as a loop over one for each row of the
-- other.
, c AS (
    UPDATE job_steps s SET
        status = CASE WHEN s.status IN ('completed', 'failed', 'cancelled') THEN s.status
                      WHEN o.status = 'cancelled' THEN 'cancelled' ELSE 'failed' END,
        finished_at = CASE WHEN s.status IN ('running', 'waiting') THEN now()
                           ELSE s.finished_at END,
        duration_ms = CASE WHEN s.status = 'running'
                           THEN (extract(epoch FROM now() - s.started_at) * 1000)::integer
                           ELSE s.duration_ms END
    FROM (SELECT j.id, j.seq, j.status, j.progress, o.position, o.n,
                 cardinality(j.open_steps) AS open
          FROM j, unnest(j.open_steps) WITH ORDINALITY AS o(position, n)) o
    WHERE s.job_id = o.id AND s.position = o.position
    RETURNING s.job_id, o.seq - o.open - 1 + o.n AS seq, s.name, s.status, s.duration_ms,
              o.progress
), ce AS (
    INSERT INTO job_events (job_id, seq, kind, payload)
    SELECT c.job_id, c.seq, 'step',
           jsonb_strip_nulls(jsonb_build_object('step', c.name, 'state', c.status,
                                                'duration_ms', c.duration_ms,
                                                'progress', c.progress))
    FROM c
)

-- part: events_of_many
-- The events of a change `j` of many jobs, one a job (its time `j.event_at`, taken with
-- the change: what comes after reads `j` alone, not `j` joined to the inserted events),
-- and `made`, the changed jobs with their event, announced.
, e AS (
    INSERT INTO job_events (job_id, seq, kind, payload, at)
    SELECT j.id, j.seq, j.event_kind, j.event_payload, j.event_at FROM j
), made AS (
    SELECT j.*,
-- include: notify
    FROM j
)

-- part: batch_events
-- The answer of a batch change `j`: the changed jobs with their events.
-- include: events_of_many
SELECT * FROM made

-- name: admin_retry
-- Retry a batch of failed or cancelled jobs, each once (a job with a retry already has
-- its retry): a new pending job per job, with its input, settings and declared steps,
-- and its first event. $1 ids, $2 event payload
WITH j AS (
    INSERT INTO jobs (id, owner_id, type, input, priority, max_attempts, estimated_s, seq,
                      timeout_s, callback_url, message, retry_of, subject, tenant, tags,
                      metadata)
    SELECT gen_random_uuid(), o.owner_id, o.type, o.input, o.priority, o.max_attempts,
           o.estimated_s, 1, o.timeout_s, o.callback_url, 'Queued', o.id, o.subject, o.tenant,
           o.tags, o.metadata
    FROM jobs o
    WHERE o.id = ANY($1::uuid[]) AND o.status IN ('failed', 'cancelled')
      AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.retry_of = o.id)
    RETURNING *, 'status'::text AS event_kind, $2::jsonb AS event_payload,
              clock_timestamp() AS event_at
), s AS (
    INSERT INTO job_steps (job_id, position, name, title, weight)
    SELECT j.id, st.position, st.name, st.title, st.weight
    FROM j JOIN job_steps st ON st.job_id = j.retry_of AND st.parent IS NULL
)
-- include: batch_events

-- name: admin_delete
-- Delete a batch of finished jobs with their steps and events. $1 ids
DELETE FROM jobs WHERE id = ANY($1::uuid[]) AND status IN ('completed', 'failed', 'cancelled')

-- name: start_action
-- Log a bulk action as it starts. $1 id, $2 action, $3 actor, $4 ids or filter, $5 matched
INSERT INTO admin_actions (id, action, actor, target, matched) VALUES ($1, $2, $3, $4, $5)

-- name: action_progress
-- How far a bulk action got; finished when it is done. $1 id, $2 jobs done, $3 finished
UPDATE admin_actions SET done = $2, finished_at = CASE WHEN $3 THEN now() END WHERE id = $1

-- name: job_claims
-- Who claimed each attempt of a job, in order (the console's timeline). $1 job id
SELECT attempt, worker, claimed_at FROM job_claims WHERE job_id = $1 ORDER BY claimed_at

-- name: job_checkpoints
-- A job's checkpoints: its completed top-level steps with the result each stored, which
-- later attempts skip, in step order. $1 job id
SELECT name, title, result, finished_at, duration_ms, attempts FROM job_steps
WHERE job_id = $1 AND status = 'completed' AND parent IS NULL ORDER BY position

-- name: recent_actions
-- The latest bulk actions, newest first. $1 limit
SELECT id, action, actor, target, matched, done, started_at, finished_at FROM admin_actions
ORDER BY started_at DESC LIMIT $1

-- name: pause_type
-- Pause a type's queue (pausing it again keeps the first time). $1 type, $2 who paused it
INSERT INTO paused_types (type, paused_by) VALUES ($1, $2) ON CONFLICT (type) DO NOTHING

-- name: resume_type
-- Resume a type's queue; its pending jobs, to queue again. Those that were due are due from
-- now: the time their type was paused is not time spent waiting for a worker slot (the
-- pending limit counts from run_at). $1 type
WITH gone AS (DELETE FROM paused_types WHERE type = $1), due AS (
    UPDATE jobs SET run_at = now() WHERE type = $1 AND status = 'pending' AND run_at < now()
)
SELECT id, priority, GREATEST(0, extract(epoch FROM run_at - now()))::float8 AS delay_s
FROM jobs WHERE type = $1 AND status = 'pending'

-- name: paused_types
-- The paused types, with since when and by whom.
SELECT type, paused_at, paused_by FROM paused_types ORDER BY type

-- name: status_changes
-- Status changes of any job after a time, oldest first (the admin feed, and its resume).
-- $1 after this time, $2 limit
SELECT e.job_id, e.seq, e.payload ->> 'status' AS status, j.type, e.at
FROM job_events e JOIN jobs j ON j.id = e.job_id
WHERE e.kind = 'status' AND e.at > $1
ORDER BY e.at LIMIT $2

-- name: find_jobs
-- A page of an owner's jobs, newest first, by the list's filters and within a browser
-- token's scope (NULLs: no filter). $1 owner id, $2 status, $3 type, $4 tag, $5 subject,
-- $6 tenant, $7 created at or after, $8 and $9 the cursor (created_at and id of the last
-- job of the page before), $10 limit, $11 scope's job ids, $12 scope's tags (one of them),
-- $13 scope's subject, $14 scope's tenant
SELECT
-- include: job_columns
,
-- include: steps_json
FROM jobs j
WHERE j.owner_id = $1
  AND ($2::text IS NULL OR j.status = $2) AND ($3::text IS NULL OR j.type = $3)
  AND ($4::text IS NULL OR j.tags @> ARRAY[$4::text])
  AND ($5::text IS NULL OR j.subject = $5) AND ($6::text IS NULL OR j.tenant = $6)
  AND ($7::timestamptz IS NULL OR j.created_at >= $7)
  AND ($8::timestamptz IS NULL OR (j.created_at, j.id) < ($8, $9::uuid))
  AND ($11::uuid[] IS NULL OR j.id = ANY($11::uuid[]))
  AND ($12::text[] IS NULL OR j.tags && $12::text[])
  AND ($13::text IS NULL OR j.subject = $13) AND ($14::text IS NULL OR j.tenant = $14)
ORDER BY j.created_at DESC, j.id DESC
LIMIT $10


-- batches

-- name: create_batch
-- $1 batch id, $2 owner id, $3 job ids in the order given
INSERT INTO batches (id, owner_id, job_ids) VALUES ($1, $2, $3)

-- name: batch_jobs
-- A batch's jobs in the order given, each as it stands (a job deleted since: NULL columns
-- but its id). $1 batch id, $2 owner id
SELECT t.job_id AS id, j.type, j.status, j.progress, j.step, j.message, j.error, j.seq
FROM batches b
CROSS JOIN LATERAL unnest(b.job_ids) WITH ORDINALITY AS t(job_id, n)
LEFT JOIN jobs j ON j.id = t.job_id
WHERE b.id = $1 AND b.owner_id = $2
ORDER BY t.n

-- name: series_jobs
-- Per time bucket and type (and, with type NULL, for all types): jobs finished and
-- failed, and the p50 and p95 run time (start to end) and wait (submit to first start).
-- The jobs that finished within the window, found through jobs_finished_idx (a finished job
-- is completed, failed or cancelled), not all that retention keeps.
-- $1 seconds of history, $2 bucket seconds
SELECT date_bin($2 * interval '1 second', finished_at, timestamptz 'epoch') AS t, type,
       count(*)::int AS finished, count(*) FILTER (WHERE status = 'failed')::int AS failed,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
           AS run_p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
           AS run_p95,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at))
           AS wait_p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at))
           AS wait_p95
FROM jobs
WHERE status IN ('completed', 'failed', 'cancelled')
  AND finished_at > now() - $1 * interval '1 second'
GROUP BY GROUPING SETS ((1, type), (1))
ORDER BY 1

-- name: series_depth
-- Jobs waiting to start at the end of each bucket: submitted, not started, not finished.
-- A job waits from its submit until it starts (or ends, never started): one pass over the
-- jobs that could have waited within the window makes a +1 and a -1 of each, added up per
-- bucket and then in bucket order, rather than a pass over them for each bucket (a day's
-- 145 buckets read them 145 times). A change at `at` counts from the bucket whose end is
-- at or after it (hence the microsecond: a bucket's end is inclusive).
-- $1 seconds of history, $2 bucket seconds
WITH b AS (
    SELECT generate_series(
        date_bin($2 * interval '1 second', now() - $1 * interval '1 second', timestamptz 'epoch'),
        now(), $2 * interval '1 second') AS t
), c AS (
    -- the jobs not finished (jobs_unfinished_idx) and those finished within the window
    -- (jobs_finished_idx: a finished job is completed, failed or cancelled)
    SELECT created_at AS came, started_at AS went FROM jobs
    WHERE finished_at IS NULL AND status <> 'draft'
    UNION ALL
    SELECT created_at, LEAST(started_at, finished_at) FROM jobs
    WHERE status IN ('completed', 'failed', 'cancelled')
      AND finished_at > now() - $1 * interval '1 second'
), moves AS (
    SELECT GREATEST(date_bin($2 * interval '1 second', m.at - interval '1 microsecond',
                             timestamptz 'epoch'),
                    (SELECT min(t) FROM b)) AS t,
           sum(m.d) AS d
    FROM (SELECT came AS at, 1 AS d FROM c
          UNION ALL
          SELECT went, -1 FROM c WHERE went IS NOT NULL) m
    GROUP BY 1
)
SELECT b.t, (sum(COALESCE(moves.d, 0)) OVER (ORDER BY b.t))::int AS depth
FROM b LEFT JOIN moves ON moves.t = b.t
ORDER BY b.t

-- name: series_events
-- Status changes per bucket, of every job. $1 seconds of history, $2 bucket seconds
SELECT date_bin($2 * interval '1 second', at, timestamptz 'epoch') AS t, count(*)::int AS n
FROM job_events WHERE kind = 'status' AND at > now() - $1 * interval '1 second'
GROUP BY 1 ORDER BY 1

-- name: operating_gauges
-- What the alerts watch beside the jobs: for how long the sweep's lease has been expired
-- (0 while a sweep holds it; NULL before any sweep ran), and how many server processes ask
-- for NOTIFYs because their Redis pub/sub is down. $1 the sweep's lease name
SELECT (SELECT GREATEST(0, extract(epoch FROM now() - expires_at))::float8 FROM leases
        WHERE name = $1) AS sweep_overdue_s,
       (SELECT count(*)::float8 FROM fallback_listeners WHERE expires_at > now())
           AS notify_fallback

-- name: set_retry_policy
-- The retry policy a job was submitted with. $1 job id, $2 policy
INSERT INTO job_retries (job_id, policy) VALUES ($1, $2)
ON CONFLICT (job_id) DO UPDATE SET policy = EXCLUDED.policy

-- name: retry_policy
-- The retry policy a job was submitted with (no row, or NULL: its type's). $1 job id
SELECT policy FROM job_retries WHERE job_id = $1

-- name: spend_retry_once
-- Spend a job's one retry of an error class: true when it was spent already (fail the
-- job), false when this call spent it (retry once). $1 job id, $2 error class name
WITH old AS (
    SELECT $2 = ANY (once_spent) AS spent FROM job_retries WHERE job_id = $1
), up AS (
    INSERT INTO job_retries (job_id, once_spent) VALUES ($1, ARRAY[$2::text])
    ON CONFLICT (job_id) DO UPDATE SET once_spent = job_retries.once_spent || $2::text
    WHERE NOT ($2 = ANY (job_retries.once_spent))
)
SELECT COALESCE((SELECT spent FROM old), false) AS spent

-- install

-- name: claim_install
-- The Redis prefix of the install this database belongs to: $1 (the caller's prefix)
-- when it is the first to ask, else the one recorded by the first. One statement, so
-- two processes starting together record one prefix.
WITH claimed AS (
    INSERT INTO install (redis_prefix) VALUES ($1)
    ON CONFLICT (only_row) DO NOTHING
    RETURNING redis_prefix
)
SELECT redis_prefix FROM claimed
UNION ALL
SELECT redis_prefix FROM install
LIMIT 1

-- name: move_install
-- The install moves to another Redis prefix (jobcast migrate --redis-prefix-moved).
-- $1 the new prefix
INSERT INTO install (redis_prefix) VALUES ($1)
ON CONFLICT (only_row) DO UPDATE SET redis_prefix = EXCLUDED.redis_prefix

-- concurrency keys, throttles and their run-time limits

-- name: set_job_keys
-- A job's keys, stored before it is queued. $1 job id, $2 kinds, $3 keys, $4 limits,
-- $5 periods (NULL for a concurrency key)
INSERT INTO job_keys (job_id, kind, key, lim, period_s)
SELECT $1, k.kind, k.key, k.lim, k.period_s
FROM unnest($2::text[], $3::text[], $4::integer[], $5::real[]) AS k(kind, key, lim, period_s)
ON CONFLICT DO NOTHING

-- name: job_keys
-- A job's keys. $1 job id
SELECT kind, key, lim, period_s FROM job_keys WHERE job_id = $1 ORDER BY key, kind

-- name: take_released
-- The jobs an ended job released, to queue: taken once. $1 the ended job's id
UPDATE jobs SET released_by = NULL
WHERE released_by = $1 AND status IS NOT DISTINCT FROM 'pending' AND parked_on IS NULL
RETURNING id, owner_id, priority, fair_key,
          GREATEST(0, extract(epoch FROM run_at - now()))::float8 AS delay_s

-- name: parked_keys
-- Keys with parked jobs that may be released now: concurrency keys (a slot may have
-- freed without a release: a limit raised, a race with a type's cap), throttles whose
-- window has passed. No parameters
-- The keys are walked in the parked jobs' index, one entry a key (each the first after
-- the last), and each asked for one job that may go: whatever the statistics say,
-- neither reads the table whole, nor every job of a key that has a backlog parked on it.
WITH RECURSIVE k AS (
    (SELECT parked_on AS key FROM jobs WHERE parked_on IS NOT NULL ORDER BY parked_on LIMIT 1)
    UNION ALL
    SELECT (SELECT p.parked_on FROM jobs p WHERE p.parked_on > k.key
            ORDER BY p.parked_on LIMIT 1)
    FROM k WHERE k.key IS NOT NULL
)
SELECT k.key FROM k
WHERE k.key IS NOT NULL
  AND (SELECT true FROM jobs j
       WHERE j.parked_on = k.key AND (j.parked_until IS NULL OR j.parked_until <= now())
       ORDER BY j.parked_on, j.priority DESC, j.created_at LIMIT 1) IS NOT NULL
LIMIT 500

-- name: release_key
-- Release the parked jobs a key has room for; those to queue. $1 key
-- The released ids are gathered first and each row then found by its key: joined to the
-- function's rows, which Postgres guesses at a thousand, jobs was read whole to hash them.
SELECT j.id, j.owner_id, j.priority, j.fair_key,
       GREATEST(0, extract(epoch FROM j.run_at - now()))::float8 AS delay_s
FROM jobs j WHERE j.id = ANY (ARRAY(SELECT jobcast_release($1, NULL)))

-- name: set_key_limit
-- An operator's limit for a key. $1 key, $2 kind, $3 limit, $4 period_s, $5 who
INSERT INTO key_limits (key, kind, lim, period_s, set_by) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (key, kind) DO UPDATE SET lim = EXCLUDED.lim, period_s = EXCLUDED.period_s,
    set_by = EXCLUDED.set_by, updated_at = now()
RETURNING key, kind, lim, period_s, set_by, updated_at

-- name: clear_key_limit
-- Drop an operator's limit(s) for a key. $1 key, $2 kind (NULL: both)
DELETE FROM key_limits WHERE key = $1 AND ($2::text IS NULL OR kind = $2) RETURNING key

-- name: key_limits
-- The operator's limits, with each key's running jobs and parked jobs now. No parameters
SELECT l.key, l.kind, l.lim, l.period_s, l.set_by, l.updated_at,
       CASE WHEN l.kind = 'concurrency' THEN jobcast_key_running(l.key) END AS running,
       (SELECT count(*) FROM jobs p WHERE p.parked_on = l.key)::int AS parked
FROM key_limits l ORDER BY l.key, l.kind

-- name: drop_old_starts
-- Starts older than the longest throttle window. $1 seconds
DELETE FROM key_starts WHERE at < now() - $1 * interval '1 second'
