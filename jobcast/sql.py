"""Every SQL statement of jobcast, for the store to run (``jobcast/store.py``).

Each state change of a job is one statement: a data-modifying CTE that updates
the ``jobs`` row (bumping its ``seq``), inserts the matching ``job_events`` row
with that ``seq``, and NOTIFYs ``jobcast_events`` with ids only while a server
process asks for that (its Redis pub/sub is down; ``_notify``). One statement
means one round trip and one implicit transaction, so an event exists exactly
when the change it describes does, and ``seq`` has no gaps. Worker writes are
fenced by attempt (``WHERE attempts = $n AND status = 'running'``). Each
statement's comment says its parameters in order.
"""

from __future__ import annotations

NOTIFY_CHANNEL = "jobcast_events"


def _notify(payload_sql: str) -> str:
    """NOTIFY the fallback channel, but only while a server process asks for it.

    A server process asks (a row in ``fallback_listeners``) while its Redis pub/sub is
    down. A NOTIFY takes a cluster-wide lock through its transaction's commit, so with
    Redis up, when nobody needs it, it is skipped: the check is one look at an empty table.
    """
    return (
        "CASE WHEN EXISTS (SELECT 1 FROM fallback_listeners WHERE expires_at > now()) "
        f"THEN pg_notify('{NOTIFY_CHANNEL}', {payload_sql}) END AS notified"
    )


def _event_tail(kind_sql: str, payload_sql: str) -> str:
    """The common end of every state change: insert the event of ``j`` and notify."""
    return f"""
, e AS (
    INSERT INTO job_events (job_id, seq, kind, payload)
    SELECT j.id, j.seq, {kind_sql}, {payload_sql} FROM j
    RETURNING at
)
SELECT j.*, e.at AS event_at, {kind_sql} AS event_kind, {payload_sql} AS event_payload,
       {_notify(f"j.id || ' ' || j.seq || ' ' || j.owner_id || ' ' || {kind_sql}")}
FROM j, e
"""


_JOB_COLUMNS = """
    j.id, j.owner_id, j.type, j.input, j.status, j.priority, j.progress, j.step, j.message,
    j.result, j.error, j.attempts, j.max_attempts, j.seq, j.estimated_s, j.timeout_s, j.run_at,
    j.created_at, j.started_at, j.finished_at, j.parent_id, j.callback_url, j.result_expired_at,
    j.retry_of
"""

_STEPS_JSON = """
    COALESCE((SELECT json_agg(json_build_object(
        'name', s.name, 'title', s.title, 'weight', s.weight, 'status', s.status,
        'started_at', s.started_at, 'finished_at', s.finished_at, 'duration_ms', s.duration_ms
    ) ORDER BY s.position) FROM job_steps s WHERE s.job_id = j.id), '[]'::json) AS steps
"""

# $1 id, $2 owner_id, $3 type, $4 input, $5 priority, $6 max_attempts, $7 delay_s,
# $8 estimated_s, $9 step names, $10 step titles, $11 step weights, $12 first event payload,
# $13 timeout_s, $14 parent_id, $15 idempotency_key, $16 callback_url, $17 message,
# $18 retry_of, $19 the owner's cap on active jobs (NULL: none).
# One statement: the gate (jobcast_submit_gate in schema.sql), the job, its steps, its
# first event and the NOTIFY. It answers one row: the gate's verdict, and the job if made.
SQL_CREATE_JOB = f"""
WITH g AS (
    SELECT * FROM jobcast_submit_gate($2, $15, $19)
), j AS (
    INSERT INTO jobs (id, owner_id, type, input, priority, max_attempts, run_at, estimated_s, seq,
                      timeout_s, parent_id, idempotency_key, callback_url, message, retry_of)
    SELECT $1, $2, $3, $4, $5, $6, now() + $7 * interval '1 second', $8, 1, $13, $14, $15, $16,
           $17, $18
    FROM g WHERE g.existing IS NULL AND ($19::bigint IS NULL OR g.active < $19)
    ON CONFLICT (id) DO NOTHING
    RETURNING *
), s AS (
    INSERT INTO job_steps (job_id, position, name, title, weight)
    SELECT j.id, t.position, t.name, t.title, t.weight
    FROM j, unnest($9::text[], $10::text[], $11::real[]) WITH ORDINALITY
         AS t(name, title, weight, position)
), e AS (
    INSERT INTO job_events (job_id, seq, kind, payload)
    SELECT j.id, j.seq, 'status', $12::jsonb FROM j
    RETURNING at
), made AS (
    SELECT j.*, e.at AS event_at, 'status' AS event_kind, $12::jsonb AS event_payload,
           {_notify("j.id || ' ' || j.seq || ' ' || j.owner_id || ' status'")}
    FROM j, e
)
SELECT g.existing AS gate_existing, made.* FROM g LEFT JOIN made ON true
"""

# $1 upload ids, $2 owner_id, $3 job id: ties the owner's unclaimed uploads to a job
SQL_CLAIM_UPLOADS = """
UPDATE uploads SET job_id = $3
WHERE id = ANY($1::uuid[]) AND owner_id = $2 AND job_id IS NULL
RETURNING id
"""

_CHILDREN_JSON = """
    COALESCE((SELECT json_agg(json_build_object(
        'id', c.id, 'type', c.type, 'status', c.status, 'progress', c.progress
    ) ORDER BY c.created_at, c.id) FROM jobs c WHERE c.parent_id = j.id), '[]'::json) AS children
"""

_DELIVERIES_JSON = """
    COALESCE((SELECT json_agg(json_build_object(
        'attempt', d.attempt, 'status', d.status, 'status_code', d.status_code,
        'error', d.error, 'at', COALESCE(d.delivered_at, d.next_at)
    ) ORDER BY d.attempt) FROM webhook_deliveries d WHERE d.job_id = j.id), '[]'::json)
    AS deliveries
"""

# $1 id, $2 owner_id or NULL for any owner
SQL_GET_JOB = f"""
SELECT {_JOB_COLUMNS}, {_STEPS_JSON}, {_CHILDREN_JSON}, {_DELIVERIES_JSON}
FROM jobs j WHERE j.id = $1 AND ($2::uuid IS NULL OR j.owner_id = $2)
"""

# $1 id, $2 owner_id: a job's seq, all a conditional GET needs to answer 304
SQL_JOB_SEQ = "SELECT seq FROM jobs WHERE id = $1 AND owner_id = $2"

# $1 owner_id, $2 status or NULL, $3 type or NULL, $4 limit
SQL_LIST_JOBS = f"""
SELECT {_JOB_COLUMNS}, {_STEPS_JSON}
FROM jobs j
WHERE j.owner_id = $1 AND ($2::text IS NULL OR j.status = $2) AND ($3::text IS NULL OR j.type = $3)
ORDER BY j.created_at DESC, j.id
LIMIT $4
"""

# $1 owner_id or NULL, $2 status or NULL, $3 type or NULL, $4 limit
SQL_ADMIN_JOBS = f"""
SELECT {_JOB_COLUMNS}, {_STEPS_JSON}
FROM jobs j
WHERE ($1::uuid IS NULL OR j.owner_id = $1) AND ($2::text IS NULL OR j.status = $2)
  AND ($3::text IS NULL OR j.type = $3)
ORDER BY j.created_at DESC, j.id
LIMIT $4
"""

SQL_COUNTS = "SELECT type, status, count(*)::int AS n FROM jobs GROUP BY type, status"

# the wait of the longest-waiting job that is due to run
SQL_OLDEST_PENDING = """
SELECT COALESCE(extract(epoch FROM now() - min(run_at)), 0)::float8 FROM jobs
WHERE status = 'pending' AND run_at <= now()
"""

# $1 seconds of history, $2 stale after seconds
SQL_TYPE_STATS = """
SELECT type,
       count(*) FILTER (WHERE finished_at IS NOT NULL)::int AS finished,
       count(*) FILTER (WHERE status = 'failed')::int AS failed,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
           FILTER (WHERE status = 'completed') AS p50_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
           FILTER (WHERE status = 'completed') AS p95_s
FROM jobs WHERE finished_at > now() - $1 * interval '1 second'
GROUP BY type ORDER BY type
"""

SQL_ACTIVE_BY_TYPE = """
SELECT type, status, count(*)::int AS n FROM jobs
WHERE status IN ('pending', 'running') GROUP BY type, status
"""

# $1 stale after seconds: running jobs whose worker has not beaten for that long
SQL_STUCK = """
SELECT count(*)::int FROM jobs
WHERE status = 'running' AND heartbeat_at < now() - $1 * interval '1 second'
"""

# $1 job id, $2 after seq, $3 limit
SQL_EVENTS_AFTER = """
SELECT job_id, seq, kind, payload, at FROM job_events
WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3
"""

_CLAIM_PAYLOAD = (
    "jsonb_build_object('status', 'running', 'attempt', j.attempts, 'progress', 0, 'message', NULL)"
)

# $1 id, $2 capped types, $3 their caps. A new attempt: steps are reset, progress starts
# again from 0. One statement: the gate (jobcast_claim_gate in schema.sql) says whether the
# job is pending and whether its type is under its cap; the answer row carries the verdict,
# and the claimed job with its event when it was claimed.
SQL_CLAIM = f"""
WITH g AS (
    SELECT * FROM jobcast_claim_gate($1, $2::text[], $3::integer[])
), j AS (
    UPDATE jobs SET status = 'running', attempts = attempts + 1, seq = seq + 1,
        progress = 0, step = NULL, message = NULL, error = NULL,
        started_at = COALESCE(started_at, now()), heartbeat_at = now(), updated_at = now()
    WHERE id = $1 AND status = 'pending'
      AND EXISTS (SELECT 1 FROM g WHERE g.job_type IS NOT NULL
                  AND (g.cap IS NULL OR g.running < g.cap))
    RETURNING *
), r AS (
    UPDATE job_steps SET status = 'waiting', started_at = NULL, finished_at = NULL,
        duration_ms = NULL
    WHERE job_id = $1 AND status <> 'waiting' AND EXISTS (SELECT 1 FROM j)
), e AS (
    INSERT INTO job_events (job_id, seq, kind, payload)
    SELECT j.id, j.seq, 'status', {_CLAIM_PAYLOAD} FROM j
    RETURNING at
), made AS (
    SELECT j.*, e.at AS event_at, 'status' AS event_kind, {_CLAIM_PAYLOAD} AS event_payload,
           {_notify("j.id || ' ' || j.seq || ' ' || j.owner_id || ' status'")}
    FROM j, e
)
SELECT g.job_type AS gate_type, g.cap AS gate_cap, made.* FROM g LEFT JOIN made ON true
"""

# $1 id, $2 message, $3 payload
SQL_NOTE_WAITING = """
WITH j AS (
    UPDATE jobs SET seq = seq + 1, message = $2, updated_at = now()
    WHERE id = $1 AND status = 'pending' AND message IS DISTINCT FROM $2
    RETURNING *
)""" + _event_tail("'status'", "$3::jsonb || jsonb_build_object('attempt', j.attempts)")

# $1 id, $2 attempt, $3 progress, $4 step, $5 message, $6 payload
SQL_PROGRESS = """
WITH j AS (
    UPDATE jobs SET seq = seq + 1, progress = $3, step = $4, message = $5,
        heartbeat_at = now(), updated_at = now()
    WHERE id = $1 AND attempts = $2 AND status = 'running'
    RETURNING *
)""" + _event_tail("'progress'", "$6::jsonb")

# $1 id, $2 attempt, $3 step name, $4 step state, $5 duration_ms, $6 progress, $7 payload,
# $8 message (when the step starts)
SQL_STEP = """
WITH j AS (
    UPDATE jobs SET seq = seq + 1, progress = $6, step = $3,
        message = CASE WHEN $4 = 'running' THEN $8 ELSE message END,
        heartbeat_at = now(), updated_at = now()
    WHERE id = $1 AND attempts = $2 AND status = 'running'
    RETURNING *
), s AS (
    UPDATE job_steps SET status = $4,
        started_at = CASE WHEN $4 = 'running' THEN now() ELSE started_at END,
        finished_at = CASE WHEN $4 = 'running' THEN NULL ELSE now() END,
        duration_ms = $5
    WHERE job_id = $1 AND name = $3 AND EXISTS (SELECT 1 FROM j)
)""" + _event_tail("'step'", "$7::jsonb")

# A final change also schedules the job's completion webhook, in the same statement.
_WEBHOOK_CTE = """, w AS (
    INSERT INTO webhook_deliveries (job_id, attempt, url)
    SELECT id, 1, callback_url FROM j WHERE callback_url IS NOT NULL
)"""

# $1 id, $2 attempt, $3 final status, $4 result, $5 error, $6 message, $7 payload
SQL_FINISH = (
    """
WITH j AS (
    UPDATE jobs SET seq = seq + 1, status = $3, result = $4, error = $5, message = $6,
        progress = CASE WHEN $3 = 'completed' THEN 100 ELSE progress END,
        finished_at = now(), heartbeat_at = NULL, updated_at = now()
    WHERE id = $1 AND attempts = $2 AND status = 'running'
    RETURNING *
)"""
    + _WEBHOOK_CTE
    + _event_tail("'status'", "$7::jsonb")
)

# $1 id, $2 attempt, $3 delay_s, $4 message, $5 error, $6 payload
SQL_RETRY_LATER = """
WITH j AS (
    UPDATE jobs SET seq = seq + 1, status = 'pending', message = $4, error = $5,
        run_at = now() + $3 * interval '1 second', heartbeat_at = NULL, updated_at = now()
    WHERE id = $1 AND attempts = $2 AND status = 'running'
    RETURNING *
)""" + _event_tail("'status'", "$6::jsonb")


# $1 id, $2 attempt, $3 message, $4 payload. A worker that stops (SIGTERM) hands its
# attempt back: the job is pending again and the attempt is not counted.
SQL_HAND_BACK = """
WITH j AS (
    UPDATE jobs SET seq = seq + 1, status = 'pending', attempts = attempts - 1, message = $3,
        run_at = now(), heartbeat_at = NULL, updated_at = now()
    WHERE id = $1 AND attempts = $2 AND status = 'running'
    RETURNING *
)""" + _event_tail("'status'", "$4::jsonb")

# $1 id, $2 owner_id, $3 payload
SQL_CANCEL = (
    """
WITH j AS (
    UPDATE jobs SET seq = seq + 1, status = 'cancelled', message = 'Cancelled',
        finished_at = now(), heartbeat_at = NULL, updated_at = now()
    WHERE id = $1 AND owner_id = $2 AND status IN ('pending', 'running')
    RETURNING *
)"""
    + _WEBHOOK_CTE
    + _event_tail("'status'", "$3::jsonb || jsonb_build_object('attempt', j.attempts)")
)

# $1 id, $2 owner_id: the job and all its descendants
SQL_TREE = """
WITH RECURSIVE tree AS (
    SELECT id, 0 AS depth FROM jobs WHERE id = $1 AND owner_id = $2
    UNION ALL
    SELECT c.id, t.depth + 1 FROM jobs c JOIN tree t ON c.parent_id = t.id
)
SELECT id FROM tree ORDER BY depth
"""

# $1 job ids, $2 their attempts: the ids whose attempt is still running
SQL_HEARTBEAT = """
UPDATE jobs SET heartbeat_at = now()
FROM unnest($1::uuid[], $2::int[]) AS beat(id, attempt)
WHERE jobs.id = beat.id AND jobs.attempts = beat.attempt AND jobs.status = 'running'
RETURNING jobs.id
"""

# $1 seconds without a heartbeat, $2 limit
SQL_STALE = """
SELECT id, owner_id, attempts, max_attempts, priority FROM jobs
WHERE status = 'running' AND heartbeat_at < now() - $1 * interval '1 second'
ORDER BY heartbeat_at LIMIT $2
"""

# $1 seconds since the last change, $2 limit: pending jobs that should be on the queue
SQL_PENDING = """
SELECT id, priority, GREATEST(0, extract(epoch FROM run_at - now()))::float8 AS delay_s
FROM jobs
WHERE status = 'pending' AND updated_at < now() - $1 * interval '1 second'
ORDER BY run_at LIMIT $2
"""

# $1 completed days, $2 failed days, $3 cancelled days
SQL_RETENTION = """
DELETE FROM jobs WHERE finished_at IS NOT NULL AND (
       (status = 'completed' AND finished_at < now() - $1 * interval '1 day')
    OR (status = 'failed' AND finished_at < now() - $2 * interval '1 day')
    OR (status = 'cancelled' AND finished_at < now() - $3 * interval '1 day'))
"""

# $1 type, $2 how many recent jobs
SQL_STEP_HISTORY = """
SELECT j.input, s.name, s.duration_ms
FROM (SELECT id, input FROM jobs WHERE type = $1 AND status = 'completed'
      ORDER BY finished_at DESC LIMIT $2) j
JOIN job_steps s ON s.job_id = j.id
WHERE s.status = 'completed'
"""

# $1 types, $2 their result_ttl_s
SQL_EXPIRE_RESULTS = """
UPDATE jobs SET result = NULL, result_expired_at = now()
FROM unnest($1::text[], $2::float8[]) AS t(type, ttl_s)
WHERE jobs.type = t.type AND jobs.status = 'completed' AND jobs.result_expired_at IS NULL
  AND jobs.finished_at < now() - t.ttl_s * interval '1 second'
"""

# $1 limit: webhook tries that are due, with what they need to be sent
SQL_DUE_DELIVERIES = """
SELECT d.job_id, d.attempt, d.url, j.owner_id, o.webhook_secret
FROM webhook_deliveries d JOIN jobs j ON j.id = d.job_id JOIN owners o ON o.id = j.owner_id
WHERE d.status = 'pending' AND d.next_at <= now()
ORDER BY d.next_at LIMIT $1
"""

# $1 job id, $2 attempt, $3 status, $4 status_code, $5 error
SQL_RECORD_DELIVERY = """
UPDATE webhook_deliveries SET status = $3, status_code = $4, error = $5,
    delivered_at = CASE WHEN $3 = 'delivered' THEN now() END
WHERE job_id = $1 AND attempt = $2
"""

# $1 job id, $2 attempt, $3 seconds from now
SQL_NEXT_DELIVERY = """
INSERT INTO webhook_deliveries (job_id, attempt, url, next_at)
SELECT job_id, $2, url, now() + $3 * interval '1 second' FROM webhook_deliveries
WHERE job_id = $1 AND attempt = $2 - 1
ON CONFLICT DO NOTHING
"""

# $1 the NOTIFY payload (job id, seq, owner id and kind, space-separated, as the state
# changes above send it): an event whose publish on Redis failed
SQL_NOTIFY_EVENT = f"SELECT pg_notify('{NOTIFY_CHANNEL}', $1)"

# $1 holder, $2 seconds: this server process wants NOTIFYs for that long (renewed while
# its pub/sub is down); long-expired requests of processes that died are dropped
SQL_WANT_NOTIFY = """
WITH gone AS (DELETE FROM fallback_listeners WHERE expires_at < now() - interval '1 minute')
INSERT INTO fallback_listeners (holder, expires_at) VALUES ($1, now() + $2 * interval '1 second')
ON CONFLICT (holder) DO UPDATE SET expires_at = EXCLUDED.expires_at
"""

# $1 holder: its pub/sub is back
SQL_STOP_NOTIFY = "DELETE FROM fallback_listeners WHERE holder = $1"

# $1 lease name, $2 holder, $3 seconds: the lease is taken when free, expired, or ours
SQL_TAKE_LEASE = """
INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, now() + $3 * interval '1 second')
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE leases.expires_at < now() OR leases.holder = EXCLUDED.holder
RETURNING holder
"""
