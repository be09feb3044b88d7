"""The worker starts each job in one Redis round trip (workers/starts.py), with arq's checks:
a due job on the queue runs once, however many workers reach for it; one in progress
elsewhere, gone from the queue or not due yet is skipped; a Redis error gives the slot back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix
from arq.worker import func
from redis.exceptions import RedisError

from jobcast.endpoints import Endpoints
from tests.chaos import PrivateRedis
from workers.starts import Worker

MAX_JOBS = 4
IDLE = MAX_JOBS + 1  # arq's semaphore has a slot more than max_jobs


@pytest.fixture
async def pool(endpoints: Endpoints) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(RedisSettings.from_dsn(endpoints.redis_url))
    yield redis
    await redis.aclose()


class Runs:
    """What the job function saw: each job id it ran, and a gate it waits on."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.gate = asyncio.Event()

    async def job(self, ctx: dict[Any, Any]) -> None:
        self.ran.append(ctx["job_id"])
        await self.gate.wait()


def make_worker(pool: ArqRedis, queue: str, runs: Runs) -> Worker:
    return Worker(
        functions=[func(runs.job, name="job")],
        redis_pool=pool,
        queue_name=queue,
        max_jobs=MAX_JOBS,
        keep_result=0,
        handle_signals=False,
    )


def free_slots(worker: Worker) -> int:
    return worker.sem._value  # arq's own count of the slots a job can take


async def queued(pool: ArqRedis, queue: str, *, defer_s: float = 0) -> str:
    job_id = uuid.uuid4().hex
    job = await pool.enqueue_job("job", _job_id=job_id, _queue_name=queue, _defer_by=defer_s)
    assert job is not None
    return job_id


async def test_a_due_job_is_marked_in_progress_and_run_once(pool: ArqRedis) -> None:
    queue, runs = f"starts-{uuid.uuid4().hex}", Runs()
    worker = make_worker(pool, queue, runs)
    job_id = await queued(pool, queue)

    await worker.start_jobs([job_id.encode()])
    await asyncio.sleep(0.2)

    assert runs.ran == [job_id]
    assert await pool.exists(in_progress_key_prefix + job_id)
    assert worker.job_counter == 1 and free_slots(worker) == IDLE - 1
    # a second look at the same id (the next poll) does not run it again
    await worker.start_jobs([job_id.encode()])
    assert runs.ran == [job_id] and worker.job_counter == 1
    runs.gate.set()
    await asyncio.wait_for(asyncio.gather(*worker.tasks.values()), 5)
    await asyncio.sleep(0)
    assert worker.job_counter == 0 and free_slots(worker) == IDLE
    assert not await pool.exists(in_progress_key_prefix + job_id)


async def test_jobs_in_progress_elsewhere_gone_or_not_due_are_skipped(pool: ArqRedis) -> None:
    queue, runs = f"starts-{uuid.uuid4().hex}", Runs()
    worker = make_worker(pool, queue, runs)
    elsewhere = await queued(pool, queue)
    await pool.psetex(in_progress_key_prefix + elsewhere, 60_000, b"1")
    gone = await queued(pool, queue)
    await pool.zrem(queue, gone)
    later = await queued(pool, queue, defer_s=60)
    due = await queued(pool, queue)

    await worker.start_jobs([j.encode() for j in (elsewhere, gone, later, due)])
    await asyncio.sleep(0.2)

    assert runs.ran == [due]
    assert worker.job_counter == 1 and free_slots(worker) == IDLE - 1
    assert not await pool.exists(in_progress_key_prefix + gone)
    assert not await pool.exists(in_progress_key_prefix + later)
    runs.gate.set()
    await asyncio.wait_for(asyncio.gather(*worker.tasks.values()), 5)


async def test_workers_reaching_for_one_job_at_once_run_it_once(pool: ArqRedis) -> None:
    queue, runs = f"starts-{uuid.uuid4().hex}", Runs()
    workers = [make_worker(pool, queue, runs) for _ in range(5)]
    job_ids = [await queued(pool, queue) for _ in range(3)]
    ids = [j.encode() for j in job_ids]

    await asyncio.gather(*(w.start_jobs(ids) for w in workers))
    await asyncio.sleep(0.2)

    assert sorted(runs.ran) == sorted(job_ids)
    assert sum(w.job_counter for w in workers) == 3
    runs.gate.set()
    for worker in workers:
        await asyncio.wait_for(asyncio.gather(*worker.tasks.values()), 5)


async def test_a_redis_error_gives_the_slot_back(private_redis: PrivateRedis) -> None:
    pool = await create_pool(RedisSettings.from_dsn(private_redis.url))
    queue, runs = f"starts-{uuid.uuid4().hex}", Runs()
    worker = make_worker(pool, queue, runs)
    job_id = await queued(pool, queue)
    private_redis.kill()
    try:
        with pytest.raises((RedisError, OSError)):
            await worker.start_jobs([job_id.encode()])
        assert runs.ran == []
        assert worker.job_counter == 0 and free_slots(worker) == IDLE
    finally:
        await pool.aclose(close_connection_pool=True)
