"""Uploads: files an owner sends for a job to read, kept in Postgres."""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg

from jobcast.sql import QUERIES
from jobcast.store.base import StoreBase, row_count


class Uploads(StoreBase):
    async def create_upload(
        self, owner_id: UUID, filename: str, content_type: str, data: bytes
    ) -> UUID:
        upload_id = uuid4()
        await self._run(
            lambda: self.pool.execute(
                QUERIES["create_upload"],
                upload_id,
                owner_id,
                filename,
                content_type,
                len(data),
                data,
            )
        )
        return upload_id

    async def read_upload(self, upload_id: UUID, owner_id: UUID) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run(
            lambda: self.pool.fetchrow(QUERIES["read_upload"], upload_id, owner_id)
        )
        return row

    async def delete_unclaimed_uploads(self, older_than_s: float) -> int:
        status = await self._run(
            lambda: self.pool.execute(QUERIES["delete_unclaimed_uploads"], older_than_s)
        )
        return row_count(status)
