"""The reports of a worker's jobs (progress, and steps) and their ends, stored many jobs to
a statement.

Every running job of a worker stores its progress reports, its steps' starts and ends,
and its attempt's end (completed, or failed for good) here rather than one statement
each: a report that comes while no statement of these is in flight is written at once,
alone (so a quiet worker adds no wait); reports that come while one is in flight wait
for it and then go together, in one statement (``reports``; the ends in ``finishes``,
just after it), each fenced by its attempt. Under load a statement carries as many
reports as the worker's jobs made meanwhile, so Postgres commits once for all of them;
the writer lets the loop run once between statements, so that the jobs whose reports the
last statement stored join the next one too.

The worker's heartbeat, the other statement that updates many of its running jobs' rows,
runs ``alone``: never while a statement of these is in flight, nor one while it is. So
neither statement needs to lock its rows in an order the other shares (each would
otherwise wait on the other in a circle, a deadlock Postgres ends after a second), and the
rows are updated as the statement's plan reaches them, with no locking pass before.

The events a statement stored are handed to the worker's publisher as soon as it answers,
before the jobs that made them run again: its sender then goes before them in the event
loop's next turn, not after every one of them (each job hands its event over again, as it
does every event it writes; the publisher skips that one). Each job still waits for its
own report to be stored, and gets its own event back, before it goes on (a step's end is
its checkpoint, stored before the job's next line runs): every event is stored with its
gap-free ``seq`` before any watcher sees it, and a job's events keep their order (a job
writes one at a time). When Postgres is away, each report in the statement fails as its own
statement would have (and each job tries again, as it does with any write). A statement that
fails for what one report holds is tried again one report at a time, so only that report
fails; one that Postgres ends for a deadlock is tried again whole, and after the third, one
report at a time. An end that may release parked jobs is not written here but alone
(``workers/runner.py``, ``_end``): its release takes its key's lock to the commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID

import asyncpg

from jobcast.bus import Publisher
from jobcast.errors import StorageUnavailable
from jobcast.gathering import cancel_all, once_a_job
from jobcast.model import Event
from jobcast.store import Store
from jobcast.store.reports import JobEnd, Report

log = logging.getLogger(__name__)

_DEADLOCK_TRIES = 3

Written = Report | JobEnd
Waiting = tuple[Written, "asyncio.Future[Event | None]"]
T = TypeVar("T")


class ReportWrites:
    """Stores the reports of a worker's jobs, gathered while a statement runs."""

    def __init__(self, store: Store, publisher: Publisher | None = None) -> None:
        self._store = store
        self._publisher = publisher
        self._waiting: list[Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self._statement = asyncio.Lock()  # a statement of these, or the heartbeat's

    async def alone(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run another statement on this worker's running jobs (the heartbeat) with no
        statement of these in flight, and none starting until it is through."""
        async with self._statement:
            return await call()

    async def write(self, report: Written) -> Event | None:
        """Store one job's report, or its attempt's end; its event, or None when it did not
        apply (its attempt no longer runs; a step's start while a pause is asked)."""
        future: asyncio.Future[Event | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((report, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all(), name="report-writes")
        return await future

    async def _write_all(self) -> None:
        batch: list[Waiting] = []
        try:
            while self._waiting:
                batch, self._waiting = once_a_job(self._waiting, lambda w: w.job_id)
                # a job's end comes only once its last report is stored: no job has both
                ends = [item for item in batch if isinstance(item[0], JobEnd)]
                await self._write([item for item in batch if not isinstance(item[0], JobEnd)])
                await self._write(ends)
                # The jobs whose reports were just stored make their next ones when the
                # loop next runs them: waiting that one turn puts those in the next
                # statement with the reports that came meanwhile, rather than in the one
                # after it (each job otherwise waits behind the other half's statement)
                await asyncio.sleep(0)
        except BaseException:
            cancel_all(batch, self._waiting)
            self._waiting = []
            raise
        finally:
            self._writer = None

    async def _write(self, batch: list[Waiting]) -> None:
        live = [(report, future) for report, future in batch if not future.done()]
        if not live:  # every job that asked was stopped meanwhile
            return
        for tried in range(1, _DEADLOCK_TRIES + 1):
            try:
                async with self._statement:
                    events = await self._record([r for r, _ in live])
            except asyncpg.DeadlockDetectedError as exc:
                if tried < _DEADLOCK_TRIES:  # rolled back whole: nothing of it was stored
                    log.info("reports of %d jobs: %s; trying again", len(live), exc)
                    continue
                await self._each_alone(live, exc)  # alone, none waits on another of them
            except StorageUnavailable as exc:
                _fail(live, exc)
            except Exception as exc:
                await self._each_alone(live, exc)
            else:
                if self._publisher is not None:  # published at once, not after every job ran
                    self._publisher.publish_early(
                        event
                        for report, _ in live
                        if (event := events.get(report.job_id)) is not None
                    )
                for report, future in live:
                    if not future.done():
                        future.set_result(events.get(report.job_id))
            return

    async def _each_alone(self, live: list[Waiting], exc: BaseException) -> None:
        """A statement of these failed for what one of them holds, or for a deadlock that
        their locks made each time: each is tried again alone, so only its own can fail."""
        if len(live) == 1:
            _fail(live, exc)
            return
        log.warning("reports of %d jobs: %s; storing each alone", len(live), exc)
        for one in live:
            await self._write([one])

    async def _record(self, written: list[Written]) -> dict[UUID, Event]:
        """One statement for a batch of reports, or of ends (never both)."""
        ends = [w for w in written if isinstance(w, JobEnd)]
        if ends:
            return await self._store.record_ends(ends)
        return await self._store.record_reports([w for w in written if not isinstance(w, JobEnd)])


def _fail(batch: list[Waiting], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
