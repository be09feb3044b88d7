"""Recurring schedules: each tick that has come starts its job, once across all workers.

The job's id is derived from the schedule and the tick, so two workers (or two
sweeps) make one job a tick. The job is stored in Postgres whatever Redis does;
with Redis down the outbox queues it once Redis answers.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from redis.exceptions import RedisError

from jobcast.bus import Publisher
from jobcast.errors import InvalidInput
from jobcast.queue import Queue
from jobcast.registry import Registry
from jobcast.schedules import MISFIRE_GRACE_S, SCHEDULER_OWNER, Schedule
from jobcast.settings import Settings
from jobcast.store import Store
from workers.sweep.sweeper import Turn

log = logging.getLogger(__name__)


class Schedules:
    name = "schedules"
    needs_redis = False

    def __init__(
        self,
        store: Store,
        queue: Queue,
        publisher: Publisher,
        settings: Settings,
        registry: Registry,
    ) -> None:
        self._store = store
        self._queue = queue
        self._publisher = publisher
        self._schedules = settings.schedules
        self._registry = registry
        self._owner_ready = False

    async def run(self, turn: Turn) -> None:
        if not self._schedules:
            return
        if not self._owner_ready:
            await self._store.ensure_owner(SCHEDULER_OWNER)
            self._owner_ready = True
        now = datetime.now(UTC)
        for schedule in self._schedules:
            if not turn.held:
                return
            tick = schedule.last_tick(now)
            if (now - tick).total_seconds() <= MISFIRE_GRACE_S:
                await self._start(schedule, tick, turn)

    async def _start(self, schedule: Schedule, tick: datetime, turn: Turn) -> None:
        try:
            job_type = self._registry.get(schedule.type)
            params = job_type.parse_input(schedule.input)
        except InvalidInput as exc:
            log.error("schedule %s: %s", schedule.name, exc)
            return
        created = await self._store.create_job(
            owner_id=SCHEDULER_OWNER,
            job_type=job_type,
            params=params.model_dump(mode="json"),
            priority=schedule.priority,
            job_id=schedule.job_id(tick),  # the same for every worker: one job a tick
        )
        if created is None or created.event is None:
            return  # this tick's job exists already
        await self._publisher.publish(created.event)
        log.info("schedule %s: started job %s for %s", schedule.name, created.job.id, tick)
        if not turn.redis_up:
            return
        try:
            await self._queue.enqueue(created.job.id, priority=schedule.priority)
        except (RedisError, OSError) as exc:
            turn.redis_up = False
            log.warning("job %s: not queued yet (%s); the outbox will", created.job.id, exc)
