"""Retries: the policy each job was submitted with, and the once-only retries it spent."""

from __future__ import annotations

from uuid import UUID

from jobcast.retry import RetryPolicy, policy_of
from jobcast.sql import QUERIES
from jobcast.store.base import StoreBase


class Retries(StoreBase):
    async def set_retry_policy(self, job_id: UUID, policy: RetryPolicy) -> None:
        """Store the policy a job runs with (its type's, changed at submit)."""
        await self._run(
            lambda: self.pool.execute(QUERIES["set_retry_policy"], job_id, policy.model_dump())
        )

    async def retry_policy(self, job_id: UUID) -> RetryPolicy | None:
        """The policy stored with the job; None: its type's."""
        stored = await self._run(lambda: self.pool.fetchval(QUERIES["retry_policy"], job_id))
        return policy_of(stored)

    async def spend_retry_once(self, job_id: UUID, error_class: str) -> bool:
        """Spend the job's one retry of ``error_class``: True when it was spent already."""
        spent = await self._run(
            lambda: self.pool.fetchval(QUERIES["spend_retry_once"], job_id, error_class)
        )
        return bool(spent)
