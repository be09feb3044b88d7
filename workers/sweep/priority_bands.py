"""Priority bands: delayed and retried jobs that are due are ranked by priority.

arq keeps a delayed job under its due time as its score; once due, it would run
in the lowest band. The sweep moves it into its priority's band (docs/job-types.md).
"""

from __future__ import annotations

from jobcast.queue import Queue
from jobcast.store import Store
from workers.sweep.sweeper import Turn


class PriorityBands:
    name = "priority bands"
    needs_redis = True

    def __init__(self, store: Store, queue: Queue) -> None:
        self._store = store
        self._queue = queue

    async def run(self, turn: Turn) -> None:
        due = await self._queue.due_unranked()
        if due:
            await self._queue.promote(await self._store.priorities(due))
