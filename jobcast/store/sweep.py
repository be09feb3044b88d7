"""What the periodic sweep reads and deletes: its lease, stale and waiting jobs, and old data."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from jobcast.model import Event
from jobcast.sql import QUERIES
from jobcast.store import rows
from jobcast.store.base import StoreBase, row_count


class Sweep(StoreBase):
    async def take_lease(self, name: str, holder: str, duration_s: float) -> bool:
        """Hold (or keep holding) the named lease for duration_s; False if another holds it."""
        got = await self._run(
            lambda: self.pool.fetchval(QUERIES["take_lease"], name, holder, duration_s)
        )
        return got is not None

    async def stale_running(self, stale_after_s: float, limit: int = 200) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._run(
            lambda: self.pool.fetch(QUERIES["stale_running"], stale_after_s, limit)
        )
        return rows

    async def pending(self, older_than_s: float, limit: int = 1000) -> list[asyncpg.Record]:
        """Pending jobs unchanged for a while: id, priority, delay_s."""
        rows: list[asyncpg.Record] = await self._run(
            lambda: self.pool.fetch(QUERIES["pending"], older_than_s, limit)
        )
        return rows

    async def past_pending_limit(
        self, limits_s: dict[str, float], limit: int = 200
    ) -> list[asyncpg.Record]:
        """Due jobs waiting for a slot past their type's limit: id, type, waited_s, limit_s."""
        if not limits_s:
            return []
        types = list(limits_s)
        found: list[asyncpg.Record] = await self._run(
            lambda: self.pool.fetch(
                QUERIES["past_pending_limit"], types, [limits_s[t] for t in types], limit
            )
        )
        return found

    async def fail_pending(
        self, job_id: UUID, limit_s: float, *, error: dict[str, Any]
    ) -> Event | None:
        """Fail a job still waiting past its limit; its final event (None: it moved on)."""
        payload = {"status": "failed", "error": error, "message": error["message"]}
        row = await self._run(
            lambda: self.pool.fetchrow(
                QUERIES["fail_pending"], job_id, limit_s, error, error["message"], payload
            )
        )
        return rows.event_of_change(row) if row is not None else None

    async def mark_stuck(self, job_id: UUID, limit_s: float, *, message: str) -> Event | None:
        """Mark a job still waiting past its limit as stuck; its event (None: it moved on)."""
        payload = {"status": "pending", "message": message, "stuck": True}
        row = await self._run(
            lambda: self.pool.fetchrow(QUERIES["mark_stuck"], job_id, limit_s, message, payload)
        )
        return rows.event_of_change(row) if row is not None else None

    async def priorities(self, job_ids: list[UUID]) -> dict[UUID, int]:
        rows = await self._run(lambda: self.pool.fetch(QUERIES["priorities"], job_ids))
        return {r["id"]: r["priority"] for r in rows}

    async def expire_results(
        self, ttl_by_type: dict[str, float], since: dict[str, datetime]
    ) -> tuple[int, dict[str, datetime]]:
        """Drop the results older than their type's result_ttl_s (``/result`` then answers
        410), of the jobs finished since each type's last pass (``since``; a type not in it:
        from the first job). How many, and each type's cutoff: where its next pass starts."""
        if not ttl_by_type:
            return 0, {}
        types = list(ttl_by_type)
        rows = await self._run(
            lambda: self.pool.fetch(
                QUERIES["expire_results"],
                types,
                [ttl_by_type[t] for t in types],
                [since.get(t) for t in types],
            )
        )
        return rows[0]["expired"], {r["type"]: r["cutoff"] for r in rows}

    async def delete_expired(
        self, completed_days: float, failed_days: float, cancelled_days: float
    ) -> int:
        status = await self._run(
            lambda: self.pool.execute(
                QUERIES["retention"], completed_days, failed_days, cancelled_days
            )
        )
        return row_count(status)
