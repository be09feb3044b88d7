"""The hub with a real Redis: fan-out to local subscribers, and a slow one dropped; and an
event Redis refuses, announced over Postgres instead."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from jobcast.bus import Hub, Live, SlowConsumer, publish_quietly
from jobcast.registry import load_registry
from jobcast.services import Endpoints, free_port
from jobcast.settings import load_settings
from jobcast.sql import NOTIFY_CHANNEL
from jobcast.store import Store
from tests.conftest import DatabaseFactory
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


async def test_an_event_redis_refuses_is_announced_over_postgres(
    endpoints: Endpoints, new_database: DatabaseFactory
) -> None:
    """A worker that cannot reach Redis while the servers can: their pub/sub is up, so
    nobody asked for NOTIFYs, and the event must still reach them as a hint."""
    settings = load_settings({"JOBCAST_REDIS_PREFIX": f"pq{uuid.uuid4().hex[:8]}"})
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    dsn = await new_database()
    heard: list[str] = []
    listener = await asyncpg.connect(dsn)
    try:
        await listener.add_listener(NOTIFY_CHANNEL, lambda *args: heard.append(str(args[-1])))
        async with Store.open(dsn) as store:
            owner = await store.create_owner(uuid.uuid4().hex)
            created = await store.create_job(
                owner_id=owner, job_type=load_registry().get("noop"), params={}
            )
            assert created is not None and created.event is not None
            event = created.event
            assert heard == []  # nobody asked: the write itself sent no NOTIFY
            await publish_quietly(dead, settings, store, event)

            async def announced() -> bool:
                return heard == [f"{event.job_id} {event.seq} {owner} status"]

            await eventually(announced, what="the NOTIFY for the unpublished event")
    finally:
        await listener.close()
        await dead.aclose()
