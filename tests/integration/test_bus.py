"""The hub with a real Redis: fan-out to local subscribers, and a slow one dropped."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from jobcast.bus import Hub, Live, SlowConsumer
from jobcast.services import Endpoints
from jobcast.settings import load_settings
from tests.support import eventually


@pytest.fixture
async def hub(endpoints: Endpoints) -> AsyncIterator[tuple[Hub, aioredis.Redis, str]]:
    settings = load_settings(
        {"JOBCAST_WS_QUEUE_SIZE": "8", "JOBCAST_REDIS_PREFIX": f"hub{uuid.uuid4().hex[:8]}"}
    )
    redis = aioredis.Redis.from_url(endpoints.redis_url)
    running = Hub(redis, settings)
    await running.start()
    await eventually(lambda: _true(running.healthy), what="the hub connecting")
    try:
        yield running, redis, settings.job_channel("j1")
    finally:
        await running.close()
        await redis.aclose()


async def _true(value: bool) -> bool:
    return value


def message(seq: int) -> bytes:
    return f'{{"type":"event","job_id":"j1","seq":{seq},"kind":"progress","progress":1}}'.encode()


async def test_every_local_subscriber_gets_every_event(
    hub: tuple[Hub, aioredis.Redis, str],
) -> None:
    running, redis, channel = hub
    async with running.subscribe(channel) as first, running.subscribe(channel) as second:
        for seq in (1, 2, 3):
            await redis.publish(channel, message(seq))
        got: dict[int, list[int]] = {id(first): [], id(second): []}
        for sub in (first, second):
            while len(got[id(sub)]) < 3:
                item = await sub.get()
                if isinstance(item, Live):
                    got[id(sub)].append(item.seq)
    assert list(got.values()) == [[1, 2, 3], [1, 2, 3]]
    assert running.subscriber_count == 0


async def test_a_subscriber_that_falls_behind_is_dropped_not_the_others(
    hub: tuple[Hub, aioredis.Redis, str],
) -> None:
    running, redis, channel = hub
    async with running.subscribe(channel) as slow, running.subscribe(channel) as fast:
        received: list[int] = []
        for seq in range(1, 21):
            await redis.publish(channel, message(seq))
            # the fast one keeps up; the slow one never reads
            while True:
                item = await fast.get()
                if isinstance(item, Live):
                    received.append(item.seq)
                    break
        assert slow.overflowed
        with pytest.raises(SlowConsumer):
            await slow.get()
    assert received == list(range(1, 21))
