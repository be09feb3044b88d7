"""The periodic sweep that keeps nothing stuck: stale jobs, unqueued jobs, old jobs.

Every worker runs this loop, but a lease in Postgres lets one sweep at a time
(a lease rather than a lock: a holder that freezes loses it when it expires).
Every action is also fenced by attempt, so two sweeps at once would still be
safe. Each sweep:

- retries (or fails, when its attempts are used up) every running job whose
  worker stopped beating: it died, or was frozen past its lease;
- queues every pending job that is missing from Redis (Redis was down when it
  was submitted, or restarted empty): the outbox; and every pending job that a
  worker took from the queue but died before starting (claiming) it;
- ranks due delayed and retried jobs by their priority on the queue;
- starts the jobs of recurring schedules whose tick has come;
- sends the completion webhooks that are due;
- drops results past their type's keeping time, unclaimed uploads after a day,
  and finished jobs past their retention.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import UTC, datetime
from uuid import uuid4

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobcast.bus import publish_quietly
from jobcast.errors import ApiError, StorageUnavailable
from jobcast.model import JobStatus
from jobcast.queue import Queue
from jobcast.registry import Registry
from jobcast.schedules import MISFIRE_GRACE_S, SCHEDULER_OWNER
from jobcast.settings import Settings
from jobcast.store import Store
from workers.heartbeat import Heartbeat
from workers.webhooks import deliver_due

log = logging.getLogger(__name__)

UNCLAIMED_UPLOAD_S = 86_400
WORKER_LOST = {
    "type": "WorkerLost",
    "category": "transient",
    "message": "the worker running this job stopped responding",
}


class Reaper:
    def __init__(
        self,
        store: Store,
        queue: Queue,
        redis: aioredis.Redis,
        settings: Settings,
        heartbeat: Heartbeat,
        registry: Registry,
    ) -> None:
        self._store = store
        self._queue = queue
        self._redis = redis
        self._settings = settings
        self._heartbeat = heartbeat
        self._registry = registry
        self._last_failure = 0.0
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"
        self._scheduler_owner_ready = False

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.reaper_interval_s)
            try:
                await self.sweep()
            except (StorageUnavailable, RedisError, OSError) as exc:
                self._last_failure = time.monotonic()
                log.warning("sweep skipped: %s", exc)

    def _recently_cut_off(self) -> bool:
        """Heartbeats could not be written lately: stale-looking jobs may be alive."""
        last = max(self._last_failure, self._heartbeat.last_storage_failure)
        return time.monotonic() - last < self._settings.stale_after_s

    async def sweep(self) -> None:
        lease_s = 3 * self._settings.reaper_interval_s
        if not await self._store.take_lease("reaper", self._holder, lease_s):
            return
        if not self._recently_cut_off():
            await self._reap_stale()
        await self._dispatch_unqueued()
        await self._rank_due()
        await self._start_scheduled()
        await deliver_due(self._store, self._settings)
        await self._clean_up()

    async def _reap_stale(self) -> None:
        for row in await self._store.stale_running(self._settings.stale_after_s):
            job_id, attempt, max_attempts = row["id"], row["attempts"], row["max_attempts"]
            if attempt < max_attempts:
                message = (
                    f"The worker running this job stopped; retrying now "
                    f"(attempt {attempt + 1} of {max_attempts})"
                )
                event = await self._store.retry_later(
                    job_id,
                    attempt,
                    delay_s=0,
                    message=message,
                    error=WORKER_LOST,
                )
                if event is not None:
                    await self._queue.requeue(job_id, priority=row["priority"])
                log.warning("job %s: attempt %d lost its worker; queued again", job_id, attempt)
            else:
                event = await self._store.finish(
                    job_id,
                    attempt,
                    status=JobStatus.FAILED,
                    error=WORKER_LOST,
                    message=WORKER_LOST["message"],
                )
                log.warning("job %s: attempt %d lost its worker; no attempts left", job_id, attempt)
            if event is not None:
                await publish_quietly(self._redis, self._settings, self._store, event)

    async def _dispatch_unqueued(self) -> None:
        pending = {r["id"]: r for r in await self._store.pending(self._settings.outbox_grace_s)}
        if not pending:
            return
        missing = await self._queue.missing(list(pending))
        queued = list(pending.keys() - set(missing))
        abandoned = await self._queue.abandoned(queued, self._settings.stale_after_s)
        for job_id in missing + abandoned:
            row = pending[job_id]
            await self._queue.requeue(job_id, delay_s=row["delay_s"], priority=row["priority"])
        if missing:
            log.warning("outbox: queued %d pending jobs that Redis did not have", len(missing))
        if abandoned:
            log.warning(
                "queued %d pending jobs again: a worker took them and stopped before starting them",
                len(abandoned),
            )

    async def _rank_due(self) -> None:
        due = await self._queue.due_unranked()
        if due:
            await self._queue.promote(await self._store.priorities(due))

    async def _start_scheduled(self) -> None:
        if not self._settings.schedules:
            return
        if not self._scheduler_owner_ready:
            await self._store.ensure_owner(SCHEDULER_OWNER)
            self._scheduler_owner_ready = True
        now = datetime.now(UTC)
        for schedule in self._settings.schedules:
            tick = schedule.last_tick(now)
            if (now - tick).total_seconds() > MISFIRE_GRACE_S:
                continue
            try:
                job_type = self._registry.get(schedule.type)
                params = job_type.parse_input(schedule.input)
            except ApiError as exc:
                log.error("schedule %s: %s", schedule.name, exc)
                continue
            created = await self._store.create_job(
                owner_id=SCHEDULER_OWNER,
                job_type=job_type,
                params=params.model_dump(mode="json"),
                priority=schedule.priority,
                job_id=schedule.job_id(tick),  # the same for every worker: one job a tick
            )
            if created is None or created.event is None:
                continue  # this tick's job exists already
            await publish_quietly(self._redis, self._settings, self._store, created.event)
            await self._queue.enqueue(created.job.id, priority=schedule.priority)
            log.info(
                "schedule %s: started job %s for %s",
                schedule.name,
                created.job.id,
                tick.isoformat(),
            )

    async def _clean_up(self) -> None:
        expired = await self._store.expire_results({t.name: t.result_ttl_s for t in self._registry})
        uploads = await self._store.delete_unclaimed_uploads(UNCLAIMED_UPLOAD_S)
        deleted = await self._store.delete_expired(
            self._settings.retention_completed_days,
            self._settings.retention_failed_days,
            self._settings.retention_cancelled_days,
        )
        if expired or uploads or deleted:
            log.info(
                "retention: %d results expired, %d unclaimed uploads and %d finished jobs deleted",
                expired,
                uploads,
                deleted,
            )
