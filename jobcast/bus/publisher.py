"""The worker's side of the bus: publish persisted events on Redis, or announce them over NOTIFY.

Every event is published (after it is persisted) on its job's channel, and status
changes and step boundaries also on the owner's channel. When Redis refuses an event,
or does not take it within ``JOBCAST_REDIS_PUBLISH_TIMEOUT_S``, it is announced over
Postgres NOTIFY instead, so server processes whose own pub/sub is healthy still learn
of it; and once a publish timed out the process takes Redis for down (its circuit,
``jobcast.circuit``): until a probe gets an answer, events go over NOTIFY at once.

Publishing never holds a job back: the event is already in Postgres, the job goes on,
and the announcing happens beside it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, OrderedDict
from collections.abc import Iterable
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobcast import metrics
from jobcast.bus.message import channels, encode
from jobcast.errors import StorageUnavailable
from jobcast.links import circuit_of
from jobcast.model import Event
from jobcast.settings import Settings
from jobcast.store import Store
from jobcast.tasks import raise_swallowed_cancel, stop_task

log = logging.getLogger(__name__)

# Events waiting to be announced, at most: beyond it (Redis and Postgres both stalled)
# the oldest announcements are dropped; the events stay in Postgres, where a watcher's
# next catch-up finds them.
_MAX_WAITING = 100_000


# PUBLISH each event its arguments hold, in order: many events a command, so the worker
# reads one answer a batch, not one a message. An event is its channels' count, its text,
# and its channels (the job's, its owner's, the workers' for a cancel): the text goes
# once, however many channels it is published on
_PUBLISH_SCRIPT = """
local i, events = 1, 0
while i <= #ARGV do
    local n = tonumber(ARGV[i])
    for k = 1, n do
        redis.call('PUBLISH', ARGV[i + 1 + k], ARGV[i + 1])
    end
    i = i + n + 2
    events = events + 1
end
return events
"""
# events handed over early (``publish_early``) whose jobs have not handed them over again yet,
# kept at most: a job stopped in between never does, and its entry goes with the oldest
_EARLY_KEPT = 10_000
# events a script call, at most (a message on each of their channels): a long backlog goes in
# several, none of them holding Redis for long
_EVENTS_A_CALL = 250


class Unsent(Exception):
    """Redis refused a publish, or did not answer one within the timeout: ``events``, the
    first one of that command's onwards, are not published (those before it are)."""

    def __init__(self, events: list[Event], reason: BaseException) -> None:
        super().__init__(str(reason))
        self.events = events
        self.reason = reason


async def _publish_all(redis: aioredis.Redis, settings: Settings, events: list[Event]) -> None:
    """Send persisted events to every server process, in order: one round trip a few hundred
    events, each answered within the timeout. A long backlog is many commands, each of
    which has the whole timeout: a Redis that answers each one in time is not taken for
    down because a worker's jobs said much at once."""
    calls: list[tuple[list[Event], list[int | str | bytes]]] = [([], [])]
    for event in events:
        try:
            text = encode(event)
        except TypeError:  # a bug, not an outage: this one event is not sent
            log.exception("job %s: event %d cannot be encoded", event.job_id, event.seq)
            continue
        if len(calls[-1][0]) == _EVENTS_A_CALL:
            calls.append(([], []))
        call_events, args = calls[-1]
        call_events.append(event)
        names = channels(settings, event)
        args += (len(names), text, *names)
    script = redis.register_script(_PUBLISH_SCRIPT)
    for i, (call_events, args) in enumerate(calls):
        if not args:
            continue
        try:
            async with asyncio.timeout(settings.redis_publish_timeout_s):
                await script(args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            reason = exc
            if isinstance(exc, TimeoutError):
                circuit = circuit_of(redis)
                reason = TimeoutError(
                    f"no answer to a publish within {settings.redis_publish_timeout_s} s"
                )
                if circuit is not None:
                    circuit.trip(str(reason))
            raise Unsent([e for unsent, _ in calls[i:] for e in unsent], reason) from exc
        for kind, count in Counter(e.kind.value for e in call_events).items():
            metrics.EVENTS_PUBLISHED.labels(kind).inc(count)


async def publish_quietly(
    redis: aioredis.Redis, settings: Settings, store: Store, event: Event
) -> None:
    """Publish; when Redis fails or is slow, say over Postgres NOTIFY that the event exists.

    The event is safe in Postgres either way. Writers NOTIFY on their own only while a
    server process asks (its pub/sub is down); a server whose pub/sub is up while this
    process cannot reach Redis learns of the event from this NOTIFY instead.
    """
    try:
        await _publish_all(redis, settings, [event])
    except Unsent as exc:
        await _announce_instead(store, exc.events, exc.reason)


async def _announce_instead(
    store: Store, events: list[Event], reason: BaseException | str, *, quiet: bool = False
) -> None:
    """Redis refused these events, or is taken for down: NOTIFY each, in order. ``quiet``:
    the outage was logged already (when the circuit opened)."""
    metrics.BACKEND_ERRORS.labels("redis").inc()
    for event in events:
        log.debug(
            "job %s: event %d not published (%s); NOTIFY carries it",
            event.job_id,
            event.seq,
            reason,
        )
        try:
            await store.notify_event(event)
        except StorageUnavailable as pg_exc:
            log.warning("job %s: no NOTIFY either (%s)", event.job_id, pg_exc)
    if not quiet:
        log.warning(
            "%d event(s) not published (%s); NOTIFY carries them (job %s first)",
            len(events),
            reason,
            events[0].job_id if events else "-",
        )


class Publisher:
    """Publishes a process's events beside its jobs, as many per Redis round trip as wait.

    ``publish`` hands an event over and returns at once. One sender sends what waits,
    in the order it came (so the events of one job keep their order): over Redis, in
    one command (a script that publishes each, a few hundred messages a command), or over
    NOTIFY when Redis refuses it, does not take it in time, or is taken for down. With one
    event at a time this is one round trip each; with many jobs reporting at once it is
    far fewer.
    """

    def __init__(self, redis: aioredis.Redis, settings: Settings, store: Store) -> None:
        self._redis = redis
        self._settings = settings
        self._store = store
        self._circuit = circuit_of(redis)
        self._waiting: list[Event] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._early: OrderedDict[tuple[UUID, int], None] = OrderedDict()

    async def publish(self, event: Event) -> None:
        """Hand a persisted event over to be announced; never waits for the announcing. One
        handed over early already (``publish_early``) is not announced twice."""
        if self._early and self._early.pop((event.job_id, event.seq), 0) is None:
            return
        self._hand_over(event)

    def publish_early(self, events: Iterable[Event]) -> None:
        """Hand over events as the statement that stored them answers, before their jobs
        have them (``workers.report_writes``): the sender then runs before the jobs do, not
        after all of them. Each job hands its event over again, as every event is; that one
        is skipped."""
        for event in events:
            self._early[(event.job_id, event.seq)] = None
            self._hand_over(event)
        while len(self._early) > _EARLY_KEPT:
            self._early.popitem(last=False)

    def _hand_over(self, event: Event) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._send_forever(), name="publisher")
        if len(self._waiting) >= _MAX_WAITING:
            dropped = self._waiting.pop(0)
            log.warning(
                "job %s: event %d not announced (%d waiting); it is in Postgres",
                dropped.job_id,
                dropped.seq,
                len(self._waiting),
            )
        self._waiting.append(event)
        self._idle.clear()
        self._wake.set()

    async def flush(self, timeout_s: float) -> bool:
        """Wait until everything handed over is sent or announced; False if not in time."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        """Send what is waiting (within a deadline: one publish and one NOTIFY per event
        at most), then stop."""
        if self._task is None:
            return
        deadline_s = self._settings.redis_publish_timeout_s + self._settings.pg_command_timeout_s
        if not await self.flush(deadline_s):
            log.warning("%d event(s) not announced at shutdown", len(self._waiting))
        task, self._task = self._task, None
        await stop_task(task)

    async def _send_forever(self) -> None:
        while True:
            raise_swallowed_cancel()
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch, self._waiting = self._waiting, []
                await self._send(batch)
            self._idle.set()

    async def _send(self, events: list[Event]) -> None:
        try:
            if self._circuit is not None and self._circuit.is_open:
                reason = f"redis taken for down ({self._circuit.state})"
                await _announce_instead(self._store, events, reason, quiet=True)
                return
            try:
                await _publish_all(self._redis, self._settings, events)
            except Unsent as exc:  # those published before it stay published
                await _announce_instead(self._store, exc.events, exc.reason)
        except asyncio.CancelledError:
            raise
        except Exception:  # an event that cannot be sent at all: logged, the sender goes on
            log.exception(
                "%d event(s) could not be announced (job %s first)", len(events), events[0].job_id
            )
