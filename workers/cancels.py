"""A cancel reaches a running job at once: the worker hears of it on Redis and beats.

A cancel is a change in Postgres (the job's status), made by a web process. The
worker running the job learns of it from its heartbeat, which confirms each of its
running attempts once an interval: a job no longer running is stopped. Besides, every
process that publishes a cancelled job's event publishes it on the workers' channel
too (``jobcast.bus.message.channels``), and each worker listens there: a cancel of a
job it runs has its heartbeat beat at once, rather than at the interval's end. What
the beat reads in Postgres decides, as always, so a message stands for nothing but a
reason to look; while Redis is away, or a message is lost, the heartbeat's interval
is still how long a cancel takes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from jobcast.links import circuit_of
from jobcast.settings import Settings
from jobcast.tasks import raise_swallowed_cancel
from workers.heartbeat import Heartbeat

log = logging.getLogger(__name__)

# the longest a read waits before the loop looks again (a cancel of the task included)
_READ_S = 1.0
_BACKOFF_S = (0.5, 5.0)


class CancelWatch:
    """Listens on the workers' channel; a cancel of a job running here beats at once."""

    def __init__(self, redis: aioredis.Redis, settings: Settings, heartbeat: Heartbeat) -> None:
        self._redis = redis
        self._channel = settings.cancels_channel
        self._heartbeat = heartbeat
        self._circuit = circuit_of(redis)
        self._subscribed = False  # the current listen got as far as its subscription

    async def run_forever(self) -> None:
        backoff_s = _BACKOFF_S[0]
        while True:
            raise_swallowed_cancel()
            self._subscribed = False
            try:
                await self._listen()
            except (RedisError, OSError, TimeoutError) as exc:
                log.debug("the cancel channel is lost (%s); the heartbeat carries cancels", exc)
            if self._subscribed:  # it listened: a loss after that starts the waits afresh
                backoff_s = _BACKOFF_S[0]
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, _BACKOFF_S[1])

    async def _listen(self) -> None:
        pubsub: Any = self._redis.pubsub()  # redis-py leaves PubSub.aclose untyped
        try:
            await pubsub.subscribe(self._channel)
            self._subscribed = True
            while True:
                raise_swallowed_cancel()
                if self._circuit is not None and self._circuit.is_open:
                    # a silent link's reads just wait: listen again once Redis answers
                    raise RedisConnectionError("a redis call of this process timed out")
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=_READ_S)
                if message is not None and message["type"] == "message":
                    self.heard(message["data"])
        finally:
            await pubsub.aclose()

    def heard(self, data: bytes | str) -> None:
        """A cancelled job's event: beat now if the job runs here."""
        try:
            job_id = UUID(orjson.loads(data)["job_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("dropped a malformed message on the cancel channel")
            return
        self._heartbeat.beat_soon(job_id)
