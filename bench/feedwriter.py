"""The writer of benchmark 9's delivered floor, in a process of its own (as a worker is).

``python -m bench.feedwriter DSN REDIS_URL PREFIX JOBS EVENTS BATCH`` stores ``EVENTS``
events of each of ``JOBS`` jobs, ``BATCH`` jobs at a time (a worker's concurrency): one
event of each of the batch's jobs in one statement (committed), then each published on
its job's ``/feed`` channel (bench/bare.py) in one pipeline, round after round. It prints
the wall time it began (after connecting) and then the one it ended, one a line. No job,
no check, no attempt: the least that stores events in batches before publishing them.

With a seventh argument, ``RATE`` (events a second) and an eighth, ``POOL`` (connections),
it paces them instead (benchmark 3's floor): ``BATCH`` writers, each a job at a time,
store each event in a statement of its own (committed) and then publish it, the writers'
events spread evenly over the second so that together they make ``RATE`` a second, as a
worker's jobs report at benchmark 3's rate (where a statement rarely finds a second
report to carry). The least latency storing each event before publishing it allows.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import orjson
import redis.asyncio as aioredis

from bench.bare import feed_channel

SQL_SCRATCH = """
CREATE TABLE IF NOT EXISTS bench_feed_events (
    job int NOT NULL, seq int NOT NULL, at timestamptz NOT NULL DEFAULT now(),
    kind text NOT NULL, payload jsonb NOT NULL, PRIMARY KEY (job, seq)
)"""
# $1 jobs, $2 seqs, $3 payloads
SQL_EVENTS = """
INSERT INTO bench_feed_events (job, seq, kind, payload)
SELECT job, seq, 'progress', payload FROM unnest($1::int[], $2::int[], $3::jsonb[])
    AS b(job, seq, payload)
RETURNING job, at"""
# $1 job, $2 seq, $3 payload
SQL_EVENT = """
INSERT INTO bench_feed_events (job, seq, kind, payload) VALUES ($1, $2, 'progress', $3)
RETURNING at"""


def message(job: int, seq: int, at: datetime, events: int) -> bytes:
    """The event as a watcher gets it, about the size of jobcast's progress event."""
    return orjson.dumps(
        {
            "type": "event",
            "job_id": f"00000000-0000-0000-0000-{job:012d}",
            "seq": seq,
            "kind": "progress",
            "at": at,
            "progress": round(100 * seq / events, 2),
            "step": "report",
            "message": f"{seq} of {events}",
        }
    )


@asynccontextmanager
async def writing(
    db: asyncpg.Connection | asyncpg.Pool, redis_url: str
) -> AsyncIterator[aioredis.Redis]:
    """The scratch table made empty and Redis connected; the wall time the writing began
    printed before it, and the one it ended after; the table dropped and both closed."""
    redis = aioredis.Redis.from_url(redis_url)
    try:
        await db.execute(SQL_SCRATCH)
        await db.execute("TRUNCATE bench_feed_events")
        print(time.time(), flush=True)
        yield redis
        print(time.time(), flush=True)
    finally:
        await db.execute("DROP TABLE IF EXISTS bench_feed_events")
        await db.close()
        await redis.aclose()


async def write(dsn: str, redis_url: str, prefix: str, jobs: int, events: int, batch: int) -> None:
    conn = await asyncpg.connect(dsn)
    async with writing(conn, redis_url) as redis:
        for first in range(0, jobs, batch):
            group = list(range(first, min(first + batch, jobs)))
            for seq in range(1, events + 1):
                payload = orjson.dumps({"progress": 100 * seq / events}).decode()
                rows = await conn.fetch(
                    SQL_EVENTS, group, [seq] * len(group), [payload] * len(group)
                )
                async with redis.pipeline(transaction=False) as pipe:
                    for row in rows:
                        text = message(row["job"], seq, row["at"].astimezone(UTC), events)
                        pipe.publish(feed_channel(prefix, str(row["job"])), text)
                    await pipe.execute()


async def write_paced(
    dsn: str,
    redis_url: str,
    prefix: str,
    jobs: int,
    events: int,
    writers: int,
    rate: float,
    pool_size: int,
) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
    async with writing(pool, redis_url) as redis:
        start = time.monotonic() + 0.1

        async def writer(w: int) -> None:
            n = 0  # this writer's events so far: its n-th is due at (w + n * writers) / rate
            for job in range(w, jobs, writers):
                channel = feed_channel(prefix, str(job))
                for seq in range(1, events + 1):
                    delay_s = start + (w + n * writers) / rate - time.monotonic()
                    if delay_s > 0:
                        await asyncio.sleep(delay_s)
                    n += 1
                    payload = orjson.dumps({"progress": 100 * seq / events}).decode()
                    at = await pool.fetchval(SQL_EVENT, job, seq, payload)
                    await redis.publish(channel, message(job, seq, at.astimezone(UTC), events))

        await asyncio.gather(*(writer(w) for w in range(writers)))


def main(argv: list[str]) -> int:
    dsn, redis_url, prefix, jobs, events, batch, *paced = argv
    if paced:
        rate, pool_size = paced
        asyncio.run(
            write_paced(
                dsn,
                redis_url,
                prefix,
                int(jobs),
                int(events),
                int(batch),
                float(rate),
                int(pool_size),
            )
        )
    else:
        asyncio.run(write(dsn, redis_url, prefix, int(jobs), int(events), int(batch)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
