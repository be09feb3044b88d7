"""Pending limits: a due job that waited for a worker slot past its type's limit.

A type with ``pending_limit_s`` says how long one of its jobs may stay pending once due
(its wait counts from ``run_at``, so a job scheduled for later, a retry's wait, a draft,
a paused job and one waiting for a person are not counted; nor are the jobs of a paused
type). Past it, ``on_pending_limit`` decides: ``fail`` the job, with an error and the
final event every watcher gets, or ``report`` it stuck (marked once per wait, shown in
the job's view, the admin stats and ``jobcast_stuck_pending_jobs``). Each change is fenced
by the same conditions, so a job a worker claimed meanwhile is left alone.
"""

from __future__ import annotations

import logging

from jobcast import metrics
from jobcast.bus import Publisher
from jobcast.registry import Registry
from jobcast.store import Store
from workers.sweep.sweeper import Turn

log = logging.getLogger(__name__)


def waited_too_long(limit_s: float) -> str:
    """'waited more than 5 min for a worker slot', in the unit that reads best."""
    if limit_s >= 3600 and limit_s % 3600 == 0:
        span = f"{limit_s / 3600:g} h"
    elif limit_s >= 60 and limit_s % 60 == 0:
        span = f"{limit_s / 60:g} min"
    else:
        span = f"{limit_s:g} s"
    return f"waited more than {span} for a worker slot"


def pending_limit_error(limit_s: float) -> dict[str, str]:
    return {
        "type": "PendingTooLong",
        "category": "permanent",
        "message": waited_too_long(limit_s),
    }


class PendingLimits:
    name = "pending limits"
    needs_redis = False

    def __init__(self, store: Store, publisher: Publisher, registry: Registry) -> None:
        self._store = store
        self._publisher = publisher
        self._reports = {t.name for t in registry if t.on_pending_limit == "report"}
        self._limits_s = {
            t.name: t.pending_limit_s for t in registry if t.pending_limit_s is not None
        }

    async def run(self, turn: Turn) -> None:
        for row in await self._store.past_pending_limit(self._limits_s):
            if not turn.held:
                return
            job_id, job_type, limit_s = row["id"], row["type"], row["limit_s"]
            if job_type in self._reports:
                event = await self._store.mark_stuck(
                    job_id, limit_s, message=f"Stuck: {waited_too_long(limit_s)}"
                )
                if event is not None:
                    log.warning("job %s: %s (reported stuck)", job_id, waited_too_long(limit_s))
            else:
                event = await self._store.fail_pending(
                    job_id, limit_s, error=pending_limit_error(limit_s)
                )
                if event is not None:
                    log.warning("job %s: %s; failed", job_id, waited_too_long(limit_s))
                    metrics.JOBS_FAILED.labels(job_type).inc()
            if event is not None:
                await self._publisher.publish(event)
