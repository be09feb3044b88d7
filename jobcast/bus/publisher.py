"""The worker's side of the bus: publish persisted events on Redis, or announce them over NOTIFY.

Every event is published (after it is persisted) on its job's channel, and status
changes and step boundaries also on the owner's channel. When Redis refuses an event
it is announced over Postgres NOTIFY instead, so server processes whose own pub/sub is
healthy still learn of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobcast import metrics
from jobcast.bus.message import channels, encode
from jobcast.errors import StorageUnavailable
from jobcast.model import Event
from jobcast.settings import Settings
from jobcast.store import Store

log = logging.getLogger(__name__)


async def _publish_all(redis: aioredis.Redis, settings: Settings, events: list[Event]) -> None:
    """Send persisted events to every server process, in order: one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for event in events:
            text = encode(event)
            for channel in channels(settings, event):
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
