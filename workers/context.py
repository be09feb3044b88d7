"""What a running job reports through: steps and progress, persisted then published.

Every report is written to Postgres first (fenced by attempt) and only then
published on Redis, so a browser can always recover from ``job_events`` what
pub/sub missed. While Postgres is down a report is kept and written again, with
backoff, rather than dropped: the job's code waits at that report. Overall
progress is the weighted sum of step progress and never goes backwards within
an attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar
from uuid import UUID

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobcast.bus import publish
from jobcast.errors import StorageUnavailable
from jobcast.model import Event, StepState
from jobcast.registry import JobType
from jobcast.settings import Settings
from jobcast.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")


class AttemptLost(Exception):
    """This attempt no longer owns the job (cancelled, or handed to another worker)."""


async def persist(call: Callable[[], Awaitable[T]], *, deadline_s: float, what: str) -> T:
    """Run a Postgres write, retrying it while Postgres is unavailable, up to a deadline."""
    delay_s = 0.1
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            return await call()
        except StorageUnavailable:
            if time.monotonic() >= give_up:
                raise
            log.warning("%s: Postgres unavailable; keeping it and trying again in %.1f s",
                        what, delay_s)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)


class Reporter:
    """The ``JobContext`` a job's code gets: one per attempt."""

    def __init__(
        self, *, job_id: UUID, owner_id: UUID, attempt: int, job_type: JobType,
        store: Store, redis: aioredis.Redis, settings: Settings,
    ) -> None:
        self.job_id = job_id
        self.owner_id = owner_id
        self.attempt = attempt
        self._job_type = job_type
        self._store = store
        self._redis = redis
        self._settings = settings
        self._weights = {s.name: s.weight for s in job_type.steps}
        self._total_weight = sum(self._weights.values()) or 1.0
        self._done_weight = 0.0
        self._step: str | None = None
        self._step_percent = 0.0
        self.overall = 0.0

    async def write(self, call: Callable[[], Awaitable[Event | None]]) -> None:
        """Persist an event (fenced by attempt), then publish it."""
        event = await persist(
            call, deadline_s=self._settings.persist_deadline_s, what=f"job {self.job_id}"
        )
        await self.emit(event)

    async def emit(self, event: Event | None) -> None:
        """Publish a persisted event; None means the write was fenced off."""
        if event is None:
            raise AttemptLost(f"job {self.job_id} attempt {self.attempt} is no longer running")
        try:
            await publish(self._redis, self._settings, event, self.owner_id)
        except (RedisError, OSError) as exc:
            # the event is safe in Postgres; watchers get it through NOTIFY instead
            log.warning("job %s: publishing event %s failed: %s", self.job_id, event.seq, exc)

    def _advance(self) -> float:
        if self._weights:
            current = self._weights.get(self._step or "", 0.0) * self._step_percent / 100
            computed = 100 * (self._done_weight + current) / self._total_weight
        else:
            computed = self._step_percent
        self.overall = round(max(self.overall, min(computed, 100.0)), 2)
        return self.overall

    async def _step_event(self, name: str, state: StepState, duration_ms: int | None) -> None:
        progress = self._advance()
        await self.write(lambda: self._store.record_step(
            self.job_id, self.attempt, step=name, state=state, duration_ms=duration_ms,
            progress=progress,
        ))

    @asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[None]:
        if name not in self._weights:
            raise ValueError(f"job type {self._job_type.name!r} has no step {name!r}")
        self._step, self._step_percent = name, 0.0
        started = time.monotonic()
        await self._step_event(name, StepState.RUNNING, None)
        try:
            yield
        except (Exception, asyncio.CancelledError) as exc:
            if not isinstance(exc, AttemptLost | asyncio.CancelledError):
                duration_ms = int((time.monotonic() - started) * 1000)
                try:
                    await self._step_event(name, StepState.FAILED, duration_ms)
                except AttemptLost:
                    pass
            raise
        duration_ms = int((time.monotonic() - started) * 1000)
        self._done_weight += self._weights[name]
        self._step, self._step_percent = None, 0.0
        await self._step_event(name, StepState.COMPLETED, duration_ms)

    async def progress(self, percent: float, message: str | None = None) -> None:
        self._step_percent = max(0.0, min(float(percent), 100.0))
        progress, step = self._advance(), self._step
        await self.write(lambda: self._store.record_progress(
            self.job_id, self.attempt, progress=progress, step=step, message=message,
        ))
