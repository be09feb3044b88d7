"""The workers' cancel channel (workers/cancels.py) against a real Redis of its own."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from jobcast.settings import load_settings
from jobcast.store import Store
from tests.chaos import PrivateRedis
from tests.support import eventually
from workers.cancels import CancelWatch
from workers.heartbeat import Heartbeat


async def test_each_loss_after_a_listen_is_followed_by_the_first_wait_not_a_longer_one(
    store: Store,
) -> None:
    """The watch waits longer after each try that fails to subscribe, up to 5 s; a loss
    after it did subscribe (a Redis restart, a cut connection) starts from the first wait
    again, so that a worker's fourth blip of the day is not followed by 4 s deaf."""
    server = PrivateRedis()
    server.start()
    redis = aioredis.Redis.from_url(server.url)
    settings = load_settings({"JOBCAST_REDIS_PREFIX": "cw"})
    heartbeat = Heartbeat(store, 30.0, redis, "cw")
    watching = asyncio.create_task(CancelWatch(redis, settings, heartbeat).run_forever())
    waits: list[float] = []
    try:
        before = await eventually(server.pubsub_clients, what="the watch subscribing")
        for _ in range(4):
            direct = aioredis.Redis.from_url(server.url)
            try:
                assert await direct.client_kill_filter(_type="pubsub") == 1
            finally:
                await direct.aclose()
            cut = time.monotonic()

            async def listening_again(before: set[str] = before) -> set[str] | None:
                now = await server.pubsub_clients()
                return now if now and not now & before else None

            before = await eventually(listening_again, timeout_s=10, what="listening again")
            waits.append(time.monotonic() - cut)
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await redis.aclose()
        server.kill()
    # each: the first wait (0.5 s) and a look of the test's; doubling, the fourth was 4 s
    assert max(waits) < 2.5, waits
