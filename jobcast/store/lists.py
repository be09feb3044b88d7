"""Lists of jobs: by tag, subject, tenant, status, type and age, a page at a time.

A page ends with a cursor, the created_at and id of its last job; the next page starts
after it. Rows added meanwhile never shift a page, as an offset would.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from jobcast.errors import BadRequest
from jobcast.model import Job
from jobcast.sql import QUERIES
from jobcast.store import rows as rows_of
from jobcast.store.base import StoreBase


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: UUID

    def encode(self) -> str:
        raw = f"{self.created_at.isoformat()}|{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            at, _, job_id = raw.partition("|")
            return cls(datetime.fromisoformat(at), UUID(job_id))
        except ValueError:
            raise BadRequest(f"cursor: not one this list gave, got {text[:40]!r}") from None


@dataclass(frozen=True)
class ListQuery:
    """What a list asks for; a browser token's scope adds its own conditions."""

    status: str | None = None
    type: str | None = None
    tag: str | None = None
    subject: str | None = None
    tenant: str | None = None
    since: datetime | None = None
    after: Cursor | None = None
    limit: int = 50
    scope_jobs: list[UUID] | None = None
    scope_tags: list[str] | None = None
    scope_subject: str | None = None
    scope_tenant: str | None = None


class Lists(StoreBase):
    async def find_jobs(self, owner_id: UUID, query: ListQuery) -> tuple[list[Job], Cursor | None]:
        """A page of jobs and the cursor of the next one (None: this is the last)."""
        q = query
        found = await self._run(
            lambda: self.pool.fetch(
                QUERIES["find_jobs"],
                owner_id,
                q.status,
                q.type,
                q.tag,
                q.subject,
                q.tenant,
                q.since,
                q.after.created_at if q.after else None,
                q.after.id if q.after else None,
                q.limit + 1,
                q.scope_jobs,
                q.scope_tags,
                q.scope_subject,
                q.scope_tenant,
            )
        )
        jobs = [rows_of.job(r) for r in found[: q.limit]]
        more = len(found) > q.limit
        return jobs, Cursor(jobs[-1].created_at, jobs[-1].id) if more else None
