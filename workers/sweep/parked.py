"""Parked jobs: a key with room releases the jobs parked on it.

A parked job is normally released by the end of the job whose slot it waits for, in
that job's transaction. This pass catches the rest: a throttle's window that has passed
(nothing ends to say so), a limit an operator raised, and a type's cap, whose release on
a job's end is skipped where nothing seemed parked a moment before. It also drops the
throttles' starts older than the longest window.
"""

from __future__ import annotations

import logging

from jobcast.concurrency import MAX_PERIOD_S
from jobcast.queue import Queue
from jobcast.store import Store
from workers.released import queue_rows
from workers.sweep.sweeper import Turn

log = logging.getLogger(__name__)


class Parked:
    name = "parked jobs"
    needs_redis = True

    def __init__(self, store: Store, queue: Queue) -> None:
        self._store = store
        self._queue = queue

    async def run(self, turn: Turn) -> None:
        released = 0
        for key in await self._store.parked_keys():
            if not turn.held:
                return
            rows = await self._store.release_key(key)
            await queue_rows(self._queue, rows)
            released += len(rows)
        if released:
            log.info("parked jobs: %d released and queued", released)
        await self._store.drop_old_starts(MAX_PERIOD_S)
