"""Uploads: files an owner sends for a job to read, kept in Postgres within a quota."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

import asyncpg

from jobcast.errors import PayloadTooLarge
from jobcast.sql import QUERIES
from jobcast.store.base import StoreBase, row_count


@dataclass(frozen=True, slots=True)
class NewUpload:
    filename: str
    content_type: str
    data: bytes


class Uploads(StoreBase):
    async def create_uploads(
        self, owner_id: UUID, files: list[NewUpload], *, quota_bytes: int
    ) -> list[UUID]:
        """Store the files, all or none; PayloadTooLarge if the owner's uploads would then
        take more than ``quota_bytes``. Uploads made at once are counted one after another."""
        ids = [uuid4() for _ in files]
        incoming = sum(len(f.data) for f in files)

        async def insert() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(QUERIES["lock_owner_uploads"], owner_id)
                used: int = await conn.fetchval(QUERIES["owner_upload_bytes"], owner_id)
                if used + incoming > quota_bytes:
                    raise PayloadTooLarge(
                        f"uploads: {incoming} bytes more would bring this owner's uploads to "
                        f"{used + incoming} bytes, over the quota of {quota_bytes}; an upload "
                        "is freed when its job is deleted, or after a day if no job uses it"
                    )
                await conn.executemany(
                    QUERIES["create_upload"],
                    [
                        (upload_id, owner_id, f.filename, f.content_type, len(f.data), f.data)
                        for upload_id, f in zip(ids, files, strict=True)
                    ],
                )

        await self._run(insert)
        return ids

    async def read_upload(self, upload_id: UUID, owner_id: UUID) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run(
            lambda: self.pool.fetchrow(QUERIES["read_upload"], upload_id, owner_id)
        )
        return row

    async def upload_bytes(self, upload_ids: list[UUID]) -> int:
        """The bytes of these uploads together (those that exist)."""
        total: int = await self._run(
            lambda: self.pool.fetchval(QUERIES["upload_bytes"], upload_ids)
        )
        return total

    async def delete_unclaimed_uploads(self, older_than_s: float) -> int:
        status = await self._run(
            lambda: self.pool.execute(QUERIES["delete_unclaimed_uploads"], older_than_s)
        )
        return row_count(status)
