"""Concurrency keys: a job's keys, the jobs parked on them, and the operator's limits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from jobcast.concurrency import JobKey, Kind
from jobcast.sql import QUERIES
from jobcast.store.base import StoreBase


@dataclass(frozen=True, slots=True)
class KeyLimitRow:
    """An operator's limit for a key, with the key's running and parked jobs now."""

    key: str
    kind: Kind
    limit: int
    period_s: float | None
    set_by: str
    updated_at: datetime
    running: int | None = None
    parked: int = 0


def _limit_row(row: asyncpg.Record) -> KeyLimitRow:
    return KeyLimitRow(
        key=row["key"],
        kind=row["kind"],
        limit=row["lim"],
        period_s=row["period_s"],
        set_by=row["set_by"],
        updated_at=row["updated_at"],
        running=row["running"] if "running" in row.keys() else None,
        parked=row["parked"] if "parked" in row.keys() else 0,
    )


async def insert_keys(
    on: asyncpg.Pool | asyncpg.pool.PoolConnectionProxy, job_id: UUID, keys: list[JobKey]
) -> None:
    """Store a job's keys (before it is queued: the gate reads them at claim)."""
    await on.execute(
        QUERIES["set_job_keys"],
        job_id,
        [k.kind for k in keys],
        [k.key for k in keys],
        [k.limit for k in keys],
        [k.period_s for k in keys],
    )


class Limits(StoreBase):
    async def job_keys(self, job_id: UUID) -> list[JobKey]:
        rows = await self._run(lambda: self.pool.fetch(QUERIES["job_keys"], job_id))
        return [JobKey(r["kind"], r["key"], r["lim"], r["period_s"]) for r in rows]

    async def parked_keys(self) -> list[str]:
        """Keys with parked jobs that may have room now (the sweep's pass)."""
        rows = await self._run(lambda: self.pool.fetch(QUERIES["parked_keys"]))
        return [r["key"] for r in rows]

    async def release_key(self, key: str) -> list[asyncpg.Record]:
        """Release the parked jobs the key has room for: id, owner_id, priority, fair_key,
        delay_s."""
        rows: list[asyncpg.Record] = await self._run(
            lambda: self.pool.fetch(QUERIES["release_key"], key)
        )
        return rows

    async def set_key_limit(
        self, key: str, kind: Kind, limit: int, period_s: float | None, set_by: str
    ) -> KeyLimitRow:
        row: asyncpg.Record | None = await self._run(
            lambda: self.pool.fetchrow(QUERIES["set_key_limit"], key, kind, limit, period_s, set_by)
        )
        if row is None:  # an upsert with RETURNING answers one row
            raise RuntimeError(f"set_key_limit returned no row for {key!r}")
        return _limit_row(row)

    async def clear_key_limit(self, key: str, kind: Kind | None = None) -> int:
        """Drop the operator's limit(s) of a key; how many were dropped."""
        rows = await self._run(lambda: self.pool.fetch(QUERIES["clear_key_limit"], key, kind))
        return len(rows)

    async def key_limits(self) -> list[KeyLimitRow]:
        rows = await self._run(lambda: self.pool.fetch(QUERIES["key_limits"]))
        return [_limit_row(r) for r in rows]

    async def drop_old_starts(self, older_than_s: float) -> None:
        await self._run(lambda: self.pool.execute(QUERIES["drop_old_starts"], older_than_s))
