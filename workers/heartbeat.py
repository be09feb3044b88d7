"""Each worker beats for its running attempts; an attempt it no longer owns is stopped.

One batched UPDATE per interval confirms every attempt this worker runs. An
attempt missing from the answer was cancelled, or handed to another worker by
the reaper: its task is cancelled at once, so a cancel reaches a running job
within one interval, and a worker that was frozen stops as soon as it wakes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from uuid import UUID

from jobcast.errors import StorageUnavailable
from jobcast.store import Store

log = logging.getLogger(__name__)


@dataclass
class Running:
    attempt: int
    task: asyncio.Task[object]
    lost: bool = False


class Heartbeat:
    def __init__(self, store: Store, interval_s: float) -> None:
        self._store = store
        self._interval_s = interval_s
        self._running: dict[UUID, Running] = {}
        self.last_storage_failure = 0.0  # monotonic time Postgres last refused a beat

    def track(self, job_id: UUID, attempt: int, task: asyncio.Task[object]) -> Running:
        running = Running(attempt, task)
        self._running[job_id] = running
        return running

    def untrack(self, job_id: UUID) -> None:
        self._running.pop(job_id, None)

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.beat()

    async def beat(self) -> None:
        running = dict(self._running)
        try:
            ours = await self._store.heartbeat({j: r.attempt for j, r in running.items()})
        except StorageUnavailable as exc:
            self.last_storage_failure = time.monotonic()
            log.warning("heartbeat of %d jobs failed: %s", len(running), exc)
            return
        for job_id, state in running.items():
            if job_id not in ours and self._running.get(job_id) is state:
                log.info("job %s: attempt %d is no longer ours (cancelled or taken over); "
                         "stopping it", job_id, state.attempt)
                state.lost = True
                state.task.cancel()
