"""Batches: many jobs submitted at once, all in one transaction, and their state together.

A batch is all or nothing: every job is stored, or (the owner's cap on active jobs
reached part way) none is. A job whose idempotency key made it before is the batch's
too, as it stands.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any
from uuid import UUID, uuid4

from jobcast.concurrency import JobKey
from jobcast.errors import TooManyRequests
from jobcast.registry import JobType
from jobcast.sql import QUERIES
from jobcast.store.new_jobs import Created, NewJobs


@dataclass(frozen=True)
class BatchJob:
    """One job of a batch, checked and ready to store."""

    job_type: JobType
    params: dict[str, Any]
    priority: int = 0
    delay_s: float = 0.0
    max_attempts: int | None = None
    timeout_s: float | None = None
    estimated_s: float | None = None
    idempotency_key: str | None = None
    callback_url: str | None = None
    subject: str | None = None
    tenant: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    keys: list[JobKey] | None = None


@dataclass(frozen=True)
class BatchJobState:
    id: UUID
    type: str | None
    status: str | None  # None: the job was deleted since
    progress: float
    step: str | None
    message: str | None
    error: dict[str, Any] | None
    seq: int | None  # its last event's: an event at or below it is counted already


class _CapReached(Exception):
    """Raised inside the batch's transaction, so that it rolls back."""


class Batches(NewJobs):
    async def create_batch(
        self,
        owner_id: UUID,
        jobs: list[BatchJob],
        *,
        max_active: int | None,
        fair_window: int = 0,
    ) -> tuple[UUID, list[Created]]:
        """Store every job and the batch, in one transaction; TooManyRequests (nothing
        stored) when the owner's cap on active jobs is reached part way."""
        batch_id = uuid4()
        made: list[Created] = []

        async def store_all() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                for job in jobs:
                    given = {f.name: getattr(job, f.name) for f in fields(job)}
                    created = await self.create_job(
                        owner_id=owner_id,
                        max_active=max_active,
                        fair_window=fair_window,
                        within=conn,
                        **given,
                    )
                    if created is None:
                        raise _CapReached
                    made.append(created)
                await conn.execute(
                    QUERIES["create_batch"], batch_id, owner_id, [c.job.id for c in made]
                )

        try:
            await self._run(store_all)
        except _CapReached:
            raise TooManyRequests(
                f"at most {max_active} active jobs: this batch of {len(jobs)} would pass it; "
                "nothing of it was stored",
                retry_after_s=5,
            ) from None
        return batch_id, made

    async def batch_jobs(self, batch_id: UUID, owner_id: UUID) -> list[BatchJobState] | None:
        """A batch's jobs in the order given; None when the owner has no such batch."""
        found = await self._run(lambda: self.pool.fetch(QUERIES["batch_jobs"], batch_id, owner_id))
        if not found:
            return None
        return [
            BatchJobState(
                id=r["id"],
                type=r["type"],
                status=r["status"],
                progress=r["progress"] or 0.0,
                step=r["step"],
                message=r["message"],
                error=r["error"],
                seq=r["seq"],
            )
            for r in found
        ]
