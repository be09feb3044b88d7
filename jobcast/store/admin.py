"""The operator's verbs: search every owner's jobs, act on many at once, pause a type.

A bulk action runs in batches, each one statement (``admin_cancel``, ``admin_retry``,
``admin_delete``): a crash between batches leaves each job done or untouched, never half,
and the web process answers other requests between them.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from jobcast.model import Event, Job
from jobcast.sql import QUERIES
from jobcast.store import rows
from jobcast.store.base import StoreBase, row_count

# the statuses each action applies to
ACTION_STATUSES: dict[str, list[str]] = {
    "cancel": ["pending", "running", "waiting", "paused", "draft"],
    "retry": ["failed", "cancelled"],
    "delete": ["completed", "failed", "cancelled"],
}


@dataclass(frozen=True, slots=True)
class AdminQuery:
    """The admin's filter over every owner's jobs; None: any."""

    owner: UUID | None = None
    status: str | None = None
    type: str | None = None
    tag: str | None = None
    tenant: str | None = None
    subject: str | None = None
    error_class: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    error_text: str | None = None

    def args(self) -> tuple[Any, ...]:
        """The filter's parameters, $1 to $10 of ``admin_filter``."""
        return astuple(self)


@dataclass(frozen=True, slots=True)
class PausedType:
    type: str
    paused_at: datetime
    paused_by: str


@dataclass(frozen=True, slots=True)
class Requeue:
    """A pending job to put on the queue again."""

    id: UUID
    priority: int
    delay_s: float


class Admin(StoreBase):
    async def admin_jobs(
        self, query: AdminQuery, *, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[Job]:
        """Jobs the query matches, newest first, after the cursor (created_at, id)."""
        at, job_id = after if after else (None, None)
        found = await self._run(
            lambda: self.pool.fetch(QUERIES["admin_jobs"], *query.args(), at, job_id, limit)
        )
        return [rows.job(r) for r in found]

    async def admin_count(self, query: AdminQuery, action: str) -> int:
        """How many jobs an action on this query would touch now."""
        n: int = await self._run(
            lambda: self.pool.fetchval(
                QUERIES["admin_count"], *query.args(), ACTION_STATUSES[action]
            )
        )
        return n

    async def admin_batch(
        self, query: AdminQuery, action: str, after: UUID | None, size: int
    ) -> list[UUID]:
        """The next ids (by id, after ``after``) an action on this query applies to."""
        found = await self._run(
            lambda: self.pool.fetch(
                QUERIES["admin_batch"], *query.args(), ACTION_STATUSES[action], after, size
            )
        )
        return [r["id"] for r in found]

    async def cancel_many(self, ids: list[UUID]) -> list[Event]:
        """Cancel those of the jobs still unfinished and their unfinished descendants, all in
        one statement; their events (the descendants' after the jobs asked for)."""
        payload = {"status": "cancelled", "message": "Cancelled by an operator"}
        child = {"status": "cancelled", "message": "Cancelled with its parent job"}
        found = await self._run(
            lambda: self.pool.fetch(QUERIES["admin_cancel"], ids, payload, child)
        )
        return [rows.event_of_change(r) for r in found]

    async def retry_many(self, ids: list[UUID]) -> list[tuple[Event, int]]:
        """Retry those of the jobs failed or cancelled and not yet retried, in one
        statement; each retry's first event and priority."""
        payload = {"status": "pending", "progress": 0, "message": "Queued"}
        found = await self._run(lambda: self.pool.fetch(QUERIES["admin_retry"], ids, payload))
        return [(rows.event_of_change(r), r["priority"]) for r in found]

    async def delete_many(self, ids: list[UUID]) -> int:
        """Delete those of the jobs that are finished; how many were."""
        status: str = await self._run(lambda: self.pool.execute(QUERIES["admin_delete"], ids))
        return row_count(status)

    async def start_action(
        self, action_id: UUID, action: str, actor: str, target: Any, matched: int
    ) -> None:
        await self._run(
            lambda: self.pool.execute(
                QUERIES["start_action"], action_id, action, actor, target, matched
            )
        )

    async def action_progress(self, action_id: UUID, done: int, finished: bool) -> None:
        await self._run(
            lambda: self.pool.execute(QUERIES["action_progress"], action_id, done, finished)
        )

    async def job_history(self, job_id: UUID) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
        """A job's claims (attempt, worker, claimed_at) and its checkpoints, for the console."""

        async def read() -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
            async with self.pool.acquire() as conn:
                claims = await conn.fetch(QUERIES["job_claims"], job_id)
                return claims, await conn.fetch(QUERIES["job_checkpoints"], job_id)

        return await self._run(read)

    async def recent_actions(self, limit: int = 20) -> list[asyncpg.Record]:
        found: list[asyncpg.Record] = await self._run(
            lambda: self.pool.fetch(QUERIES["recent_actions"], limit)
        )
        return found

    async def pause_type(self, job_type: str, actor: str) -> None:
        await self._run(lambda: self.pool.execute(QUERIES["pause_type"], job_type, actor))

    async def resume_type(self, job_type: str) -> list[Requeue]:
        """Resume a type's queue; its pending jobs, to put on the queue again."""
        found = await self._run(lambda: self.pool.fetch(QUERIES["resume_type"], job_type))
        return [Requeue(r["id"], r["priority"], r["delay_s"]) for r in found]

    async def paused_types(self) -> list[PausedType]:
        found = await self._run(lambda: self.pool.fetch(QUERIES["paused_types"]))
        return [PausedType(r["type"], r["paused_at"], r["paused_by"]) for r in found]

    async def status_changes(self, after: datetime, limit: int = 500) -> list[asyncpg.Record]:
        """Status changes of any job after a time, oldest first."""
        found: list[asyncpg.Record] = await self._run(
            lambda: self.pool.fetch(QUERIES["status_changes"], after, limit)
        )
        return found

    async def series(self, window_s: int, bucket_s: int) -> dict[str, list[asyncpg.Record]]:
        """The console's charts: jobs by bucket and type, queue depth and status changes."""

        async def read() -> dict[str, list[asyncpg.Record]]:
            async with self.pool.acquire() as conn:
                return {
                    "jobs": await conn.fetch(QUERIES["series_jobs"], window_s, bucket_s),
                    "depth": await conn.fetch(QUERIES["series_depth"], window_s, bucket_s),
                    "events": await conn.fetch(QUERIES["series_events"], window_s, bucket_s),
                }

        return await self._run(read)

    async def operating_gauges(self, lease_name: str) -> asyncpg.Record:
        """The sweep's lease overdue (seconds) and the processes on the NOTIFY fallback."""
        row: asyncpg.Record | None = await self._run(
            lambda: self.pool.fetchrow(QUERIES["operating_gauges"], lease_name)
        )
        assert row is not None  # one row, always
        return row
