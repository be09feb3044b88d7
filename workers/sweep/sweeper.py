"""The sweep's loop: every interval, the worker holding the lease runs each duty once.

The duties that need only Postgres run whatever Redis does; those that need Redis
wait while it does not answer. Redis is asked once per sweep, with a short deadline,
so a Redis that is down (or silent) costs the sweep that deadline, not a timeout per
call. A duty that fails is logged and the next one runs; Postgres unavailable ends
the sweep (every duty needs it, and so does the lease).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobcast.errors import StorageUnavailable
from jobcast.store import Store
from jobcast.tasks import raise_swallowed_cancel
from workers.sweep.lease import Lease

log = logging.getLogger(__name__)

LEASE_NAME = "reaper"  # the row's name since the first release: old and new workers share it


@dataclass
class Turn:
    """What a duty knows of the sweep it runs in."""

    lease: Lease
    redis_up: bool
    last_outage_at: float  # monotonic: when this process last failed to reach Postgres

    @property
    def held(self) -> bool:
        """Whether the duty may take its next step (one job, one schedule)."""
        return self.lease.held


class Duty(Protocol):
    name: str
    needs_redis: bool  # False: it runs with Redis down (and leaves its Redis part for later)

    async def run(self, turn: Turn) -> None: ...


class Sweeper:
    def __init__(
        self,
        store: Store,
        redis: aioredis.Redis,
        duties: Sequence[Duty],
        *,
        interval_s: float,
        outages: Sequence[Outages] = (),
    ) -> None:
        self._store = store
        self._redis = redis
        self._duties = list(duties)
        self._interval_s = interval_s
        self._outages = list(outages)
        self.lease = Lease(store, LEASE_NAME, 3 * interval_s)
        self.last_storage_failure = 0.0
        self._redis_was_up = True  # said once when it goes, and once when it is back

    async def run_forever(self) -> None:
        while True:
            raise_swallowed_cancel()
            await asyncio.sleep(self._interval_s)
            try:
                await self.sweep()
            except StorageUnavailable as exc:
                self.last_storage_failure = time.monotonic()
                log.warning("sweep stopped: Postgres unavailable (%s)", exc)
            except Exception:  # a fault in a duty's code: logged, and the sweep goes on
                log.exception("sweep failed")

    async def sweep(self) -> None:
        if not await self.lease.take():
            return
        async with self.lease.kept():
            turn = Turn(
                lease=self.lease,
                redis_up=await self._redis_answers(),
                last_outage_at=max(
                    [self.last_storage_failure, *(o.last_storage_failure for o in self._outages)]
                ),
            )
            for duty in self._duties:
                if not turn.held:
                    log.warning("sweep stopped before %s: its lease ran out", duty.name)
                    return
                if duty.needs_redis and not turn.redis_up:
                    continue
                try:
                    await duty.run(turn)
                except (RedisError, OSError) as exc:
                    turn.redis_up = False
                    log.warning("sweep: %s waits for Redis (%s)", duty.name, exc)
                except StorageUnavailable:
                    raise
                except Exception:
                    log.exception("sweep: %s failed", duty.name)

    async def _redis_answers(self) -> bool:
        try:
            async with asyncio.timeout(min(1.0, self._interval_s)):
                await self._redis.ping()
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            if self._redis_was_up:
                log.warning("sweep: Redis does not answer (%s); its duties wait", exc)
            self._redis_was_up = False
            return False
        if not self._redis_was_up:
            log.info("sweep: Redis answers again; its duties run")
        self._redis_was_up = True
        return True


class Outages(Protocol):
    """Something else in the process that notes when Postgres failed it (the heartbeat)."""

    last_storage_failure: float
