"""Putting jobs on arq's queue in one Redis round trip.

arq's own ``enqueue_job`` takes three round trips (WATCH, EXISTS, MULTI/EXEC).
This script does the same writes atomically in one: it stores the job under
arq's key for the same id, adds it to the queue's sorted set with its run time
as score, and publishes the job's first event to its owner's feed.
"""

from __future__ import annotations

import time
from uuid import UUID

import redis.asyncio as aioredis
from arq.constants import (
    expires_extra_ms,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
)
from arq.jobs import serialize_job

from jobcast.settings import Settings

RUN_JOB = "run_job"

# KEYS: job key, result key, queue; ARGV: expires ms, job bytes, score, job id,
# owner channel, message (may be empty)
_ENQUEUE = """
if redis.call('exists', KEYS[1]) == 1 or redis.call('exists', KEYS[2]) == 1 then
  return 0
end
redis.call('psetex', KEYS[1], ARGV[1], ARGV[2])
redis.call('zadd', KEYS[3], ARGV[3], ARGV[4])
if ARGV[6] ~= '' then
  redis.call('publish', ARGV[5], ARGV[6])
end
return 1
"""

# KEYS: job key, in-progress key, queue; ARGV: expires ms, job bytes, score, job id.
# Queue a job again whatever arq thinks of it: its last worker is gone, so arq's
# in-progress marker (which would hold it back for arq's whole job timeout) is dropped.
_REQUEUE = """
redis.call('del', KEYS[2])
redis.call('psetex', KEYS[1], ARGV[1], ARGV[2])
redis.call('zadd', KEYS[3], ARGV[3], ARGV[4])
return 1
"""


class Queue:
    """The arq queue of this install."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self._script = redis.register_script(_ENQUEUE)
        self._requeue = redis.register_script(_REQUEUE)

    async def enqueue(
        self, job_id: UUID, *, delay_s: float = 0.0, owner_id: UUID | None = None,
        announce: bytes = b"",
    ) -> bool:
        """Queue ``run_job(job_id)`` under arq job id ``job_id``; False if already queued."""
        now_ms = int(time.time() * 1000)
        score = now_ms + int(delay_s * 1000)
        job = serialize_job(RUN_JOB, (str(job_id),), {}, None, now_ms)
        channel = self._settings.owner_channel(owner_id) if owner_id else ""
        queued = await self._script(
            keys=[job_key_prefix + str(job_id), result_key_prefix + str(job_id),
                  self._settings.queue_name],
            args=[score - now_ms + expires_extra_ms, job, score, str(job_id), channel, announce],
        )
        return bool(queued)

    async def requeue(self, job_id: UUID, *, delay_s: float = 0.0) -> None:
        """Queue ``run_job(job_id)`` again, even where arq believes it is queued or running."""
        now_ms = int(time.time() * 1000)
        score = now_ms + int(delay_s * 1000)
        job = serialize_job(RUN_JOB, (str(job_id),), {}, None, now_ms)
        await self._requeue(
            keys=[job_key_prefix + str(job_id), in_progress_key_prefix + str(job_id),
                  self._settings.queue_name],
            args=[score - now_ms + expires_extra_ms, job, score, str(job_id)],
        )

    async def missing(self, job_ids: list[UUID]) -> list[UUID]:
        """The ids that are not on the queue, in one round trip."""
        if not job_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.zscore(self._settings.queue_name, str(job_id))
            scores = await pipe.execute()
        return [job_id for job_id, score in zip(job_ids, scores, strict=True) if score is None]
