"""Jobs as their owners see them: read, list, cancel (submits: ``new_jobs``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from jobcast.model import Event, Job
from jobcast.sql import QUERIES
from jobcast.store import rows
from jobcast.store.base import StoreBase

_MAX_SEQ = 2**63 - 1  # job_events.seq is a bigint


class Jobs(StoreBase):
    async def get_job(self, job_id: UUID, owner_id: UUID | None = None) -> Job | None:
        row = await self._run(lambda: self.pool.fetchrow(QUERIES["get_job"], job_id, owner_id))
        return rows.job(row) if row is not None else None

    async def job_snapshot(
        self, job_id: UUID, owner_id: UUID, after: int, limit: int
    ) -> tuple[Job, list[Event]] | None:
        """What a websocket starts with: the owner's job as ``get_job`` reads it, without its
        streams' text (``streams`` is None), and its first ``limit`` stored events after
        ``after`` (none after the job's own seq), read together: the stream events among
        them carry the text."""
        after = min(after, _MAX_SEQ)  # past any seq, and within what a bigint holds
        row = await self._run(
            lambda: self.pool.fetchrow(QUERIES["job_snapshot"], job_id, owner_id, after, limit)
        )
        if row is None:
            return None
        return rows.job(row), [rows.replayed(job_id, r) for r in row["replay"]]

    async def job_seq(self, job_id: UUID, owner_id: UUID) -> int | None:
        """The seq of the owner's job (None: no such job of theirs), without reading it."""
        seq: int | None = await self._run(
            lambda: self.pool.fetchval(QUERIES["job_seq"], job_id, owner_id)
        )
        return seq

    async def list_jobs(
        self,
        owner_id: UUID,
        *,
        status: str | None = None,
        type: str | None = None,
        limit: int = 50,
    ) -> list[Job]:
        found = await self._run(
            lambda: self.pool.fetch(QUERIES["list_jobs"], owner_id, status, type, limit)
        )
        return [rows.job(r) for r in found]

    async def children_state(self, parent_id: UUID) -> list[asyncpg.Record]:
        found: list[asyncpg.Record] = await self._run(
            lambda: self.pool.fetch(QUERIES["children_state"], parent_id)
        )
        return found

    async def events_after(self, job_id: UUID, after: int, limit: int = 1000) -> list[Event]:
        found = await self._run(
            lambda: self.pool.fetch(QUERIES["events_after"], job_id, after, limit)
        )
        return [rows.event(r) for r in found]

    async def events_since(
        self, job_ids: list[UUID], since: datetime, limit: int = 1000
    ) -> list[Event]:
        """The events of these jobs written after ``since`` (no progress), oldest first."""
        found = await self._run(
            lambda: self.pool.fetch(QUERIES["events_since"], job_ids, since, limit)
        )
        return [rows.event(r) for r in found]

    async def cancel(self, job_id: UUID, owner_id: UUID) -> list[Event] | None:
        """Cancel a pending or running job and its active descendants; their events.

        None if the job is not (or no longer) active.
        """
        payload = {"status": "cancelled", "message": "Cancelled"}
        row = await self._cancel_one(job_id, owner_id, payload)
        if row is None:
            return None
        events = [rows.event_of_change(row)]
        child_payload = {"status": "cancelled", "message": "Cancelled with its parent job"}
        tree = await self._run(lambda: self.pool.fetch(QUERIES["tree"], job_id, owner_id))
        for child in tree[1:]:
            child_row = await self._cancel_one(child["id"], owner_id, child_payload)
            if child_row is not None:
                events.append(rows.event_of_change(child_row))
        return events

    async def _cancel_one(
        self, job_id: UUID, owner_id: UUID, payload: dict[str, Any]
    ) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run(
            lambda: self.pool.fetchrow(QUERIES["cancel"], job_id, owner_id, payload)
        )
        return row

    async def notify_event(self, event: Event) -> None:
        """Tell every listening server process that this event exists (NOTIFY, ids only:
        every one hears it, of whatever version)."""
        payload = f"{event.job_id} {event.seq} {event.owner_id} {event.kind}"
        await self._run(lambda: self.pool.execute(QUERIES["notify_event"], payload))
