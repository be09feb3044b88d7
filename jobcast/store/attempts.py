"""Attempts: the state changes a worker makes, each one statement fenced by its attempt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from jobcast.model import Claim, Event, JobStatus
from jobcast.queue import Queued
from jobcast.sql import QUERIES
from jobcast.store import rows
from jobcast.store.base import StoreBase
from jobcast.store.reports import JobEnd, Report, columns, end_columns


@dataclass(frozen=True, slots=True)
class Held:
    """A key of the job has no room (its type's cap is the key ``type:<name>``): the job
    is parked in Postgres until a slot frees (``until``: the throttle's window does)."""

    key: str
    limit: int
    until: datetime | None
    reason: str
    # the parked job of its fairness group released in its place: the worker queues it
    released: Queued | None = None


class Attempts(StoreBase):
    async def claim(
        self, job_id: UUID, caps: dict[str, int] | None = None, *, worker: str = "unnamed"
    ) -> Claim | Held | None:
        """Start the next attempt of a pending job, in one statement, noting the worker.

        None if it is not pending (or parked, or its type paused); Held if one of its keys
        has no room, its type's cap included (``caps`` maps type to the most jobs of it that
        may run at once, across all workers): it is parked by the same statement.
        """
        caps = caps or {}
        types = list(caps)
        row = await self._run(
            lambda: self.pool.fetchrow(
                QUERIES["claim"], job_id, types, [caps[t] for t in types], worker
            )
        )
        if row is None or row["gate_type"] is None:
            return None
        if row["id"] is None:
            if row["held_key"] is None:
                return None
            return Held(
                row["held_key"],
                row["held_limit"],
                row["held_until"],
                row["held_reason"],
                _released(row),
            )
        return _claimed(row)

    async def claim_many(
        self, job_ids: Sequence[UUID], caps: dict[str, int] | None = None, *, worker: str
    ) -> dict[UUID, Claim | None]:
        """Start the next attempt of many pending jobs, in one statement: by job id, its
        Claim, or None when it is not pending (or parked, or its type paused). A job left
        out needs its keys' locks (a key of its own, a capped type, a limited one), or was
        released by another of these: ``claim`` claims it alone."""
        types = list(caps or {})
        answer = await self._run(
            lambda: self.pool.fetch(QUERIES["claims"], list(job_ids), types, worker)
        )
        claims: dict[UUID, Claim | None] = {}
        for row in answer:
            if row["verdict"] != "alone":
                claims[row["gate_job"]] = _claimed(row) if row["id"] is not None else None
        return claims

    async def take_released(self, job_id: UUID) -> list[asyncpg.Record]:
        """The parked jobs this job's end released, to queue (each taken once)."""
        rows: list[asyncpg.Record] = await self._run(
            lambda: self.pool.fetch(QUERIES["take_released"], job_id)
        )
        return rows

    async def _change(self, query: str, *args: Any) -> Event | None:
        """Run a state change; its event, or None when the fence (or state) refused it."""
        row = await self._run(lambda: self.pool.fetchrow(QUERIES[query], *args))
        return rows.event_of_change(row) if row is not None else None

    async def note_waiting(self, job_id: UUID, message: str) -> Event | None:
        """Say why a pending job waits (one event, not one per look)."""
        payload = {"status": "pending", "message": message, "waiting_reason": message}
        return await self._change("note_waiting", job_id, message, payload)

    async def record_reports(self, reports: Sequence[Report]) -> dict[UUID, Event]:
        """Running jobs' reports (at most one a job) in one statement: the event of each
        job whose report applied, by job id (a job missing: its fence refused it, or, for a
        step's start, a pause is asked)."""
        if not reports:
            return {}
        arrays = columns(reports)
        rows_ = await self._run(lambda: self.pool.fetch(QUERIES["reports"], *arrays))
        return {row["id"]: rows.event_of_change(row) for row in rows_}

    async def record_ends(self, ends: Sequence[JobEnd]) -> dict[UUID, Event]:
        """Running attempts' ends (at most one a job) in one statement: the event of each
        job whose end applied, by job id (a job missing: its fence refused it)."""
        if not ends:
            return {}
        arrays = end_columns(ends)
        rows_ = await self._run(lambda: self.pool.fetch(QUERIES["finishes"], *arrays))
        return {row["id"]: rows.event_of_change(row) for row in rows_}

    async def record_end(self, end: JobEnd) -> Event | None:
        """One running attempt's end, alone in its statement: its event, or None when its
        fence refused it."""
        return (await self.record_ends([end])).get(end.job_id)

    async def finish(
        self,
        job_id: UUID,
        attempt: int,
        *,
        status: JobStatus,
        result: Any = None,
        error: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> Event | None:
        return await self.record_end(JobEnd(job_id, attempt, status, result, error, message))

    async def retry_later(
        self,
        job_id: UUID,
        attempt: int,
        *,
        delay_s: float,
        message: str,
        error: dict[str, Any],
    ) -> Event | None:
        payload = {
            "status": "pending",
            "attempt": attempt,
            "message": message,
            "error": error,
            "retry_in_s": round(delay_s, 3),
        }
        return await self._change("retry_later", job_id, attempt, delay_s, message, error, payload)

    async def hand_back(self, job_id: UUID, attempt: int, *, message: str) -> Event | None:
        payload = {"status": "pending", "attempt": attempt - 1, "message": message}
        return await self._change("hand_back", job_id, attempt, message, payload)

    async def heartbeat(self, attempts: dict[UUID, int]) -> set[UUID]:
        """Beat for these running attempts; returns the ids that are still theirs."""
        if not attempts:
            return set()
        ids = list(attempts)
        beaten = await self._run(
            lambda: self.pool.fetch(QUERIES["heartbeat"], ids, [attempts[i] for i in ids])
        )
        return {r["id"] for r in beaten}


def _claimed(row: asyncpg.Record) -> Claim:
    """The claim of an answer row of ``claim`` or ``claims`` that started the job."""
    job = rows.job(row)
    return Claim(
        job=job,
        attempt=job.attempts,
        event=rows.event_of_change(row),
        released=_released(row),
        checkpoints=rows.checkpoints(row["checkpoints"]),
        may_release=row["may_release"],
    )


def _released(row: asyncpg.Record) -> Queued | None:
    """The parked job a claim released in its place, to queue (None: none)."""
    if row["released"] is None:
        return None
    return Queued(
        row["released"],
        delay_s=row["released_delay_s"],
        priority=row["released_priority"],
        group=row["released_group"],
    )
