"""A worker's heartbeat cancelled while Redis answers one of its commands still ends.

On Python 3.11, redis-py writes each command of a client with a socket timeout (all of
jobcast's) inside ``asyncio.wait_for``, and 3.11's ``wait_for`` returns the answer and
drops the cancel when both come in the same turn of the event loop. A heartbeat that
lost its cancel so beat on, and the worker's shutdown waited for it forever. Each loop
that runs until cancelled now raises such a cancel on its next turn.

The first test cancels the real heartbeat over real Redis at each point of its turns
(on 3.11 several points meet the race; on later Pythons none does, and it passes either
way); the second makes the loss certain with a client that drops the cancel as 3.11's
``wait_for`` does, so it holds on every Python.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from jobcast.endpoints import Endpoints
from jobcast.store import Store
from workers.heartbeat import Heartbeat

CANCEL_POINTS = range(40)  # event-loop iterations before the cancel


class CancelDroppingRedis(aioredis.Redis):
    """Real Redis, but the first cancel, which comes during a SET, is dropped and the SET's
    answer returned, as redis-py's writes do on Python 3.11 when the two come together."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answered = asyncio.Event()
        self.dropped = False

    async def set(self, *args: Any, **kwargs: Any) -> Any:
        answer = await super().set(*args, **kwargs)
        if not self.dropped:
            self.answered.set()
            try:
                await asyncio.Event().wait()  # the cancel comes now
            except asyncio.CancelledError:
                self.dropped = True
        return answer


async def _ended(task: asyncio.Task[None]) -> bool:
    """Whether ``task``, just cancelled, ended of that cancel; stopped for good either way."""
    done, _ = await asyncio.wait([task], timeout=2.0)
    while not task.done():  # it runs on: stop it, or the test leaks it
        task.cancel()
        await asyncio.wait([task], timeout=0.05)
    return bool(done) and task.cancelled()


async def test_the_heartbeat_ends_when_cancelled_at_any_point_of_its_redis_calls(
    endpoints: Endpoints, store: Store
) -> None:
    redis = aioredis.Redis.from_url(endpoints.redis_url, socket_timeout=5)
    try:
        beats = 0
        heartbeat = Heartbeat(store, 0.0, redis, "jobcast-test-swallow", deadline_s=5)
        original_beat = heartbeat.beat

        async def counted_beat() -> None:
            nonlocal beats
            beats += 1
            await original_beat()

        heartbeat.beat = counted_beat  # type: ignore[method-assign]
        hung = []
        for point in CANCEL_POINTS:
            task = asyncio.create_task(heartbeat.run_forever())
            for _ in range(point):
                await asyncio.sleep(0)
            task.cancel()
            if not await _ended(task):
                hung.append(point)
        assert beats > len(CANCEL_POINTS) / 2, "the cancels came before the heartbeat ran"
        assert hung == []
    finally:
        await redis.aclose()


async def test_the_heartbeat_ends_when_a_redis_call_dropped_its_cancel(
    endpoints: Endpoints, store: Store
) -> None:
    redis = CancelDroppingRedis.from_url(endpoints.redis_url)
    try:
        heartbeat = Heartbeat(store, 0.01, redis, "jobcast-test-swallow", deadline_s=5)
        task = asyncio.create_task(heartbeat.run_forever())
        await redis.answered.wait()  # in its SET
        task.cancel()
        assert await _ended(task), "the heartbeat beat on after its cancel was dropped"
    finally:
        await redis.aclose()
