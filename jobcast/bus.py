"""Live events between processes: workers publish on Redis, each server process fans out.

A worker publishes every event (after it is persisted) on its job's channel,
and status events also on the owner's channel. Each server process holds one
Redis pub/sub connection in a ``Hub``: local websockets subscribe to channels
through it, each with its own bounded queue, so one slow browser never delays
another. The Postgres NOTIFY listener feeds the same hub with ``Hint``s, so a
subscriber learns of every event even while Redis pub/sub is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobcast import metrics
from jobcast.errors import StorageUnavailable
from jobcast.model import Event, EventKind, dumps
from jobcast.settings import Settings
from jobcast.store import Store

log = logging.getLogger(__name__)

_PING_INTERVAL_S = 1.0
_PING_DEADLINE_S = 3.0


def _channels(settings: Settings, event: Event) -> list[str]:
    """The job's channel; and the owner's feed (toasts, live job lists), which gets status
    changes and step boundaries."""
    channels = [settings.job_channel(event.job_id)]
    if event.kind is not EventKind.PROGRESS and event.owner_id is not None:
        channels.append(settings.owner_channel(event.owner_id))
    return channels


async def _publish_all(redis: aioredis.Redis, settings: Settings, events: list[Event]) -> None:
    """Send persisted events to every server process, in order: one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for event in events:
            text = dumps(event.wire())
            for channel in _channels(settings, event):
                pipe.publish(channel, text)
        await pipe.execute()
    for event in events:
        metrics.EVENTS_PUBLISHED.labels(event.kind.value).inc()


async def publish_quietly(
    redis: aioredis.Redis, settings: Settings, store: Store, event: Event
) -> None:
    """Publish; when Redis fails, say over Postgres NOTIFY that the event exists.

    The event is safe in Postgres either way. Writers NOTIFY on their own only while a
    server process asks (its pub/sub is down); a server whose pub/sub is up while this
    process cannot reach Redis learns of the event from this NOTIFY instead.
    """
    try:
        await _publish_all(redis, settings, [event])
    except (RedisError, OSError) as exc:
        await _announce_instead(store, [event], exc)


async def _announce_instead(store: Store, events: list[Event], exc: BaseException) -> None:
    """Redis refused these events: NOTIFY each, in order."""
    metrics.BACKEND_ERRORS.labels("redis").inc()
    for event in events:
        log.warning(
            "job %s: event %d not published (%s); NOTIFY carries it", event.job_id, event.seq, exc
        )
        try:
            await store.notify_event(event)
        except StorageUnavailable as pg_exc:
            log.warning("job %s: no NOTIFY either (%s)", event.job_id, pg_exc)


class Publisher:
    """Publishes a process's events, as many per Redis round trip as are waiting.

    Events handed over while a send is in flight go out together in the next one, in
    the order they came, so the events of one job keep their order. Each caller returns
    once its event was sent, or, when Redis refused it, announced over NOTIFY
    (``publish_quietly``). With one event at a time this is one round trip each, as
    before; with many jobs reporting at once it is far fewer.
    """

    def __init__(self, redis: aioredis.Redis, settings: Settings, store: Store) -> None:
        self._redis = redis
        self._settings = settings
        self._store = store
        self._waiting: list[tuple[Event, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def publish(self, event: Event) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._send_forever(), name="publisher")
        sent = asyncio.get_running_loop().create_future()
        self._waiting.append((event, sent))
        self._wake.set()
        await sent

    async def close(self) -> None:
        """Send what is waiting, then stop."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        if self._waiting:
            await self._send(self._take())

    def _take(self) -> list[tuple[Event, asyncio.Future[None]]]:
        batch, self._waiting = self._waiting, []
        return batch

    async def _send_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                await self._send(self._take())

    async def _send(self, batch: list[tuple[Event, asyncio.Future[None]]]) -> None:
        events = [event for event, _sent in batch]
        fault: Exception | None = None
        try:
            try:
                await _publish_all(self._redis, self._settings, events)
            except (RedisError, OSError) as exc:
                await _announce_instead(self._store, events, exc)
        except asyncio.CancelledError:
            self._waiting[:0] = batch  # closing: close() sends them
            raise
        except Exception as exc:  # anything else: each caller hears of it, the sender goes on
            fault = exc
        for _event, sent in batch:
            if sent.done():
                continue
            if fault is None:
                sent.set_result(None)
            else:
                sent.set_exception(fault)


@dataclass(frozen=True, slots=True)
class Live:
    """An event as it came over Redis: its seq, whether it ends the job, and its JSON text."""

    job_id: str
    seq: int
    final: bool
    text: str
    at: str = ""


@dataclass(frozen=True, slots=True)
class Hint:
    """Postgres says this job has an event with this seq: read it from job_events if missing."""

    job_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class Resync:
    """The live channel was down for a while: catch up from Postgres."""


Item = Live | Hint | Resync


class SlowConsumer(Exception):
    """The subscriber fell further behind than its queue holds."""


class Subscription:
    """One local subscriber's bounded queue."""

    def __init__(self, channel: str, size: int) -> None:
        self.channel = channel
        self._queue: asyncio.Queue[Item] = asyncio.Queue(size)
        self.overflowed = False

    def deliver(self, item: Item) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            # drop the subscriber rather than the event: it resumes from its last seq
            self.overflowed = True
            self._queue = asyncio.Queue(1)
            self._queue.put_nowait(Resync())

    async def get(self) -> Item:
        item = await self._queue.get()
        if self.overflowed:
            raise SlowConsumer(self.channel)
        return item


def _parse(data: bytes | str) -> Live | None:
    try:
        body: dict[str, Any] = orjson.loads(data)
        final = body["kind"] == "status" and body["status"] in ("completed", "failed", "cancelled")
        text = data.decode() if isinstance(data, bytes) else data
        return Live(
            job_id=body["job_id"],
            seq=int(body["seq"]),
            final=final,
            text=text,
            at=body.get("at", ""),
        )
    except (ValueError, KeyError, TypeError):
        log.warning("dropped a malformed pub/sub message")
        return None


def _observe_fanout(at: str) -> None:
    try:
        sent = datetime.fromisoformat(at).timestamp()
    except ValueError:
        return
    metrics.FANOUT_LATENCY.observe(max(0.0, time.time() - sent))


class Hub:
    """This process's single Redis pub/sub connection and its local subscribers."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self._subs: dict[str, set[Subscription]] = {}
        self._pubsub: Any = None
        self._control = f"{settings.redis_prefix}:hub-ping"
        self._last_pong = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self.healthy = False
        self.healthy_changed = asyncio.Event()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._read_forever(), name="hub-reader"),
            asyncio.create_task(self._ping_forever(), name="hub-ping"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._drop_pubsub()

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        """Subscribe upstream on the first local subscriber, unsubscribe on the last."""
        sub = Subscription(channel, self._settings.ws_queue_size)
        subs = self._subs.setdefault(channel, set())
        subs.add(sub)
        if len(subs) == 1:
            await self._upstream("subscribe", channel)
        try:
            yield sub
        finally:
            subs.discard(sub)
            if not subs:
                del self._subs[channel]
                await self._upstream("unsubscribe", channel)

    def deliver(self, channel: str, item: Item) -> None:
        for sub in tuple(self._subs.get(channel, ())):
            sub.deliver(item)

    def deliver_all(self, item: Item) -> None:
        for subs in tuple(self._subs.values()):
            for sub in tuple(subs):
                sub.deliver(item)

    async def _upstream(self, verb: str, channel: str) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            return  # not connected: the reader subscribes to every channel when it reconnects
        try:
            await getattr(pubsub, verb)(channel)
        except (RedisError, OSError) as exc:
            log.warning("pub/sub %s failed (%s); reconnecting", verb, exc)
            await self._drop_pubsub()

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    def _set_healthy(self, healthy: bool) -> None:
        if healthy != self.healthy:
            self.healthy = healthy
            log.log(
                logging.INFO if healthy else logging.WARNING,
                "redis pub/sub %s",
                "connected" if healthy else "down",
            )
            self.healthy_changed.set()
            self.healthy_changed = asyncio.Event()

    async def _read_forever(self) -> None:
        backoff_s = 0.1
        while True:
            try:
                await self._read_once()
            except (RedisError, OSError, TimeoutError) as exc:
                metrics.BACKEND_ERRORS.labels("redis").inc()
                log.debug("pub/sub connection lost: %s", exc)
            self._set_healthy(False)
            await self._drop_pubsub()
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 2.0)

    async def _read_once(self) -> None:
        pubsub = self._redis.pubsub()
        self._pubsub = pubsub
        await pubsub.subscribe(self._control, *self._subs)
        self._last_pong = time.monotonic()
        self._set_healthy(True)
        # whatever was published while we were away is lost to pub/sub: catch up from Postgres
        self.deliver_all(Resync())
        while self._pubsub is pubsub:
            if time.monotonic() - self._last_pong > _PING_DEADLINE_S:
                raise TimeoutError("no answer to the pub/sub ping: the connection is half-open")
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message is None or message["type"] != "message":
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            if channel == self._control:
                self._last_pong = time.monotonic()
                continue
            live = _parse(message["data"])
            if live is not None:
                self.deliver(channel, live)
                _observe_fanout(live.at)

    async def _ping_forever(self) -> None:
        while True:
            await asyncio.sleep(_PING_INTERVAL_S)
            if self._pubsub is None:
                continue
            try:
                await asyncio.wait_for(
                    self._redis.publish(self._control, b"ping"), _PING_DEADLINE_S
                )
            except (RedisError, OSError, TimeoutError):
                pass  # the reader notices the missing pong and reconnects
