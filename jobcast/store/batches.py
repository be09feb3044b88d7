"""Batches: many jobs submitted at once, all in one transaction, and their state together.

A batch is all or nothing: every job is stored, or (the owner's cap on active jobs
reached part way) none is. A job whose idempotency key made it before is the batch's
too, as it stands. The whole batch is one statement, each column passed as an array.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID, uuid4

import orjson

from jobcast.errors import Conflict, TooManyRequests
from jobcast.registry import JobType
from jobcast.sql import QUERIES
from jobcast.store import rows
from jobcast.store.jobs import Created, Jobs, waiting_steps


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


@dataclass(frozen=True)
class BatchJobState:
    id: UUID
    type: str | None
    status: str | None  # None: the job was deleted since
    progress: float
    step: str | None
    message: str | None
    error: dict[str, Any] | None


class Batches(Jobs):
    async def create_batch(
        self, owner_id: UUID, jobs: list[BatchJob], *, max_active: int | None
    ) -> tuple[UUID, list[Created]]:
        """Store every job and the batch in one statement (one transaction, one round trip);
        TooManyRequests (nothing stored) when the new jobs would pass the owner's cap on
        active jobs. A job its idempotency key had made is the batch's, as it stands."""
        batch_id = uuid4()
        args = _columns(batch_id, owner_id, jobs, max_active)
        found = await self._insert(lambda: self.pool.fetch(QUERIES["create_batch"], *args))
        if found and found[0]["gate_ok"] is None:
            raise TooManyRequests(
                f"at most {max_active} active jobs: this batch of {len(jobs)} would pass it; "
                "nothing of it was stored",
                retry_after_s=5,
            )
        made: list[Created] = []
        for row, spec in zip(found, jobs, strict=True):
            if row["gate_existing"] is not None:
                job = await self.get_job(row["gate_existing"], owner_id)
                if job is None:  # deleted since the statement found it
                    raise Conflict(
                        f"idempotency_key {spec.idempotency_key!r}: its job was deleted "
                        "while the batch was stored; submit the batch again"
                    )
                made.append(Created(job=job, event=None))
                continue
            job = replace(rows.job(row), steps=waiting_steps(spec.job_type))
            made.append(Created(job=job, event=rows.event_of_change(row)))
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
            )
            for r in found
        ]


def _columns(
    batch_id: UUID, owner_id: UUID, jobs: list[BatchJob], max_active: int | None
) -> tuple[Any, ...]:
    """The batch statement's arguments: one array per column, a job per position."""
    return (
        [uuid4() for _ in jobs],
        owner_id,
        [j.job_type.name for j in jobs],
        [j.params for j in jobs],
        [j.priority for j in jobs],
        [j.max_attempts or j.job_type.max_attempts for j in jobs],
        [j.delay_s for j in jobs],
        [_estimate(j) for j in jobs],
        [
            _json(
                [{"name": s.name, "title": s.title, "weight": s.weight} for s in j.job_type.steps]
            )
            for j in jobs
        ],
        [j.timeout_s or j.job_type.timeout_s for j in jobs],
        [j.idempotency_key for j in jobs],
        [j.callback_url for j in jobs],
        [f"Scheduled to start in {j.delay_s:g} s" if j.delay_s > 0 else None for j in jobs],
        max_active,
        [j.subject for j in jobs],
        [j.tenant for j in jobs],
        [_json(j.tags or []) for j in jobs],
        [j.metadata for j in jobs],
        batch_id,
    )


def _estimate(job: BatchJob) -> float | None:
    if job.estimated_s is not None:
        return job.estimated_s
    return job.job_type.estimate(job.job_type.input_model.model_validate(job.params))


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
