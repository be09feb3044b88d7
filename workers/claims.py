"""The claims of a worker's jobs, many to a statement when they start together.

Each job arq starts here is claimed in Postgres before it runs (``workers/runner.py``). A
claim made while no statement of claims is in flight goes at once, alone, by the one-job
statement (``claim``), so a quiet worker adds no wait. Claims made while one is in flight
wait for it and then go together (``claims``): when many jobs start at once (a backlog
drained, the slots of jobs that ended together), Postgres commits once for all of them.
Under a stream of claims (some waited for the last statement), one that finds none in
flight waits ``JOBCAST_GATHER_WAIT_MS`` for others to share its statement.

The statement of many claims admits only jobs that need no key's lock: a job with a
concurrency key or throttle of its own, or of a capped or limited type, is claimed by its
own statement just after, whose gate takes its keys' locks in key order. Locks of the keys
of many jobs, taken in one transaction, could wait on another worker's in a circle; the
statement of many locks only the jobs' rows, in the order of their ids. So is a job that
another job of the same statement released from its fairness group's parking.

A claim by its own statement runs in the task of the job it starts, as it always did: the
worker's stop, cancelling that task, cancels the statement, and the job stays pending
with no attempt counted. A statement of many runs in a task of its own, which no one
job's cancel stops; a job it claimed whose task was cancelled meanwhile is handed back
at once, pending again with its attempt not counted.

When Postgres is away, each claim of the statement fails as its own would have (and its
job is handed back to arq, as before). A statement that fails for what one job holds, or
that Postgres ends for a deadlock three times, is tried again one claim at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

import asyncpg

from jobcast.errors import StorageUnavailable
from jobcast.gathering import ALONE, Alone, Gatherer, once_a_job, settle
from jobcast.model import Claim
from jobcast.store import Held, Store

log = logging.getLogger(__name__)

_DEADLOCK_TRIES = 3
HANDED_BACK = "The worker stopped before the job started; it will start on another worker"

Claimed = Claim | Held | None
Waiting = tuple[UUID, "asyncio.Future[Claimed | Alone]"]


class Claims(Gatherer[UUID, Claimed]):
    """Claims a worker's jobs, gathered while a statement of claims runs."""

    def __init__(
        self,
        store: Store,
        caps: Callable[[], dict[str, int]],
        worker: str,
        outlives: Callable[[asyncio.Task[Any]], None] = lambda _: None,
        wait_s: float = 0.0,
    ) -> None:
        super().__init__("claims", outlives, wait_s)  # the worker keeps its store open for it
        self._store = store
        self._caps = caps
        self._worker = worker

    async def claim(self, job_id: UUID) -> Claimed:
        """Start the next attempt of a pending job (``Store.claim``): its Claim, Held when
        a key has no room (parked), None when it is not pending."""
        return await self._call(job_id, self._alone)

    async def _alone(self, job_id: UUID) -> Claimed:
        return await self._store.claim(job_id, self._caps(), worker=self._worker)

    def _split(self, waiting: list[Waiting]) -> tuple[list[Waiting], list[Waiting]]:
        return once_a_job(waiting, lambda j: j)

    async def _together(self, live: list[Waiting]) -> None:
        for tried in range(1, _DEADLOCK_TRIES + 1):
            try:
                claims = await self._store.claim_many(
                    [job_id for job_id, _ in live], self._caps(), worker=self._worker
                )
            except asyncpg.DeadlockDetectedError as exc:
                if tried < _DEADLOCK_TRIES:  # rolled back whole: nothing of it was stored
                    log.info("claims of %d jobs: %s; trying again", len(live), exc)
                    continue
                log.warning("claims of %d jobs: %s; claiming each alone", len(live), exc)
                _settle_all(live, ALONE)
            except StorageUnavailable as exc:
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
            except Exception as exc:
                log.warning("claims of %d jobs: %s; claiming each alone", len(live), exc)
                _settle_all(live, ALONE)
            else:
                # a job left out needs its keys' locks, or another of them released it
                answers = [(future, claims.get(job_id, ALONE)) for job_id, future in live]
                unwanted = [c for f, c in answers if f.done() and isinstance(c, Claim)]
                for future, answer in answers:
                    settle(future, answer)
                for claim in unwanted:
                    await self._hand_back(claim)
            return

    async def _hand_back(self, claim: Claim) -> None:
        """A job claimed for a task cancelled meanwhile (the worker stopping): pending
        again, its attempt not counted, for another worker (arq still has it queued)."""
        try:
            await self._store.hand_back(claim.job.id, claim.attempt, message=HANDED_BACK)
        except Exception as exc:  # the sweep recovers it from its stale heartbeat
            log.warning(
                "job %s: claimed as its start was cancelled, not handed back: %s", claim.job.id, exc
            )
        else:
            log.info("job %s: claimed as its start was cancelled; handed back", claim.job.id)


def _settle_all(live: list[Waiting], answer: Claimed | Alone) -> None:
    for _, future in live:
        settle(future, answer)
