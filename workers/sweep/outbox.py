"""The outbox: every pending job that Redis does not have is queued (again).

Redis was down when the job was submitted, or restarted empty; or a worker took
the job from the queue and died before claiming it, so arq's in-progress key holds
it back (a live worker claims within milliseconds, so a key older than
``JOBCAST_STALE_AFTER_S`` belongs to a dead one).
"""

from __future__ import annotations

import logging

from jobcast.queue import Queue
from jobcast.settings import Settings
from jobcast.store import Store
from workers.sweep.sweeper import Turn

log = logging.getLogger(__name__)


class Outbox:
    name = "outbox"
    needs_redis = True

    def __init__(self, store: Store, queue: Queue, settings: Settings) -> None:
        self._store = store
        self._queue = queue
        self._grace_s = settings.outbox_grace_s
        self._stale_after_s = settings.stale_after_s

    async def run(self, turn: Turn) -> None:
        pending = {r["id"]: r for r in await self._store.pending(self._grace_s)}
        if not pending:
            return
        missing = await self._queue.missing(list(pending))
        queued = list(pending.keys() - set(missing))
        abandoned = await self._queue.abandoned(queued, self._stale_after_s)
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
