"""17. What an open operator console costs Postgres, with a month of jobs kept.

A console asks for the admin stats after each second in which jobs changed status, and for
its charts every five seconds. Both read the jobs table, which holds every job retention
keeps (completed ones 30 days by default). In a database of its own, this benchmark fills
the table with ``JOBS`` finished jobs spread over 30 days (a fifth failed or cancelled,
four types) and a backlog of ``BACKLOG`` pending ones submitted over the last hour, then
times, on one connection, the statements of one stats read and one chart read of each
window as the console asks for them, against the same numbers read plainly: every job
counted, and each window and each bucket a pass of its own over the table (what the
console's statements did before).
"""

from __future__ import annotations

import statistics
import time

import asyncpg

from bench.harness import Figure, Run, Section, scratch_database
from jobcast.sql import QUERIES

JOBS = {"quick": 100_000, "full": 1_000_000}
BACKLOG = 1_000  # pending jobs, besides
REPEATS = 3
DAYS = 30

# The same numbers, read plainly (tests/integration/test_console_statements.py checks that
# the statements answer as these do).
PLAIN_TYPE_STATS = """
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
PLAIN_DEPTH = """
WITH b AS (
    SELECT generate_series(
        date_bin($2 * interval '1 second', now() - $1 * interval '1 second', timestamptz 'epoch'),
        now(), $2 * interval '1 second') AS t
)
SELECT b.t, count(j.id)::int AS depth
FROM b LEFT JOIN jobs j
  ON j.status <> 'draft' AND j.created_at <= b.t + $2 * interval '1 second'
 AND (j.started_at IS NULL OR j.started_at > b.t + $2 * interval '1 second')
 AND (j.finished_at IS NULL OR j.finished_at > b.t + $2 * interval '1 second')
 AND (j.finished_at IS NULL OR j.finished_at > now() - $1 * interval '1 second')
GROUP BY b.t ORDER BY b.t
"""
PLAIN_SERIES_JOBS = QUERIES["series_jobs"].replace(
    "WHERE status IN ('completed', 'failed', 'cancelled')\n  AND finished_at", "WHERE finished_at"
)
if PLAIN_SERIES_JOBS == QUERIES["series_jobs"]:
    raise RuntimeError("series_jobs changed: say here how it reads plainly")

HOUR, DAY = (3600, 60), (86_400, 600)  # seconds of history, bucket seconds (the console's)

# (what, the statements now, the plain ones): each a list of (statement, arguments)
READS = (
    (
        "stats",
        [(QUERIES["live_counts"], ()), (QUERIES["type_windows"], (3600, 86_400))],
        [(QUERIES["counts"], ()), (PLAIN_TYPE_STATS, (3600,)), (PLAIN_TYPE_STATS, (86_400,))],
    ),
    *(
        (
            f"charts, last {name}",
            [(QUERIES[s], window) for s in ("series_jobs", "series_depth", "series_events")],
            [
                (PLAIN_SERIES_JOBS, window),
                (PLAIN_DEPTH, window),
                (QUERIES["series_events"], window),
            ],
        )
        for name, window in (("hour", HOUR), ("day", DAY))
    ),
)

FILL = """
INSERT INTO jobs (id, owner_id, type, status, progress, attempts, seq, created_at, started_at,
                  finished_at, updated_at)
SELECT gen_random_uuid(), $1, (ARRAY['noop', 'demo', 'audit', 'csv'])[1 + g % 4],
       (ARRAY['completed', 'completed', 'completed', 'completed', 'failed',
              'completed', 'completed', 'completed', 'completed', 'cancelled'])[1 + g % 10],
       100, 1, 3, at - interval '3 seconds', at - interval '2 seconds', at, at
FROM generate_series(1, $2) g,
     LATERAL (SELECT now() - $3 * interval '1 day' * g / $2 AS at) t
"""


async def fill(conn: asyncpg.Connection, jobs: int) -> None:
    owner = await conn.fetchval(
        "INSERT INTO owners (id, token_hash, webhook_secret)"
        " VALUES (gen_random_uuid(), '\\x01', 'x') RETURNING id"
    )
    # the counters' triggers count each owner's active jobs, for its cap: none here
    await conn.execute("ALTER TABLE jobs DISABLE TRIGGER USER")
    await conn.execute(FILL, owner, jobs, DAYS)
    # and a backlog: jobs submitted over the last hour, not started yet
    await conn.execute(
        "INSERT INTO jobs (id, owner_id, type, created_at, run_at)"
        " SELECT gen_random_uuid(), $1, 'noop', at, at FROM generate_series(1, $2) g,"
        "      LATERAL (SELECT now() - interval '1 hour' * g / $2 AS at) t",
        owner,
        BACKLOG,
    )
    await conn.execute("ALTER TABLE jobs ENABLE TRIGGER USER")
    await conn.execute("VACUUM ANALYZE jobs")


async def timed(conn: asyncpg.Connection, reads: list[tuple[str, tuple[int, ...]]]) -> float:
    """Milliseconds the statements take, one after the other."""
    started = time.perf_counter()
    for sql, args in reads:
        await conn.fetch(sql, *args)
    return (time.perf_counter() - started) * 1000


async def run(ctx: Run, section: Section) -> None:
    jobs = JOBS[ctx.scale.name]
    async with scratch_database(ctx.settings.database_dsn) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await fill(conn, jobs)
            for what, now, plain in READS:
                await timed(conn, now)  # plans made, pages read into memory
                await timed(conn, plain)
                ours: list[float] = []
                theirs: list[float] = []
                for _ in range(REPEATS):  # alternated, so a busy moment weighs on both
                    ours.append(await timed(conn, now))
                    theirs.append(await timed(conn, plain))
                section.figures.append(
                    Figure(
                        f"a console's {what} read, {jobs:,} jobs kept",
                        "ms",
                        statistics.median(ours),
                        statistics.median(theirs),
                        "the same numbers read plainly: every job counted, each window and "
                        "bucket a pass",
                        higher_is_better=False,
                    )
                )
        finally:
            await conn.close()
    section.notes = [
        f"{jobs:,} finished jobs over {DAYS} days (a tenth failed, a tenth cancelled, four "
        f"types) and {BACKLOG:,} pending ones submitted over the last hour, in a database of "
        "their own, vacuumed and analyzed; each figure the median "
        f"of {REPEATS} reads on one connection, alternated with the plain reading. The "
        "stats read: counts by type and status, and the failure rate and run-time "
        "percentiles per type over the last hour and day (the console counts the jobs not "
        "finished alone, `?counts=live`; the plain reading counts every job kept, as "
        "`counts=all` still does). A chart read: jobs finished, queue depth and status "
        "changes, per bucket of the window. A console makes a stats read after each second "
        "in which jobs changed status, and a chart read every five seconds.",
    ]
