"""The sweep: its Postgres duties run while Redis is unreachable, and two never run at once.

The workers run in this process (``WorkerState``, as ``python -m workers`` opens it)
on a database of their own; Redis is either real or a port where nothing listens.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from jobcast.endpoints import Endpoints, free_port
from jobcast.model import JobStatus
from jobcast.store import Store
from tests.in_process import finished_jobs, stale_job, worker_settings
from tests.silent import SilentProxy
from tests.support import eventually
from workers.state import WorkerState
from workers.sweep import Sweeper, Turn


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    async with Store.open(database) as opened:
        yield opened


@pytest.mark.parametrize("link", ["refused", "silent"])
async def test_with_redis_unreachable_stale_jobs_and_retention_still_run(
    link: str, endpoints: Endpoints, database: str, store: Store
) -> None:
    """Redis refuses (nothing listens at its port), or its link goes silent mid-run."""
    async with SilentProxy(endpoints.redis_url) as proxy:
        settings = worker_settings(
            endpoints,
            database,
            redis_url=proxy.url if link == "silent" else f"redis://127.0.0.1:{free_port()}/0",
            retention_completed_days=1,
        )
        async with WorkerState.open(settings):
            if link == "silent":

                async def connected() -> bool:
                    return proxy.accepted > 0

                await eventually(connected, what="the worker's first Redis connection")
                proxy.silence()
            stale_id = await stale_job(store)
            [old_id] = await finished_jobs(store, 1, "http://127.0.0.1:9/hook")
            await store.pool.execute(
                "UPDATE jobs SET finished_at = now() - interval '2 days' WHERE id = $1", old_id
            )

            async def retried() -> bool:
                job = await store.get_job(stale_id)
                return job is not None and job.status is JobStatus.PENDING

            async def deleted() -> bool:
                return await store.get_job(old_id) is None

            await eventually(retried, timeout_s=30, what="the stale job retried")
            await eventually(deleted, timeout_s=30, what="the expired job deleted")
    job = await store.get_job(stale_id)
    assert job is not None and job.error is not None
    assert job.error["type"] == "WorkerLost"


class SlowDuty:
    """A duty that outlasts the lease many times over, noting when each run began and ended."""

    name = "slow"
    needs_redis = False

    def __init__(self, runs: list[tuple[float, float]], seconds: float) -> None:
        self._runs = runs
        self._seconds = seconds

    async def run(self, turn: Turn) -> None:
        began = time.monotonic()
        await asyncio.sleep(self._seconds)
        self._runs.append((began, time.monotonic()))


async def test_two_sweepers_never_sweep_at_once(endpoints: Endpoints, store: Store) -> None:
    # a lease of 1.2 s, renewed every 0.4 s (the slack lets a renewal take 0.8 s on a busy
    # machine); each sweep is one step of 2.5 s, twice the lease
    interval_s = 0.4
    runs: list[tuple[float, float]] = []
    redis = aioredis.Redis.from_url(endpoints.redis_url)
    sweepers = [
        Sweeper(store, redis, [SlowDuty(runs, 2.5)], interval_s=interval_s) for _ in range(2)
    ]
    tasks = [asyncio.create_task(s.run_forever()) for s in sweepers]
    try:

        async def swept_often() -> bool:
            return len(runs) >= 3

        await eventually(swept_often, timeout_s=30, what="three sweeps")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await redis.aclose()
    ordered = sorted(runs)
    overlaps = [(a, b) for a, b in itertools.pairwise(ordered) if b[0] < a[1]]
    assert overlaps == [], f"{len(overlaps)} of {len(runs)} sweeps ran beside another"
    assert len({s.lease.holder for s in sweepers}) == 2
