"""A process's circuit breaker for Redis: a dead link is noticed once, not once per call.

A Redis that stops answering without closing the connection costs each call a full
timeout. Once one call has paid it (or a health check failed), the process takes
that Redis for down: every Redis call fails at once with a ``ConnectionError``
(which every caller already handles, as it does a refused connection), events go
over Postgres NOTIFY, and a probe in the background PINGs Redis on a fresh
connection every ``JOBCAST_REDIS_PROBE_INTERVAL_S`` until it answers. Its state is
in ``/readyz`` and in ``/metrics`` (``jobcast_redis_circuit_open``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from jobcast import metrics
from jobcast.tasks import raise_swallowed_cancel, stop_task

if TYPE_CHECKING:
    from jobcast.links import RedisLink

log = logging.getLogger(__name__)


class CircuitOpen(RedisConnectionError):
    """This process takes Redis for down (a call timed out); a probe is waiting for it."""


class Circuit:
    """Closed while Redis answers; open from a timeout until a probe gets an answer."""

    def __init__(self, link: RedisLink, client: str) -> None:
        self._link = link
        self._client = client
        self._probe: asyncio.Task[None] | None = None
        self.opened_at: float | None = None  # monotonic time of the trip, while open
        self.trips = 0
        self._on_trip: list[Callable[[], None]] = []
        metrics.REDIS_CIRCUIT_OPEN.labels(client).set(0)

    def on_trip(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time the circuit opens, at once (the hub takes its
        pub/sub for down on the first timeout of any Redis call of the process)."""
        self._on_trip.append(callback)

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return f"open for {time.monotonic() - self.opened_at:.1f} s"

    def check(self) -> None:
        """Raise ``CircuitOpen`` while Redis is taken for down."""
        if self.opened_at is not None:
            raise CircuitOpen(f"redis taken for down since a call timed out ({self.state})")

    def trip(self, reason: BaseException | str) -> None:
        """A call timed out or a health check failed: take Redis for down, once."""
        if self.opened_at is not None:
            return
        self.opened_at = time.monotonic()
        self.trips += 1
        metrics.REDIS_CIRCUIT_OPEN.labels(self._client).set(1)
        metrics.REDIS_CIRCUIT_TRIPS.labels(self._client).inc()
        metrics.BACKEND_ERRORS.labels("redis").inc()
        log.warning(
            "redis does not answer (%s); taking it for down and probing it every %.1f s",
            reason,
            self._link.probe_interval_s,
        )
        self._probe = asyncio.get_running_loop().create_task(
            self._probe_until_answered(), name="redis-probe"
        )
        for callback in self._on_trip:
            try:
                callback()
            except Exception:
                log.exception("a callback on the redis circuit's trip failed")

    async def close(self) -> None:
        if self._probe is not None:
            probe, self._probe = self._probe, None
            await stop_task(probe)

    async def _probe_until_answered(self) -> None:
        # its own client, outside the circuit, and a fresh connection for each try: a
        # connection whose PING timed out is dropped
        client = self._link.probe_client()
        try:
            while True:
                raise_swallowed_cancel()
                await asyncio.sleep(self._link.probe_interval_s)
                try:
                    async with asyncio.timeout(self._link.probe_interval_s):
                        await client.ping()
                    break
                except (RedisError, OSError, TimeoutError):
                    await _drop_connections(client)
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await client.aclose()
        opened_at, self.opened_at = self.opened_at, None
        metrics.REDIS_CIRCUIT_OPEN.labels(self._client).set(0)
        log.info(
            "redis answers again; it was taken for down for %.1f s",
            time.monotonic() - (opened_at or time.monotonic()),
        )


async def _drop_connections(client: aioredis.Redis) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await client.connection_pool.disconnect()
