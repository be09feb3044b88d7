"""Webhook deliveries: the tries of each job's completion webhook."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from jobcast.sql import QUERIES
from jobcast.store.base import StoreBase


class Deliveries(StoreBase):
    async def claim_deliveries(self, limit: int, claim_s: float) -> list[asyncpg.Record]:
        """Due webhook tries, each this worker's alone for claim_s: no other worker gets it."""
        rows: list[asyncpg.Record] = await self._run(
            lambda: self.pool.fetch(QUERIES["claim_deliveries"], limit, claim_s)
        )
        return rows

    async def record_delivery(
        self,
        job_id: UUID,
        attempt: int,
        *,
        delivered: bool,
        status_code: int | None,
        error: str | None,
        retry_in_s: float | None,
    ) -> None:
        """Record one try; schedule the next (retry_in_s) or give up (None)."""

        async def write() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                status = "delivered" if delivered else ("retrying" if retry_in_s else "failed")
                await conn.execute(
                    QUERIES["record_delivery"], job_id, attempt, status, status_code, error
                )
                if not delivered and retry_in_s:
                    await conn.execute(QUERIES["next_delivery"], job_id, attempt + 1, retry_in_s)

        await self._run(write)
