"""Putting jobs on arq's queue in one Redis round trip.

arq's own ``enqueue_job`` takes three round trips (WATCH, EXISTS, MULTI/EXEC).
This script does the same writes atomically in one: it stores the job under
arq's key for the same id, adds it to the queue's sorted set with its run time
as score, and publishes the job's first event to its owner's feed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
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

# arq's own timeout for run_job is only a backstop: each job's time limit is enforced by
# the worker. arq marks a job it hands to a worker "in progress" for that long and 10 s.
ARQ_TIMEOUT_S = 7 * 86_400
IN_PROGRESS_TTL_MS = (ARQ_TIMEOUT_S + 10) * 1000

# Priority on arq's sorted set: arq starts due jobs lowest score first. A due job's score
# is its run time moved into the past by (priority + 11) spans, so under a backlog every
# job of a higher priority starts before any of a lower one, and jobs of one priority start
# in submit order. A job not yet due keeps its run time as score (arq holds it back until
# then); once due, the sweep moves it into its priority's span (``promote``).
PRIORITY_SPAN_MS = 10**10  # ~115 days: the longest backlog one priority keeps in order

# Fairness within a priority: a due job of a fairness group (its tenant, else its owner)
# takes its group's next turn instead of its run time. A turn is one after the group's
# last queued job, and never before the band's head (the lowest score in the band: the
# next job to run, or one just taken): a group with nothing queued goes right behind it, a
# group with a backlog goes behind its own last job. The groups with work queued take
# turns, one job each per round (start-time fair queueing with every job of one size).
# The band looked at starts a day above the next priority's, which a turn never reaches.
TURN_FLOOR_MARGIN_MS = 86_400_000
TURN_TTL_MS = 86_400_000  # a group's last turn, forgotten after a day without a job


def fair_group(tenant: str | None, owner_id: UUID) -> str:
    """A job's fairness group, as ``jobs.fair_key`` names it."""
    return f"fair:tenant:{tenant}" if tenant is not None else f"fair:owner:{owner_id}"


def score_for(run_at_ms: int, priority: int, now_ms: int) -> int:
    if run_at_ms > now_ms:
        return run_at_ms
    return run_at_ms - (priority + 11) * PRIORITY_SPAN_MS


# KEYS: job key, result key, queue, the group's last turn (the queue again: none);
# ARGV: expires ms, job bytes, score, job id, owner channel, message (may be empty), the
# band's floor for a turn ('' for no turn: the score is the run time's), the turn's TTL
_ENQUEUE = """
if redis.call('exists', KEYS[1]) == 1 or redis.call('exists', KEYS[2]) == 1 then
  return 0
end
local score = tonumber(ARGV[3])
if ARGV[7] ~= '' then
  local turn = score
  local head = redis.call('zrangebyscore', KEYS[3], ARGV[7], ARGV[3], 'WITHSCORES', 'LIMIT', 0, 1)
  if head[2] then
    turn = tonumber(head[2])
  end
  local last = tonumber(redis.call('get', KEYS[4]) or '0')
  if last > turn then
    turn = last
  end
  score = turn + 1
  redis.call('psetex', KEYS[4], ARGV[8], string.format('%.0f', score))
end
redis.call('psetex', KEYS[1], ARGV[1], ARGV[2])
redis.call('zadd', KEYS[3], string.format('%.0f', score), ARGV[4])
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

# KEYS: queue; ARGV: now ms, arq's in-progress key prefix, at most this many due jobs looked
# at. A job a worker took stays on arq's queue until the worker has claimed it (``taken``):
# the jobs on the queue, those due, and of the due ones those taken (looked for among the
# first due, by score: a taken job was due, and started lowest score first).
_DEPTH = """
local ids = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local taken = 0
for _, id in ipairs(ids) do
  taken = taken + redis.call('exists', ARGV[2] .. id)
end
return {redis.call('zcard', KEYS[1]), redis.call('zcount', KEYS[1], '-inf', ARGV[1]), taken}
"""
_DEPTH_LOOK = 10_000


@dataclass(frozen=True)
class Queued:
    """One job to queue with ``Queue.enqueue_many``."""

    job_id: UUID
    delay_s: float = 0.0
    priority: int = 0
    owner_id: UUID | None = None
    announce: bytes = b""
    # its fairness group (None: fairness is off), whose next turn a due job takes
    group: str | None = None

    @classmethod
    def rows(cls, rows: Iterable[Any]) -> list[Queued]:
        """Jobs to queue from rows of id, priority, delay_s and fair_key (released jobs)."""
        return [
            cls(r["id"], delay_s=r["delay_s"], priority=r["priority"], group=r["fair_key"])
            for r in rows
        ]


class Queue:
    """The arq queue of this install."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self._script = redis.register_script(_ENQUEUE)
        self._requeue = redis.register_script(_REQUEUE)
        self._depth = redis.register_script(_DEPTH)

    async def enqueue(
        self,
        job_id: UUID,
        *,
        delay_s: float = 0.0,
        priority: int = 0,
        owner_id: UUID | None = None,
        announce: bytes = b"",
        group: str | None = None,
    ) -> bool:
        """Queue ``run_job(job_id)`` under arq job id ``job_id``; False if already queued.
        A due job of a fairness ``group`` takes the group's next turn in its band."""
        job = Queued(job_id, delay_s, priority, owner_id, announce, group)
        keys, args = self._enqueue_call(job)
        return bool(await self._script(keys=keys, args=args))

    async def enqueue_many(self, jobs: list[Queued]) -> None:
        """Queue many jobs in one round trip (a pipeline of the enqueue script)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for job in jobs:
                keys, args = self._enqueue_call(job)
                await self._script(keys=keys, args=args, client=pipe)
            await pipe.execute()

    def _enqueue_call(self, queued: Queued) -> tuple[list[str], list[Any]]:
        now_ms = int(time.time() * 1000)
        job_id = str(queued.job_id)
        score = score_for(now_ms + int(queued.delay_s * 1000), queued.priority, now_ms)
        job = serialize_job(RUN_JOB, (job_id,), {}, None, now_ms)
        channel = self._settings.owner_channel(queued.owner_id) if queued.owner_id else ""
        queue = self._settings.queue_name
        turn_key, floor = queue, ""
        if queued.group is not None and score < now_ms:  # due: it takes its group's turn
            turn_key = f"{self._settings.redis_prefix}:turn:{queued.priority}:{queued.group}"
            floor = str(score - PRIORITY_SPAN_MS + TURN_FLOOR_MARGIN_MS)
        keys = [job_key_prefix + job_id, result_key_prefix + job_id, queue, turn_key]
        args = [max(0, score - now_ms) + expires_extra_ms, job, score, job_id, channel]
        return keys, [*args, queued.announce, floor, TURN_TTL_MS]

    async def announce(self, owner_id: UUID, announce: bytes) -> None:
        """Publish a job's first event to its owner's feed without queueing it (a job made
        parked, which its group's next start queues)."""
        await self._redis.publish(self._settings.owner_channel(owner_id), announce)

    async def requeue(self, job_id: UUID, *, delay_s: float = 0.0, priority: int = 0) -> None:
        """Queue ``run_job(job_id)`` again, even where arq believes it is queued or running."""
        now_ms = int(time.time() * 1000)
        score = score_for(now_ms + int(delay_s * 1000), priority, now_ms)
        job = serialize_job(RUN_JOB, (str(job_id),), {}, None, now_ms)
        await self._requeue(
            keys=[
                job_key_prefix + str(job_id),
                in_progress_key_prefix + str(job_id),
                self._settings.queue_name,
            ],
            args=[max(0, score - now_ms) + expires_extra_ms, job, score, str(job_id)],
        )

    async def reschedule(self, job_id: UUID, *, delay_s: float, priority: int = 0) -> None:
        """Start a queued job later (a debounced job's window began again). Only ever later
        (ZADD GT), so that two submits' moves landing out of order keep the later time; a
        job not on the queue is left as it is (the outbox queues it with its run_at)."""
        now_ms = int(time.time() * 1000)
        score = score_for(now_ms + int(delay_s * 1000), priority, now_ms)
        await self._redis.zadd(self._settings.queue_name, {str(job_id): score}, xx=True, gt=True)

    async def missing(self, job_ids: list[UUID]) -> list[UUID]:
        """The ids that are not on the queue, in one round trip."""
        if not job_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.zscore(self._settings.queue_name, str(job_id))
            scores = await pipe.execute()
        return [job_id for job_id, score in zip(job_ids, scores, strict=True) if score is None]

    async def abandoned(self, job_ids: list[UUID], older_than_s: float) -> list[UUID]:
        """Of these pending jobs, those arq handed to a worker more than ``older_than_s`` ago.

        A worker claims a job in Postgres moments after arq hands it over; one that is
        still pending that long after was taken by a worker that died in between, and
        arq's in-progress marker would hold it back for arq's whole job timeout.
        """
        if not job_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.pttl(in_progress_key_prefix + str(job_id))
            left_ms = await pipe.execute()
        cutoff_ms = IN_PROGRESS_TTL_MS - older_than_s * 1000
        # PTTL is -2 without the marker: nobody took the job
        return [job_id for job_id, ms in zip(job_ids, left_ms, strict=True) if 0 <= ms < cutoff_ms]

    async def due_unranked(self) -> list[UUID]:
        """Due jobs whose score is still their run time (delayed or retried ones)."""
        now_ms = int(time.time() * 1000)
        ids = await self._redis.zrangebyscore(
            self._settings.queue_name, now_ms - PRIORITY_SPAN_MS, now_ms, start=0, num=1000
        )
        return [UUID(i.decode() if isinstance(i, bytes) else i) for i in ids]

    async def promote(self, priorities: dict[UUID, int]) -> None:
        """Move due jobs into their priority's span (only those still on the queue)."""
        if not priorities:
            return
        now_ms = int(time.time() * 1000)
        scores = await self._redis.zmscore(self._settings.queue_name, [str(i) for i in priorities])
        mapping = {
            str(job_id): score_for(int(score), priority, now_ms)
            for (job_id, priority), score in zip(priorities.items(), scores, strict=True)
            if score is not None and score <= now_ms
        }
        if mapping:
            await self._redis.zadd(self._settings.queue_name, mapping, xx=True)

    async def taken(self, job_id: UUID) -> None:
        """Take a job its worker has claimed off the queue.

        arq keeps a job on its queue until it ends, and at each poll (every 0.05 s) every
        worker looks at each due one, those running included, in three round trips: with
        100 long jobs running, a worker spent three quarters of a core that way, and Redis
        a sixth. A worker reads only the first due jobs, so it could also find none but
        running ones. The claimed job is in Postgres: if its worker dies, the sweep queues
        it again.
        """
        await self._redis.zrem(self._settings.queue_name, str(job_id))

    async def put_back(self, job_id: UUID, score: int) -> None:
        """Put a job taken off the queue back at the score arq gave it, for arq's retry
        (which moves a job on by adding to its score)."""
        await self._redis.zadd(self._settings.queue_name, {str(job_id): score})

    async def depth(self) -> tuple[int, int]:
        """Jobs waiting on the queue (not taken by a worker), and of those the ones whose
        time has come: one round trip."""
        now_ms = int(time.time() * 1000)
        args: list[str | int] = [now_ms, in_progress_key_prefix, _DEPTH_LOOK]
        depth, due, taken = await self._depth(keys=[self._settings.queue_name], args=args)
        return max(0, int(depth) - int(taken)), max(0, int(due) - int(taken))
