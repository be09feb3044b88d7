"""Queueing what a freed slot released.

A job held back by a concurrency key or throttle is parked in Postgres, off arq's
queue. The transaction that ends the job holding the slot releases the parked jobs
that now have room (``jobcast_release_slots`` in schema.sql) and marks them with the
ended job's id; the worker of that job, or the sweep that recovered it, queues them
here. A job parked by its fairness group is released by the claim of one of the
group's queued jobs, in its place, and that claim's worker queues it. Whatever is
released but not queued (Redis down, the worker killed in between) is a pending job
missing from Redis, which the outbox queues.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from uuid import UUID

import asyncpg
from redis.exceptions import RedisError

from jobcast.errors import StorageUnavailable
from jobcast.queue import Queue, Queued
from jobcast.store import Store

log = logging.getLogger(__name__)


async def queue_rows(queue: Queue, rows: Sequence[asyncpg.Record]) -> None:
    """Queue released jobs (rows of id, priority, delay_s, fair_key) in one round trip."""
    if rows:
        await queue.enqueue_many(Queued.rows(rows))


async def queue_in_place(queue: Queue, job_id: UUID, released: Queued) -> None:
    """Queue the parked job that the claim of ``job_id`` released in its place; never
    raises for an outage (the outbox queues it then)."""
    try:
        await queue.enqueue(
            released.job_id,
            delay_s=released.delay_s,
            priority=released.priority,
            group=released.group,
        )
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning(
            "job %s: %s, released in its place, not queued yet (%s); the outbox will",
            job_id,
            released.job_id,
            exc,
        )


async def queue_released(store: Store, queue: Queue, job_id: UUID) -> None:
    """Queue the parked jobs that the end of ``job_id`` released; never raises for an
    outage (the outbox queues them then)."""
    try:
        released = await store.take_released(job_id)
        await queue_rows(queue, released)
    except (StorageUnavailable, RedisError, OSError) as exc:
        log.warning("job %s: released jobs not queued yet (%s); the outbox will", job_id, exc)
        return
    if released:
        log.info("job %s: queued %d jobs its end released", job_id, len(released))
