"""The submits of a web process, many to a statement when they come together.

A submit made while no statement of submits is in flight goes at once, alone, by the
one-job statement (``create_job``), so a quiet process adds no wait. Submits made while
one is in flight wait for it and then go together (``create_jobs``): under a burst of
submits, Postgres commits once for all of them, as the worker's claims are gathered
(``workers/claims.py``; both by ``jobcast.gathering.Gatherer``). Under a stream of
submits (some waited for the last statement), one that finds none in flight waits
``JOBCAST_GATHER_WAIT_MS`` for others to share its statement.

Only a job that ``NewJob.gathers`` waits to go with others: one with an idempotency key,
a debounce, uploads or keys of its own has a statement of its own at once, as before.

A submit whose request went away before its statement was sent is left out of it. One
that went away while the statement ran may have made its job: the job is committed and
the sweep queues it, as it does any job whose queueing Redis did not take. When Postgres
is away, each submit of the statement fails as its own would have; a statement that
fails for anything else (what one job holds, a deadlock) is tried again one job at a
time, so each submit gets its own answer.
"""

from __future__ import annotations

import asyncio
import logging

from jobcast.errors import StorageUnavailable
from jobcast.gathering import ALONE, Alone, Gatherer, settle
from jobcast.store import Created, NewJob, Store

log = logging.getLogger(__name__)

Made = Created | None
Waiting = tuple[NewJob, "asyncio.Future[Made | Alone]"]


class Submits(Gatherer[NewJob, Made]):
    """Stores a web process's new jobs, gathered while a statement of submits runs."""

    def __init__(self, store: Store, wait_s: float = 0.0) -> None:
        super().__init__("submits", wait_s=wait_s)
        self._store = store

    async def create(self, new: NewJob) -> Made:
        """Store a new job and its first event (``Store.create``): its Created, or None when
        its owner is at its cap on active jobs."""
        if not new.gathers:
            return await self._store.create(new)
        return await self._call(new, self._store.create)

    async def _together(self, live: list[Waiting]) -> None:
        # one fairness window a statement: a process has one, but keep apart any that differ
        windows = {new.fair_window for new, _ in live}
        if len(windows) > 1:
            for window in sorted(windows):
                await self._together([w for w in live if w[0].fair_window == window])
            return
        try:
            made = await self._store.create_jobs([new for new, _ in live])
        except StorageUnavailable as exc:
            for _, future in live:
                if not future.done():
                    future.set_exception(exc)
        except Exception as exc:  # rolled back whole: each goes alone, for its own answer
            log.info("submits of %d jobs: %s; storing each alone", len(live), exc)
            for _, future in live:
                settle(future, ALONE)
        else:
            for (_, future), created in zip(live, made, strict=True):
                settle(future, created)
