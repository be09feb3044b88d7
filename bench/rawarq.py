"""The raw arq baseline: arq's own Worker with jobcast's worker options, and trivial jobs.

``python -m bench.rawarq`` runs it on ``<JOBCAST_REDIS_PREFIX>:raw-arq``, a queue
of its own beside jobcast's. Its options come from ``workers.settings.worker_options``
(poll delay, ``max_jobs`` = worker concurrency, ``keep_result`` 0, ...); only
the functions and the queue differ. ``noop`` and ``sleep_10ms`` are arq alone: no
Postgres, no events. The ``_tracked`` ones are the hand-rolled jobs table that
teams write around arq: the job's row (made by the bare app, ``bench/bare.py``)
is set running before the job and completed after it, one UPDATE each.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any
from uuid import UUID

import asyncpg
from arq import func
from arq.worker import Worker

from jobcast.settings import Settings, load_settings
from workers.settings import worker_options


# arq's signature for job functions: ctx, then the job's arguments (none here)
async def noop(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
    return None


async def sleep_10ms(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
    await asyncio.sleep(0.01)


async def sleep_s(ctx: dict[Any, Any], seconds: float) -> None:
    """A long job that only waits (bench/running.py)."""
    await asyncio.sleep(seconds)


async def keep_as_is(_conn: asyncpg.Connection) -> None:
    """No reset on release. asyncpg resets each connection its pool takes back (a round
    trip: unlock, close, unlisten, reset) unless told otherwise; jobcast's own pools skip
    it (``jobcast/store.py``), so the baselines' pools skip it too."""


# $1 job id
SQL_RUNNING = "UPDATE bench_submit SET status = 'running', started_at = now() WHERE id = $1"
SQL_COMPLETED = "UPDATE bench_submit SET status = 'completed', finished_at = now() WHERE id = $1"


async def _tracked(ctx: dict[Any, Any], job_id: str, seconds: float) -> None:
    pool: asyncpg.Pool = ctx["pool"]
    await pool.execute(SQL_RUNNING, UUID(job_id))
    if seconds:
        await asyncio.sleep(seconds)
    await pool.execute(SQL_COMPLETED, UUID(job_id))


async def noop_tracked(ctx: dict[Any, Any], job_id: str) -> None:
    await _tracked(ctx, job_id, 0.0)


# A change of the job and its event, numbered by the job's seq, in one statement: the
# least that keeps jobcast's contract (every event stored with a gap-free seq). $1 job id
SQL_EVENTED = """
WITH j AS (
    UPDATE bench_submit SET status = $2, seq = seq + 1,
        started_at = CASE WHEN $2 = 'running' THEN now() ELSE started_at END,
        finished_at = CASE WHEN $2 = 'completed' THEN now() END
    WHERE id = $1 RETURNING id, seq
)
INSERT INTO bench_submit_events (job_id, seq, kind, payload)
SELECT id, seq, 'status', jsonb_build_object('status', $2::text) FROM j
RETURNING seq"""


async def noop_evented(ctx: dict[Any, Any], job_id: str) -> None:
    """The hand-rolled table with an event a change, each stored and then published."""
    pool: asyncpg.Pool = ctx["pool"]
    for status in ("running", "completed"):
        seq = await pool.fetchval(SQL_EVENTED, UUID(job_id), status)
        await ctx["redis"].publish(ctx["events"], f'{{"id":"{job_id}","seq":{seq}}}')


async def sleep_10ms_tracked(ctx: dict[Any, Any], job_id: str) -> None:
    await _tracked(ctx, job_id, 0.01)


def raw_queue(settings: Settings) -> str:
    return f"{settings.redis_prefix}:raw-arq"


def events_channel(prefix: str) -> str:
    """Where the evented jobs' events are published (nobody listens: a publish costs Redis
    the same)."""
    return f"{prefix}:bare-events"


async def serve(settings: Settings) -> None:
    options = worker_options(settings)
    functions = (noop, sleep_10ms, sleep_s, noop_tracked, sleep_10ms_tracked, noop_evented)
    options.update(
        functions=[func(f, name=f.__name__) for f in functions],
        queue_name=raw_queue(settings),
    )
    size = settings.pg_pool_max
    async with asyncpg.create_pool(
        settings.database_dsn, min_size=1, max_size=size, reset=keep_as_is
    ) as pool:
        events = events_channel(settings.redis_prefix)
        worker = Worker(**options, ctx={"pool": pool, "events": events})
        try:
            await worker.async_run()
        except asyncio.CancelledError:
            pass  # SIGTERM or SIGINT: arq cancels its main task
        finally:
            await worker.close()


def main() -> int:
    asyncio.run(serve(load_settings()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
