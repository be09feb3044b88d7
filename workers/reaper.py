"""The periodic sweep that keeps nothing stuck: stale jobs, unqueued jobs, old jobs.

Every worker runs this loop, but a lease in Postgres lets one sweep at a time
(a lease rather than a lock: a holder that freezes loses it when it expires).
Every action is also fenced by attempt, so two sweeps at once would still be
safe. Each sweep:

- retries (or fails, when its attempts are used up) every running job whose
  worker stopped beating: it died, or was frozen past its lease;
- queues every pending job that is missing from Redis (Redis was down when it
  was submitted, or restarted empty): the outbox;
- deletes finished jobs past their retention.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from uuid import UUID, uuid4

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobcast.bus import publish
from jobcast.errors import StorageUnavailable
from jobcast.model import Event, JobStatus
from jobcast.queue import Queue
from jobcast.settings import Settings
from jobcast.store import Store
from workers.heartbeat import Heartbeat

log = logging.getLogger(__name__)

WORKER_LOST = {
    "type": "WorkerLost",
    "category": "transient",
    "message": "the worker running this job stopped responding",
}


class Reaper:
    def __init__(self, store: Store, queue: Queue, redis: aioredis.Redis, settings: Settings,
                 heartbeat: Heartbeat) -> None:
        self._store = store
        self._queue = queue
        self._redis = redis
        self._settings = settings
        self._heartbeat = heartbeat
        self._last_failure = 0.0
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.reaper_interval_s)
            try:
                await self.sweep()
            except (StorageUnavailable, RedisError, OSError) as exc:
                self._last_failure = time.monotonic()
                log.warning("reaper sweep skipped: %s", exc)

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
        deleted = await self._store.delete_expired(
            self._settings.retention_completed_days, self._settings.retention_failed_days,
            self._settings.retention_cancelled_days,
        )
        if deleted:
            log.info("retention: deleted %d finished jobs", deleted)

    async def _reap_stale(self) -> None:
        for row in await self._store.stale_running(self._settings.stale_after_s):
            job_id, attempt, max_attempts = row["id"], row["attempts"], row["max_attempts"]
            if attempt < max_attempts:
                message = (f"The worker running this job stopped; retrying now "
                           f"(attempt {attempt + 1} of {max_attempts})")
                event = await self._store.retry_later(
                    job_id, attempt, delay_s=0, message=message, error=WORKER_LOST,
                )
                if event is not None:
                    await self._queue.requeue(job_id)
                log.warning("job %s: attempt %d lost its worker; queued again", job_id, attempt)
            else:
                event = await self._store.finish(
                    job_id, attempt, status=JobStatus.FAILED, error=WORKER_LOST,
                    message=WORKER_LOST["message"],
                )
                log.warning("job %s: attempt %d lost its worker; no attempts left", job_id, attempt)
            if event is not None:
                await self._publish(event, row["owner_id"])

    async def _dispatch_unqueued(self) -> None:
        pending = await self._store.pending(self._settings.outbox_grace_s)
        if not pending:
            return
        delays = dict(pending)
        missing = await self._queue.missing(list(delays))
        for job_id in missing:
            await self._queue.requeue(job_id, delay_s=delays[job_id])
        if missing:
            log.warning("outbox: queued %d pending jobs that Redis did not have", len(missing))

    async def _publish(self, event: Event, owner_id: UUID) -> None:
        try:
            await publish(self._redis, self._settings, event, owner_id)
        except (RedisError, OSError) as exc:
            log.warning("reaper could not publish: %s", exc)
