"""The hub with a real Redis: fan-out to local subscribers, a slow one dropped, a quick
reconnect after each cut; an event Redis refuses, announced over Postgres instead; and
the publisher that sends many jobs' events per round trip, each job's in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobcast.bus import (
    Hint,
    Hub,
    Item,
    Live,
    Publisher,
    Resync,
    SlowConsumer,
    Subscription,
    publish_quietly,
)
from jobcast.bus.message import live_of
from jobcast.circuit import Circuit
from jobcast.endpoints import Endpoints, free_port
from jobcast.links import RedisLink
from jobcast.listener import Listener
from jobcast.model import Event, EventKind
from jobcast.registry import load_registry
from jobcast.settings import Settings, load_settings
from jobcast.sql import NOTIFY_CHANNEL, QUERIES
from jobcast.store import Store
from jobcast.store.rows import of_notice
from tests.chaos import PrivateRedis
from tests.conftest import DatabaseFactory
from tests.silent import SilentProxy
from tests.support import eventually


@pytest.fixture
async def hub(endpoints: Endpoints) -> AsyncIterator[tuple[Hub, aioredis.Redis, str]]:
    settings = load_settings(
        {"JOBCAST_WS_QUEUE_SIZE": "8", "JOBCAST_REDIS_PREFIX": f"hub{uuid.uuid4().hex[:8]}"}
    )
    redis = aioredis.Redis.from_url(endpoints.redis_url)
    try:
        async with running_hub(redis, settings) as running:
            yield running, redis, settings.job_channel("j1")
    finally:
        await redis.aclose()


@contextlib.asynccontextmanager
async def running_hub(redis: aioredis.Redis, settings: Settings) -> AsyncIterator[Hub]:
    """A hub on ``redis``, started and connected; closed at the end (``redis`` is the
    caller's to close)."""
    running = Hub(redis, settings)
    await running.start()
    try:
        await eventually(lambda: _true(running.healthy), what="the hub connecting")
        yield running
    finally:
        await running.close()


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


async def test_the_reader_reconnects_at_once_after_each_of_many_cuts() -> None:
    """Each cut of the pub/sub connection is a new outage: the reader's wait before
    connecting again starts from the shortest each time (it had grown to 2 s for good)."""
    server = PrivateRedis()  # its pub/sub connections are all the hub's: cut them freely
    server.start()
    redis = aioredis.Redis.from_url(server.url)
    took: list[float] = []
    try:
        async with running_hub(redis, load_settings({"JOBCAST_REDIS_PREFIX": "cuts"})) as running:
            for _cut in range(6):
                down = running.healthy_changed
                cut_at = time.monotonic()
                assert await redis.client_kill_filter(_type="pubsub") == 1
                await asyncio.wait_for(down.wait(), 5)  # the reader noticed
                await eventually(lambda: _true(running.healthy), what="the hub reconnecting")
                took.append(time.monotonic() - cut_at)
    finally:
        await redis.aclose()
        server.kill()
    assert max(took) < 1.0, took


async def _subscribe_calls(redis: aioredis.Redis) -> tuple[int, int]:
    stats = await redis.info("commandstats")
    return tuple(  # type: ignore[return-value]
        stats.get(f"cmdstat_{verb}", {}).get("calls", 0) for verb in ("subscribe", "unsubscribe")
    )


async def test_a_crowd_of_subscribers_is_one_subscribe_and_each_gets_its_channel() -> None:
    """Handshakes that come together subscribe together: a write for the crowd, not one
    each; a channel left and taken again at once stays subscribed; a subscriber cancelled
    while it waits leaves its channel behind it."""
    server = PrivateRedis()  # its command counts are the hub's alone
    server.start()
    redis = aioredis.Redis.from_url(server.url)
    settings = load_settings({"JOBCAST_REDIS_PREFIX": "crowd"})
    try:
        async with running_hub(redis, settings) as running:
            before = await _subscribe_calls(redis)
            async with contextlib.AsyncExitStack() as stack:
                channels = [settings.job_channel(f"j{i}") for i in range(200)]
                subs = await asyncio.gather(
                    *(stack.enter_async_context(running.subscribe(c)) for c in channels)
                )

                async def crowd_subscribed() -> int | None:
                    calls = (await _subscribe_calls(redis))[0] - before[0]
                    return calls or None

                # at once, but for a machine that holds the hub up past its ping's deadline:
                # it then connects again, and subscribes the crowd as it does
                calls = await eventually(crowd_subscribed, what="the crowd's SUBSCRIBE")
                assert calls <= 3, calls
                subscribed = before[0] + calls
                numsub = dict(await redis.pubsub_numsub(*channels))
                assert all(numsub[c.encode()] == 1 for c in channels), numsub
                for i in (0, 199):
                    assert await redis.publish(channels[i], message(1)) == 1
                    live = await asyncio.wait_for(subs[i].get(), 5)
                    assert isinstance(live, Live) and live.seq == 1

                async with running.subscribe(channels[0]):  # a second subscriber: no command
                    pass
                assert (await _subscribe_calls(redis))[0] == subscribed

                waiting = asyncio.create_task(running.subscribe("crowd:left").__aenter__())
                await asyncio.sleep(0)
                waiting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiting
            await eventually(
                lambda: _numsub_zero(redis, [*channels, "crowd:left"]),
                what="every channel unsubscribed",
            )
            _, unsubscribed = await _subscribe_calls(redis)
            assert 1 <= unsubscribed - before[1] <= 4, unsubscribed - before[1]
    finally:
        await redis.aclose()
        server.kill()


async def test_a_channel_taken_as_the_link_is_cut_is_subscribed_once_it_is_back() -> None:
    """A socket that subscribes just as the pub/sub connection is lost (its SUBSCRIBE
    written to a dead link, or to none) is subscribed when the reader connects again, and
    gets what is published from then on."""
    server = PrivateRedis()
    server.start()
    redis = aioredis.Redis.from_url(server.url)
    settings = load_settings({"JOBCAST_REDIS_PREFIX": "cut"})
    channel = settings.job_channel("j1")
    try:
        async with running_hub(redis, settings) as running:
            assert await redis.client_kill_filter(_type="pubsub") == 1
            async with running.subscribe(channel) as sub:
                await eventually(
                    lambda: _numsub_one(redis, channel), what="the channel subscribed again"
                )
                assert await redis.publish(channel, message(1)) == 1
                while not isinstance(item := await asyncio.wait_for(sub.get(), 5), Live):
                    pass  # the reconnect's resync comes first
                assert item.seq == 1
    finally:
        await redis.aclose()
        server.kill()


async def _numsub_one(redis: aioredis.Redis, channel: str) -> bool:
    return bool((await redis.pubsub_numsub(channel))[0][1] == 1)


async def _numsub_zero(redis: aioredis.Redis, channels: list[str]) -> bool:
    return all(n == 0 for _, n in await redis.pubsub_numsub(*channels))


@contextlib.asynccontextmanager
async def listening(dsn: str) -> AsyncIterator[tuple[asyncpg.Connection, list[str]]]:
    """A connection of its own that LISTENs on the fallback channel, and the payloads it has
    heard so far, in order."""
    heard: list[str] = []
    conn = await asyncpg.connect(dsn)
    try:
        await conn.add_listener(NOTIFY_CHANNEL, lambda *args: heard.append(str(args[-1])))
        yield conn, heard
    finally:
        await conn.close()


async def test_an_event_redis_refuses_is_announced_over_postgres(
    endpoints: Endpoints, new_database: DatabaseFactory
) -> None:
    """A worker that cannot reach Redis while the servers can: their pub/sub is up, so
    nobody asked for NOTIFYs, and the event must still reach them as a hint."""
    settings = load_settings({"JOBCAST_REDIS_PREFIX": f"pq{uuid.uuid4().hex[:8]}"})
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    dsn = await new_database()
    try:
        async with listening(dsn) as (_, heard), Store.open(dsn) as store:
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
        await dead.aclose()


class CountingRedis(aioredis.Redis):
    """A real Redis client that counts its round trips: commands and pipelines."""

    round_trips = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.round_trips += 1
        return await super().execute_command(*args, **options)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.round_trips += 1
        return super().pipeline(*args, **kwargs)


def progress(job_id: uuid.UUID, seq: int, owner_id: uuid.UUID) -> Event:
    return Event(job_id, seq, EventKind.PROGRESS, datetime.now(UTC), {"progress": seq}, owner_id)


async def test_the_publisher_sends_many_jobs_events_at_once_each_jobs_in_order(
    endpoints: Endpoints, new_database: DatabaseFactory
) -> None:
    settings = load_settings({"JOBCAST_REDIS_PREFIX": f"pb{uuid.uuid4().hex[:8]}"})
    redis = CountingRedis.from_url(endpoints.redis_url)
    listener = aioredis.Redis.from_url(endpoints.redis_url)
    pubsub = listener.pubsub()
    await pubsub.psubscribe(settings.job_channel("*"))
    owner, jobs, per_job = uuid.uuid4(), [uuid.uuid4() for _ in range(10)], 20
    try:
        async with Store.open(await new_database()) as store:
            publisher = Publisher(redis, settings, store)

            async def report(job_id: uuid.UUID) -> None:
                for seq in range(1, per_job + 1):
                    await publisher.publish(progress(job_id, seq, owner))

            await asyncio.gather(*(report(job_id) for job_id in jobs))
            await publisher.close()
        heard: dict[str, list[int]] = {str(job_id): [] for job_id in jobs}
        async with asyncio.timeout(10):
            async for msg in pubsub.listen():
                if msg["type"] == "pmessage":
                    body = orjson.loads(msg["data"])
                    heard[body["job_id"]].append(body["seq"])
                if sum(map(len, heard.values())) == len(jobs) * per_job:
                    break
    finally:
        await pubsub.aclose()
        await listener.aclose()
        await redis.aclose()
    assert all(seqs == list(range(1, per_job + 1)) for seqs in heard.values())
    # ten jobs reporting at once: their events share round trips (the script's first call
    # loads it: one more)
    assert redis.round_trips <= len(jobs) * per_job // 4


async def test_a_long_backlog_is_published_whole_and_in_order_after_redis_forgot_the_script(
    new_database: DatabaseFactory,
) -> None:
    """The publisher sends many messages a command (a script): one longer than a command
    holds goes in several, in order, and a Redis that lost its scripts (restarted, failed
    over) is given it again, with nothing lost."""
    server = PrivateRedis()  # its script cache is flushed: this test's alone
    server.start()
    settings = load_settings({"JOBCAST_REDIS_PREFIX": "backlog"})
    redis = CountingRedis.from_url(server.url)
    listener = aioredis.Redis.from_url(server.url)
    pubsub = listener.pubsub()
    await pubsub.psubscribe(settings.job_channel("*"), settings.owner_channel("*"))
    owner, jobs, per_job = uuid.uuid4(), [uuid.uuid4() for _ in range(3)], 300
    try:
        async with Store.open(await new_database()) as store:
            publisher = Publisher(redis, settings, store)
            await publisher.publish(progress(jobs[0], 1, owner))
            assert await publisher.flush(5)
            await redis.script_flush()
            before = redis.round_trips
            for seq in range(2, per_job + 1):  # handed over at once: one batch
                for job_id in jobs:
                    await publisher.publish(progress(job_id, seq, owner))
            for job_id in jobs[1:]:
                await publisher.publish(progress(job_id, 1, owner))
            await publisher.close()
        # 1,796 messages in four calls, the first refused (the script was gone) and its
        # load: six round trips, not one a message
        assert redis.round_trips - before <= 8, redis.round_trips - before
        on_job: dict[str, list[int]] = {str(job_id): [] for job_id in jobs}
        on_owner: list[tuple[str, int]] = []
        async with asyncio.timeout(10):
            async for msg in pubsub.listen():
                if msg["type"] == "pmessage":
                    body = orjson.loads(msg["data"])
                    if msg["pattern"] == settings.job_channel("*").encode():
                        on_job[body["job_id"]].append(body["seq"])
                    else:
                        on_owner.append((body["job_id"], body["seq"]))
                if len(on_owner) == len(jobs) * per_job:
                    break
    finally:
        await pubsub.aclose()
        await listener.aclose()
        await redis.aclose()
        server.kill()
    assert on_job[str(jobs[0])] == list(range(1, per_job + 1))
    for job_id in jobs[1:]:  # in the order handed over: 2 to 300, then 1
        assert on_job[str(job_id)] == [*range(2, per_job + 1), 1]
    assert [seq for job, seq in on_owner if job == str(jobs[0])] == list(range(1, per_job + 1))


class SlowScripts(aioredis.Redis):
    """A real Redis client whose every script call is answered 0.3 s late: a Redis that
    answers each command in time, but a long backlog takes longer than one timeout."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if args and str(args[0]).upper() in ("EVALSHA", "EVAL"):
            await asyncio.sleep(0.3)
        return await super().execute_command(*args, **options)


@dataclass
class Backlog:
    """What became of a backlog handed to a publisher at once: the seqs a subscriber heard
    over Redis and those announced over NOTIFY, each in the order they came, and how long
    the publisher took to send them."""

    heard: list[int]
    notified: list[int]
    took_s: float


async def publish_backlog(
    redis: aioredis.Redis, endpoints: Endpoints, dsn: str, prefix: str, events: int = 1500
) -> Backlog:
    """Hand ``events`` progress events of one job to a publisher on ``redis`` at once (a
    publish timeout of 1 s), and gather where each went."""
    settings = load_settings(
        {"JOBCAST_REDIS_PREFIX": prefix, "JOBCAST_REDIS_PUBLISH_TIMEOUT_S": "1"}
    )
    listener = aioredis.Redis.from_url(endpoints.redis_url)
    pubsub = listener.pubsub()
    await pubsub.psubscribe(settings.job_channel("*"))
    notified: list[int] = []
    notices = await asyncpg.connect(dsn)
    owner, job_id = uuid.uuid4(), uuid.uuid4()
    heard: list[int] = []
    try:
        await notices.add_listener(
            NOTIFY_CHANNEL, lambda *args: notified.append(int(str(args[-1]).split()[1]))
        )
        async with Store.open(dsn) as store:
            publisher = Publisher(redis, settings, store)
            for seq in range(1, events + 1):  # handed over at once: one batch
                await publisher.publish(progress(job_id, seq, owner))
            started = time.monotonic()
            assert await publisher.flush(20)
            took_s = time.monotonic() - started
            await publisher.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                async for msg in pubsub.listen():
                    if msg["type"] == "pmessage":
                        heard.append(orjson.loads(msg["data"])["seq"])
                    if len(heard) == events:
                        break
        await eventually(
            lambda: _true(len(heard) + len(notified) >= events),
            what="every event published or announced",
        )
    finally:
        await notices.close()
        await pubsub.aclose()
        await listener.aclose()
        await redis.aclose()
    return Backlog(heard, notified, took_s)


async def test_a_backlog_longer_than_one_publish_timeout_is_published_not_announced(
    endpoints: Endpoints, new_database: DatabaseFactory
) -> None:
    """Each command of a long backlog has the whole publish timeout: a worker whose jobs
    said more at once than Redis takes in one timeout does not take Redis for down and
    send every event over NOTIFY instead."""
    redis = SlowScripts.from_url(endpoints.redis_url)
    backlog = await publish_backlog(
        redis, endpoints, await new_database(), f"ps{uuid.uuid4().hex[:8]}"
    )
    assert backlog.notified == [], f"{len(backlog.notified)} events announced over NOTIFY"
    assert backlog.heard == list(range(1, 1501))
    # six commands of 250 events (500 messages), 0.3 s each: longer than one timeout in all
    assert backlog.took_s > 1.5


class ThirdScriptUnanswered(aioredis.Redis):
    """A real Redis client whose third script call gets no answer within the publish
    timeout (it is never sent); every other is answered at once."""

    calls = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if args and str(args[0]).upper() in ("EVALSHA", "EVAL"):
            self.calls += 1
            if self.calls == 3:
                await asyncio.sleep(5)
        return await super().execute_command(*args, **options)


async def test_a_backlog_command_redis_does_not_take_goes_over_notify_with_those_after_it(
    endpoints: Endpoints, new_database: DatabaseFactory
) -> None:
    """What the commands before it published stays published, and is not announced again;
    that command's events and those after it go over NOTIFY, in order."""
    redis = ThirdScriptUnanswered.from_url(endpoints.redis_url)
    backlog = await publish_backlog(
        redis, endpoints, await new_database(), f"pu{uuid.uuid4().hex[:8]}"
    )
    # six commands of 250 events each
    assert backlog.heard == list(range(1, 501))  # the first two commands
    assert backlog.notified == list(range(501, 1501))


async def test_events_the_publisher_cannot_send_are_announced_over_postgres_in_order(
    endpoints: Endpoints, new_database: DatabaseFactory
) -> None:
    settings = load_settings({"JOBCAST_REDIS_PREFIX": f"pd{uuid.uuid4().hex[:8]}"})
    dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    dsn = await new_database()
    owner, job_id = uuid.uuid4(), uuid.uuid4()
    try:
        async with listening(dsn) as (_, heard), Store.open(dsn) as store:
            publisher = Publisher(dead, settings, store)
            for seq in (1, 2, 3):  # each call returns: the event is safe in Postgres
                await publisher.publish(progress(job_id, seq, owner))
            await publisher.close()

            async def announced() -> bool:
                return heard == [f"{job_id} {seq} {owner} progress" for seq in (1, 2, 3)]

            await eventually(announced, what="a NOTIFY for each unpublished event, in order")
    finally:
        await dead.aclose()


async def test_an_event_that_cannot_be_sent_is_dropped_and_the_publisher_goes_on(
    endpoints: Endpoints, new_database: DatabaseFactory
) -> None:
    settings = load_settings({"JOBCAST_REDIS_PREFIX": f"pf{uuid.uuid4().hex[:8]}"})
    redis = aioredis.Redis.from_url(endpoints.redis_url)
    listener = aioredis.Redis.from_url(endpoints.redis_url)
    pubsub = listener.pubsub()
    owner, job_id = uuid.uuid4(), uuid.uuid4()
    await pubsub.subscribe(settings.job_channel(job_id))
    try:
        async with Store.open(await new_database()) as store:
            publisher = Publisher(redis, settings, store)
            unwritable = Event(
                job_id, 1, EventKind.PROGRESS, datetime.now(UTC), {"progress": object()}, owner
            )
            await publisher.publish(unwritable)  # logged: a caller never waits for a publish
            await publisher.publish(progress(job_id, 2, owner))  # the next one still goes out
            await publisher.close()
        async with asyncio.timeout(5):
            async for msg in pubsub.listen():
                if msg["type"] == "message":
                    assert orjson.loads(msg["data"])["seq"] == 2
                    break
    finally:
        await pubsub.aclose()
        await listener.aclose()
        await redis.aclose()


async def _started_listener_first(
    redis_url: str, dsn: str, settings: Settings | None = None
) -> tuple[Hub, Listener, aioredis.Redis]:
    """The listener connected before the hub has even begun to: the race a web process's
    start may lose either way, made to go the listener's way."""
    settings = settings or load_settings({"JOBCAST_REDIS_PREFIX": f"hub{uuid.uuid4().hex[:8]}"})
    redis = aioredis.Redis.from_url(redis_url, socket_connect_timeout=1)
    hub = Hub(redis, settings)
    listener = Listener(dsn, hub, settings)
    await listener.start()
    await eventually(lambda: _true(listener.connected), what="the listener connecting")
    await hub.start()
    return hub, listener, redis


async def test_a_hub_still_connecting_is_not_taken_for_down(
    endpoints: Endpoints, new_database: DatabaseFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A web process's listener that connects before its hub waits for the hub's first try:
    asking writers for NOTIFYs then would resync every socket opened in the first second."""
    caplog.set_level(logging.INFO, logger="jobcast.listener")
    hub, listener, redis = await _started_listener_first(endpoints.redis_url, await new_database())
    try:
        await eventually(lambda: _true(hub.healthy), what="the hub connecting")
        await asyncio.sleep(0.5)  # the listener's next look at the hub, had it not waited
        assert not listener.asking
        assert "asked writers for NOTIFYs" not in caplog.text
    finally:
        await listener.close()
        await hub.close()
        await redis.aclose()


async def test_a_hub_whose_first_try_fails_has_the_listener_ask_for_notifies(
    new_database: DatabaseFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jobcast.listener")
    nowhere = f"redis://127.0.0.1:{free_port()}"  # nothing listens: the first try fails
    hub, listener, redis = await _started_listener_first(nowhere, await new_database())
    try:
        await eventually(lambda: _true(listener.asking), what="the listener asking for NOTIFYs")
        assert "asked writers for NOTIFYs" in caplog.text
        assert not hub.healthy
    finally:
        await listener.close()
        await hub.close()
        await redis.aclose()


async def test_a_notify_carries_its_event_to_subscribers_and_one_too_large_comes_as_a_hint(
    new_database: DatabaseFactory,
) -> None:
    """While pub/sub is down, a state change's NOTIFY carries its event: the job's and the
    owner's subscribers get it as Redis would have brought it (the stored event's wire
    JSON), with no read of Postgres. An event too large for a NOTIFY comes as a hint, which
    each subscriber that lacks it reads from job_events."""
    settings = load_settings({"JOBCAST_REDIS_PREFIX": f"nc{uuid.uuid4().hex[:8]}"})
    nowhere = f"redis://127.0.0.1:{free_port()}"  # pub/sub down from the start
    dsn = await new_database()
    hub, listener, redis = await _started_listener_first(nowhere, dsn, settings)
    try:
        await eventually(lambda: _true(listener.asking), what="the listener asking for NOTIFYs")
        async with Store.open(dsn) as store:
            owner = await store.create_owner(uuid.uuid4().hex)
            async with hub.subscribe(settings.owner_channel(owner)) as feed:
                created = await store.create_job(
                    owner_id=owner, job_type=load_registry().get("noop"), params={}
                )
                assert created is not None
                job_id = created.job.id
                # the creation's NOTIFY heard before the job's channel is followed: else,
                # late on a busy machine, its subscriber would hear it too
                async with asyncio.timeout(5):
                    pending = await next_announced(feed)
                async with hub.subscribe(settings.job_channel(job_id)) as sub:
                    assert await store.cancel(job_id, owner)
                    big = Event(
                        job_id, 99, EventKind.METADATA, datetime.now(UTC), {"x": "a" * 8000}, owner
                    )
                    await store.notify_event(big)
                    async with asyncio.timeout(5):
                        cancelled, hint = await next_announced(sub), await next_announced(sub)
                        cancelled_too = await next_announced(feed)
            stored = await store.events_after(job_id, 0)
    finally:
        await listener.close()
        await hub.close()
        await redis.aclose()
    assert [e.seq for e in stored] == [1, 2]
    assert cancelled == cancelled_too == live_of(stored[1])
    assert pending == live_of(stored[0])
    assert isinstance(cancelled, Live) and cancelled.final
    assert hint == Hint(job_id=str(job_id), seq=99)


async def next_announced(sub: Subscription) -> Item:
    """The next event or hint of ``sub``, past the catch-ups the listener asks of every
    subscriber just after it asked for NOTIFYs (a ``Resync`` at once, another a second on)."""
    while isinstance(item := await sub.get(), Resync):
        pass
    return item


async def test_a_statements_notice_carries_its_event_in_any_session_zone(
    new_database: DatabaseFactory,
) -> None:
    """schema.sql's ``jobcast_notice``, which every state change's NOTIFY says: the event,
    its time the same instant whatever the session's zone; its ids alone past NOTIFY's cap,
    or where it is not to carry the event."""
    conn = await asyncpg.connect(await new_database())
    job_id, owner = uuid.uuid4(), uuid.uuid4()
    small = {"status": "running", "message": 'é ✓ "quoted", a b'}
    large = {"status": "running", "message": "a" * 8000}
    try:
        await conn.execute("SET TIME ZONE 'America/New_York'")

        async def said(data: dict[str, Any], carry: bool) -> tuple[datetime, str]:
            at, payload = await conn.fetchrow(
                "SELECT t, jobcast_notice($1, 3, $2, 'status', t, $3::jsonb, $4)"
                " FROM (SELECT clock_timestamp() AS t) n",
                job_id,
                owner,
                orjson.dumps(data).decode(),
                carry,
            )
            return at, payload

        (at, carried), (_, too_large), (_, not_to_carry) = [
            await said(small, True),
            await said(large, True),
            await said(small, False),
        ]
    finally:
        await conn.close()
    got = of_notice(carried)
    assert (got.job_id, got.seq, got.owner_id, got.kind) == (str(job_id), 3, str(owner), "status")
    assert got.event is not None and (got.event.at, got.event.data) == (at, small)
    assert too_large == not_to_carry == f"{job_id} 3 {owner} status"


async def test_while_an_earlier_versions_process_asks_every_notify_says_ids_alone(
    new_database: DatabaseFactory,
) -> None:
    """A process of an earlier version reads a NOTIFY's ids and nothing more (an event after
    them is a payload it drops): while one asks for NOTIFYs, as during a rolling upgrade,
    a state change's NOTIFY says its ids alone; once only this version's ask, the event."""
    dsn = await new_database()
    async with listening(dsn) as (conn, heard), Store.open(dsn) as store:
        owner = await store.create_owner(uuid.uuid4().hex)
        # as an earlier version asks: its columns alone (reads_events takes its default)
        await conn.execute(
            "INSERT INTO fallback_listeners (holder, expires_at) VALUES ('old', now() + '1 h')"
        )
        await conn.execute(QUERIES["want_notify"], "new", 3600)
        created = await store.create_job(
            owner_id=owner, job_type=load_registry().get("noop"), params={}
        )
        assert created is not None
        job_id = created.job.id
        await conn.execute("DELETE FROM fallback_listeners WHERE holder = 'old'")
        assert await store.cancel(job_id, owner)

        async def both() -> bool:
            return len(heard) >= 2

        await eventually(both, what="the NOTIFYs of the job's two events")
    assert heard[0] == f"{job_id} 1 {owner} status"
    carried = of_notice(heard[1])
    assert carried.seq == 2 and carried.event is not None
    assert carried.event.data["status"] == "cancelled"


async def _pubsub_replaced(server: PrivateRedis, before: set[str]) -> bool:
    """One pub/sub connection on the server, and not the one of ``before``."""
    now = await server.pubsub_clients()
    return len(now) == 1 and not now & before


async def _read_again_on_a_new_connection(
    running: Hub, server: PrivateRedis, before: set[str]
) -> None:
    await eventually(lambda: _true(running.healthy), what="the hub reading again")
    await eventually(
        lambda: _pubsub_replaced(server, before), what="the reader on a new connection"
    )


async def test_a_pubsub_link_gone_silent_is_read_again_after_the_pings_deadline() -> None:
    """The reader's reads wait with no deadline of their own: a link that stops answering
    without closing is noticed by the missing pong (no circuit here to notice it sooner),
    and once it answers again the reader is on a new connection, which gets what is
    published."""
    server = PrivateRedis()
    server.start()
    proxy = await SilentProxy(server.url).start()
    redis = aioredis.Redis.from_url(proxy.url)  # no socket timeout and no circuit
    settings = load_settings({"JOBCAST_REDIS_PREFIX": "mute"})
    channel = settings.job_channel("j1")
    try:
        async with running_hub(redis, settings) as running:
            before = await server.pubsub_clients()
            async with running.subscribe(channel) as sub:
                down = running.healthy_changed
                proxy.silence()
                silenced = time.monotonic()
                await asyncio.wait_for(down.wait(), 10)
                noticed_s = time.monotonic() - silenced
                assert not running.healthy
                proxy.resume()
                await _read_again_on_a_new_connection(running, server, before)
                direct = aioredis.Redis.from_url(server.url)
                try:
                    assert await direct.publish(channel, message(7)) == 1
                finally:
                    await direct.aclose()
                while not isinstance(item := await asyncio.wait_for(sub.get(), 5), Live):
                    pass  # the reconnect's resync comes first
                assert item.seq == 7
    finally:
        await redis.aclose()
        await proxy.close()
        server.kill()
    # the ping's deadline (3 s since the last sign of life) and one look of the reader's
    assert 2.0 < noticed_s < 6.0, noticed_s


async def test_a_tripped_circuit_has_the_reader_connect_again_once_it_closes() -> None:
    """A Redis call of the process that times out opens its circuit: the hub takes pub/sub
    for down at once, and its reader, waiting on the silent link with no deadline, leaves
    it, and subscribes again on a new connection once the circuit's probe is answered."""
    server = PrivateRedis()
    server.start()
    proxy = await SilentProxy(server.url).start()
    link = RedisLink(proxy.url, 1.0, 1.0, 0.2, 60)
    circuit = Circuit(link, "hub-test")
    redis = link.client(circuit)
    settings = load_settings({"JOBCAST_REDIS_PREFIX": "trip"})
    try:
        async with running_hub(redis, settings) as running:
            before = await server.pubsub_clients()
            proxy.silence()
            circuit.trip("a call timed out")
            assert not running.healthy
            await asyncio.sleep(0.8)  # within the ping's deadline: only the circuit tells
            proxy.resume()
            await eventually(lambda: _true(not circuit.is_open), what="the circuit closing")
            await _read_again_on_a_new_connection(running, server, before)
    finally:
        await circuit.close()
        await redis.aclose()
        await proxy.close()
        server.kill()


async def test_the_pubsub_connection_goes_back_to_the_pool_with_its_socket_timeout() -> None:
    """The reader takes the socket timeout off its connection while it reads, and gives it
    back before the pool has the connection again: a command that then gets it from the
    pool on a silent link times out instead of waiting forever."""
    server = PrivateRedis()
    server.start()
    proxy = await SilentProxy(server.url).start()
    redis = aioredis.Redis.from_url(proxy.url, socket_timeout=0.5)
    try:
        async with running_hub(redis, load_settings({"JOBCAST_REDIS_PREFIX": "back"})) as running:
            await running.close()  # its connection back in the pool, and the ping's
            proxy.silence()
            calls = [redis.get(f"k{i}") for i in range(4)]  # every idle connection taken
            outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
            assert all(isinstance(o, RedisTimeoutError) for o in outcomes), outcomes
    finally:
        await redis.aclose()
        await proxy.close()
        server.kill()


async def test_a_reading_cancelled_from_outside_is_a_lost_link_not_the_readers_end() -> None:
    """The reader's reading runs in a task of its own: cancelled by anything but the reader,
    it is read again, as after a cut, and the reader goes on."""
    server = PrivateRedis()
    server.start()
    redis = aioredis.Redis.from_url(server.url)
    try:
        async with running_hub(redis, load_settings({"JOBCAST_REDIS_PREFIX": "stray"})) as running:
            before = await server.pubsub_clients()
            down = running.healthy_changed
            reading = [t for t in asyncio.all_tasks() if t.get_name() == "hub-messages"]
            assert len(reading) == 1
            reading[0].cancel()
            await asyncio.wait_for(down.wait(), 5)
            await _read_again_on_a_new_connection(running, server, before)
    finally:
        await redis.aclose()
        server.kill()
