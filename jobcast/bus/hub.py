"""The server's side of the bus: one Redis pub/sub connection per process, fanned out locally.

Each server process holds one Redis pub/sub connection in a ``Hub``: local websockets
subscribe to channels through it, each with its own bounded queue, so one slow browser
never delays another. The Postgres NOTIFY listener feeds the same hub with the events
NOTIFYs carry (``Hint``s for those too large to), so a subscriber learns of every event
even while Redis pub/sub is down.

A silent link is not seen by pub/sub itself: a SUBSCRIBE seems to succeed and a read
just waits. So besides its own ping, the hub follows the process's Redis circuit: once
any Redis call of the process times out, pub/sub is taken for down at once (the
listener asks for NOTIFYs) and the reader connects again when the circuit closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from jobcast import metrics
from jobcast.bus.message import Item, Live, Resync, parse
from jobcast.inbox import Inbox
from jobcast.links import circuit_of
from jobcast.settings import Settings
from jobcast.tasks import Supervised, raise_swallowed_cancel, stop_task

log = logging.getLogger(__name__)

_PING_INTERVAL_S = 1.0
_PING_DEADLINE_S = 3.0
# how often the reader looks whether its link went silent or the process's circuit opened
_WATCH_INTERVAL_S = 0.5


class SlowConsumer(Exception):
    """The subscriber fell further behind than its queue holds."""


class Subscription:
    """One local subscriber's bounded queue; without ``progress``, progress events are
    not queued at all (an owner's feed that only toasts). Thousands wait on jobs with
    nothing to say, so an idle one holds no buffer (``jobcast.inbox``)."""

    __slots__ = ("_inbox", "_size", "channel", "overflowed", "progress")

    def __init__(self, channel: str, size: int, *, progress: bool = True) -> None:
        self.channel = channel
        self.progress = progress
        self.overflowed = False
        self._size = size
        self._inbox: Inbox[Item] = Inbox()

    def deliver(self, item: Item) -> None:
        if self.overflowed or (not self.progress and isinstance(item, Live) and item.progress):
            return
        if len(self._inbox) >= self._size:
            # drop the subscriber rather than the event: it resumes from its last seq
            self.overflowed = True
            metrics.SLOW_CONSUMER_DROPS.inc()
            self._inbox.clear()
            item = Resync()
        self._inbox.put_nowait(item)

    async def get(self) -> Item:
        item = await self._inbox.get()
        if self.overflowed:
            raise SlowConsumer(self.channel)
        return item


class _Subscribed:
    """``Hub.subscribe``'s context: a class, not a generator, for it is held as long as its
    socket is open (a suspended generator's frame costs more than this object)."""

    __slots__ = ("_hub", "_sub")

    def __init__(self, hub: Hub, sub: Subscription) -> None:
        self._hub = hub
        self._sub = sub

    async def __aenter__(self) -> Subscription:
        await self._hub._add(self._sub)
        return self._sub

    async def __aexit__(self, *_exc: object) -> None:
        self._hub._remove(self._sub)


def observe_fanout(at: str) -> None:
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
        # what the pub/sub connection was last told to listen to, the channels whose
        # subscribers changed since, and the handshakes waiting for it to be told
        self._sent: set[str] = set()
        self._changed: set[str] = set()
        self._syncs: list[asyncio.Future[None]] = []
        self._syncing: asyncio.Task[None] | None = None
        self._control = f"{settings.redis_prefix}:hub-ping"
        self._last_pong = 0.0
        self._connected_at = 0.0  # monotonic time the reader last subscribed
        # the pub/sub connection and its socket timeout, while its reads wait with none
        self._untimed: tuple[Any, float | None] | None = None
        self._circuit = circuit_of(redis)
        if self._circuit is not None:
            self._circuit.on_trip(lambda: self._set_healthy(False))
        self.healthy = False
        self.healthy_changed = asyncio.Event()
        # set once the reader's first connection has succeeded or failed: until then the
        # hub is not down, only starting (the listener waits for it before asking NOTIFYs)
        self.tried = asyncio.Event()
        self.tasks = (
            Supervised("hub-reader", self._read_forever),
            Supervised("hub-ping", self._ping_forever),
        )

    async def start(self) -> None:
        for task in self.tasks:
            task.start()

    async def close(self) -> None:
        for task in self.tasks:
            await task.stop()
        if self._syncing is not None:
            await stop_task(self._syncing)
        await self._drop_pubsub()

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def subscribe(self, channel: str, *, progress: bool = True) -> _Subscribed:
        """``async with hub.subscribe(channel) as sub``: subscribes upstream on the first
        local subscriber of a channel, unsubscribes on the last."""
        return _Subscribed(
            self, Subscription(channel, self._settings.ws_queue_size, progress=progress)
        )

    async def _add(self, sub: Subscription) -> None:
        subs = self._subs.setdefault(sub.channel, set())
        subs.add(sub)
        if len(subs) == 1:
            self._changed.add(sub.channel)
            try:
                await self._sync()
            except BaseException:  # cancelled: no socket will leave it, so it leaves now
                if self._forget(sub):
                    self._changed.add(sub.channel)
                    self._start_sync()
                raise

    def _forget(self, sub: Subscription) -> bool:
        """Take a subscriber off its channel; True when it was the channel's last."""
        subs = self._subs.get(sub.channel)
        if subs is None or sub not in subs:
            return False
        subs.discard(sub)
        if subs:
            return False
        del self._subs[sub.channel]
        return True

    def _remove(self, sub: Subscription) -> None:
        if self._forget(sub):  # no need to wait for the pub/sub connection to be told
            self._changed.add(sub.channel)
            self._start_sync()

    async def _sync(self) -> None:
        """Return once the pub/sub connection has been told of every change made so far.

        The channels that sockets opened and left meanwhile go in one SUBSCRIBE and one
        UNSUBSCRIBE: a crowd of handshakes costs a write, not a write each. A channel left
        and taken again before its turn costs none."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._syncs.append(done)
        self._start_sync()
        await done

    def _start_sync(self) -> None:
        if self._syncing is None:
            self._syncing = asyncio.create_task(self._sync_all(), name="hub-subscriptions")

    async def _sync_all(self) -> None:
        waiting: list[asyncio.Future[None]] = []
        try:
            while self._changed or self._syncs:
                waiting, self._syncs = self._syncs, []
                changed, self._changed = self._changed, set()
                await self._tell_upstream(changed)
                for done in waiting:
                    if not done.done():
                        done.set_result(None)
                waiting = []
        except BaseException:  # stopped midway (the hub closing): none waits forever
            for done in waiting + self._syncs:
                done.cancel()
            self._syncs = []
            raise
        finally:
            self._syncing = None

    async def _tell_upstream(self, changed: set[str]) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            return  # not connected: the reader subscribes to every channel when it reconnects
        wanted = [c for c in changed if c in self._subs and c not in self._sent]
        unwanted = [c for c in changed if c not in self._subs and c in self._sent]
        try:
            if unwanted:
                self._sent.difference_update(unwanted)
                await pubsub.unsubscribe(*unwanted)
            if wanted:
                self._sent.update(wanted)
                await pubsub.subscribe(*wanted)
        except (RedisError, OSError) as exc:
            log.warning("pub/sub (un)subscribe failed (%s); reconnecting", exc)
            await self._drop_pubsub()
        except AttributeError:
            # the reader closed this connection while the (un)subscribe opened it, and
            # redis-py then looks for the connection it just lost (its connect announces
            # a connection that is no longer there). The reader subscribes to every channel
            # when it connects again; the same error from a connection still in use is a
            # bug of its own, and goes on
            if self._pubsub is pubsub:
                raise
            log.info("pub/sub (un)subscribe met the connection's close; the reader resubscribes")

    def heard_here(self, channel: str) -> bool:
        """Whether a local subscriber follows ``channel``."""
        return channel in self._subs

    def deliver(self, channel: str, item: Item) -> None:
        for sub in tuple(self._subs.get(channel, ())):
            sub.deliver(item)

    def deliver_all(self, item: Item) -> None:
        for subs in tuple(self._subs.values()):
            for sub in tuple(subs):
                sub.deliver(item)

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        self._restore_timeout()
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
        """Read pub/sub, connecting again whenever the connection is lost. Whatever ends
        this loop (an error no connection loss explains) leaves the hub unhealthy first, so
        the listener asks for NOTIFYs while the reader is restarted."""
        backoff_s = 0.1
        try:
            while True:
                raise_swallowed_cancel()
                tried_at = time.monotonic()
                try:
                    await self._read_once()
                except (RedisError, OSError, TimeoutError) as exc:
                    metrics.BACKEND_ERRORS.labels("redis").inc()
                    log.debug("pub/sub connection lost: %s", exc)
                if self._connected_at >= tried_at:  # it was connected: a new outage, retry soon
                    backoff_s = 0.1
                self._set_healthy(False)
                self.tried.set()
                await self._drop_pubsub()
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 2.0)
        finally:
            self._set_healthy(False)
            await self._drop_pubsub()

    async def _read_once(self) -> None:
        pubsub = self._redis.pubsub()
        self._pubsub = pubsub
        self._sent = set(self._subs)
        await pubsub.subscribe(self._control, *self._subs)
        self._last_pong = self._connected_at = time.monotonic()
        self._set_healthy(True)
        self.tried.set()
        # whatever was published while we were away is lost to pub/sub: catch up from Postgres
        self.deliver_all(Resync())
        reading = asyncio.create_task(self._read_messages(pubsub), name="hub-messages")
        try:
            while self._pubsub is pubsub:
                done, _ = await asyncio.wait((reading,), timeout=_WATCH_INTERVAL_S)
                if done:
                    if reading.cancelled():  # not by this task: read again, as after a loss
                        raise RedisConnectionError("the pub/sub reading was cancelled")
                    reading.result()  # the error that ended it
                    return
                if self._circuit is not None and self._circuit.is_open:
                    raise RedisConnectionError("a redis call of this process timed out")
                if time.monotonic() - self._last_pong > _PING_DEADLINE_S:
                    raise TimeoutError("no answer to the pub/sub ping: the connection is half-open")
        finally:
            await stop_task(reading)

    async def _read_messages(self, pubsub: Any) -> None:
        """Read and deliver messages as they come. Each read waits with no deadline of its
        own: a deadline set and withdrawn a message cost an eighth of a busy web process's
        time. ``_read_once`` watches the link instead, and ends this when it goes silent."""
        connection = pubsub.connection
        timeout_s, connection.socket_timeout = connection.socket_timeout, None
        self._untimed = (connection, timeout_s)
        try:
            while True:
                raise_swallowed_cancel()
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message is None or message["type"] != "message":
                    continue
                # any message is a sign of life, not only the pong: a busy process reads
                # its pong behind many events, and must not take that wait for a dead link
                # (it would resync every socket from Postgres just when it has the least
                # time to spare)
                self._last_pong = time.monotonic()
                channel = message["channel"]
                channel = channel.decode() if isinstance(channel, bytes) else channel
                if channel == self._control:
                    continue
                live = parse(message["data"])
                if live is not None:
                    self.deliver(channel, live)
                    observe_fanout(live.at)
        finally:
            self._restore_timeout()

    def _restore_timeout(self) -> None:
        """Give the pub/sub connection its socket timeout back, before the pool has it again."""
        if self._untimed is not None:
            connection, timeout_s = self._untimed
            connection.socket_timeout = timeout_s
            self._untimed = None

    async def _ping_forever(self) -> None:
        while True:
            raise_swallowed_cancel()
            await asyncio.sleep(_PING_INTERVAL_S)
            if self._pubsub is None:
                continue
            try:
                async with asyncio.timeout(_PING_DEADLINE_S):
                    await self._redis.publish(self._control, b"ping")
            except (RedisError, OSError, TimeoutError):
                pass  # the reader notices the missing pong and reconnects
