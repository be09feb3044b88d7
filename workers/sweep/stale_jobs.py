"""Stale jobs: a running job whose worker stopped beating is retried, or failed.

Its worker died, or froze past ``JOBCAST_STALE_AFTER_S``. The job goes back to
pending (or ends failed when its attempts are used up) in Postgres, fenced by its
attempt, and is queued again on Redis; with Redis down it stays pending, and the
outbox queues it once Redis answers.
"""

from __future__ import annotations

import logging
import time
from uuid import UUID

from redis.exceptions import RedisError

from jobcast.bus import Publisher
from jobcast.model import JobStatus
from jobcast.queue import Queue
from jobcast.settings import Settings
from jobcast.store import Store
from workers.released import queue_released
from workers.sweep.sweeper import Turn

log = logging.getLogger(__name__)

WORKER_LOST = {
    "type": "WorkerLost",
    "category": "transient",
    "message": "the worker running this job stopped responding",
}


class StaleJobs:
    name = "stale jobs"
    needs_redis = False

    def __init__(
        self, store: Store, queue: Queue, publisher: Publisher, settings: Settings
    ) -> None:
        self._store = store
        self._queue = queue
        self._publisher = publisher
        self._stale_after_s = settings.stale_after_s

    async def run(self, turn: Turn) -> None:
        if time.monotonic() - turn.last_outage_at < self._stale_after_s:
            return  # heartbeats could not be written lately: stale-looking jobs may be alive
        for row in await self._store.stale_running(self._stale_after_s):
            if not turn.held:
                return
            job_id, attempt, max_attempts = row["id"], row["attempts"], row["max_attempts"]
            if attempt < max_attempts:
                message = (
                    f"The worker running this job stopped; retrying now "
                    f"(attempt {attempt + 1} of {max_attempts})"
                )
                event = await self._store.retry_later(
                    job_id, attempt, delay_s=0, message=message, error=WORKER_LOST
                )
                log.warning("job %s: attempt %d lost its worker; pending again", job_id, attempt)
                if event is not None:
                    await self._queue_again(job_id, row["priority"], turn)
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
                await self._publisher.publish(event)
                if turn.redis_up:  # its end gave its slots back: queue what that released
                    await queue_released(self._store, self._queue, job_id)

    async def _queue_again(self, job_id: UUID, priority: int, turn: Turn) -> None:
        if not turn.redis_up:
            log.info("job %s: Redis does not answer; the outbox queues it later", job_id)
            return
        try:
            await self._queue.requeue(job_id, priority=priority)
        except (RedisError, OSError) as exc:
            turn.redis_up = False
            log.warning("job %s: not queued (%s); the outbox queues it later", job_id, exc)
