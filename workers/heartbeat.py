"""Each worker beats for its running attempts; an attempt it no longer owns is stopped.

One batched UPDATE per interval confirms every attempt this worker runs. An
attempt missing from the answer was cancelled, or handed to another worker by
the sweep: its task is cancelled at once, so a cancel reaches a running job
within one interval (from one beat's start to the next, however long a beat takes), and a
worker that was frozen stops as soon as it wakes.

A beat Postgres does not take (refused, or not through within half the stale
threshold, or the command timeout if that is sooner) marks Postgres down for this
worker until a beat goes through: meanwhile the worker hands back at once each job
arq gives it, so that another worker starts it rather than the sweep finding it
stale. An idle worker pings Postgres instead of beating.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobcast.errors import StorageUnavailable
from jobcast.store import Store
from jobcast.tasks import raise_swallowed_cancel
from workers.report_writes import ReportWrites

log = logging.getLogger(__name__)


@dataclass
class Running:
    attempt: int
    task: asyncio.Task[object]
    lost: bool = False


def alive_key(prefix: str, host: str, pid: int) -> str:
    """The Redis key a live worker process keeps fresh (``python -m workers --check``)."""
    return f"{prefix}:worker:{host}:{pid}"


class Heartbeat:
    def __init__(
        self,
        store: Store,
        interval_s: float,
        redis: aioredis.Redis,
        prefix: str,
        *,
        deadline_s: float = 5.0,
        writes: ReportWrites | None = None,
    ) -> None:
        self._store = store
        # the reports of the worker's jobs: a beat never runs beside one of their statements
        self._writes = writes
        self._interval_s = interval_s
        self._deadline_s = deadline_s  # a beat not through by then: Postgres is down
        self._redis = redis
        # this worker process, as its claims name it (the console shows who ran an attempt)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._alive_key = alive_key(prefix, socket.gethostname(), os.getpid())
        self._running: dict[UUID, Running] = {}
        self.last_storage_failure = 0.0  # monotonic time Postgres last refused a beat
        # from a failed beat until one goes through: the worker takes no new job meanwhile
        self.storage_down = False
        # a job running here was cancelled (workers/cancels.py): beat now, not at the interval
        self._soon = asyncio.Event()

    def track(self, job_id: UUID, attempt: int, task: asyncio.Task[object]) -> Running:
        running = Running(attempt, task)
        self._running[job_id] = running
        return running

    def untrack(self, job_id: UUID) -> None:
        self._running.pop(job_id, None)

    def beat_soon(self, job_id: UUID) -> None:
        """A job was cancelled: if it runs here, beat now rather than at the interval's end
        (the beat, reading Postgres, decides whether it stops)."""
        if job_id in self._running:
            self._soon.set()

    async def run_forever(self) -> None:
        # an interval from one beat's start to the next: a beat that a loaded Postgres holds
        # up puts neither the next beat nor a cancel's reach later (a tenth of the interval
        # at the least between a beat that outlasted it and the next, early beats included)
        next_at = time.monotonic() + self._interval_s
        while True:
            raise_swallowed_cancel()
            earliest = time.monotonic() + self._interval_s / 10
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(next_at - time.monotonic(), 0.0)):
                    await self._soon.wait()
            await asyncio.sleep(max(earliest - time.monotonic(), 0.0))
            self._soon.clear()
            next_at = time.monotonic() + self._interval_s
            await self.beat()
            await self._say_alive()

    async def _say_alive(self) -> None:
        try:
            await self._redis.set(
                self._alive_key, str(len(self._running)), ex=max(5, int(self._interval_s * 5))
            )
        except (RedisError, OSError):
            pass  # a health check reports the worker unhealthy, as it should

    def storage_failed(self) -> None:
        """Postgres failed this worker elsewhere (a claim): take no new job until a beat
        goes through."""
        if not self.storage_down:
            log.warning("postgres does not answer; taking no new job until it does")
        self.storage_down = True
        self.last_storage_failure = time.monotonic()

    async def _beat_for(self, attempts: dict[UUID, int]) -> set[UUID]:
        if self._writes is None:
            return await self._store.heartbeat(attempts)
        return await self._writes.alone(lambda: self._store.heartbeat(attempts))

    async def beat(self) -> None:
        running = dict(self._running)
        try:
            # the deadline covers waiting for a connection too, which a silent link holds up
            async with asyncio.timeout(self._deadline_s):
                if running:
                    ours = await self._beat_for({j: r.attempt for j, r in running.items()})
                else:  # nothing to beat for: whether Postgres answers all the same
                    await self._store.ping()
                    ours = set()
        except (StorageUnavailable, TimeoutError) as exc:
            self.storage_failed()
            log.warning("heartbeat of %d jobs failed: %s", len(running), exc)
            return
        except asyncpg.DeadlockDetectedError as exc:  # with a cancel of many jobs at once
            log.info(
                "heartbeat of %d jobs: %s; beating again at the next interval", len(running), exc
            )
            return
        if self.storage_down:
            log.info("postgres answers again; taking jobs")
        self.storage_down = False
        for job_id, state in running.items():
            if job_id not in ours and self._running.get(job_id) is state:
                log.info(
                    "job %s: attempt %d is no longer ours (cancelled or taken over); stopping it",
                    job_id,
                    state.attempt,
                )
                state.lost = True
                state.task.cancel()
