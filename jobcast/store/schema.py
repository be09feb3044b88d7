"""Applying schema.sql, the single source of the database's shape."""

from __future__ import annotations

import asyncpg

from jobcast.settings import SCHEMA_PATH
from jobcast.sql import QUERIES
from jobcast.store.base import StoreBase


async def apply_schema(dsn: str) -> None:
    """Apply schema.sql; harmless when it has been applied before."""
    conn = await asyncpg.connect(dsn)
    try:
        # one transaction-level lock, so two processes starting together do not race
        async with conn.transaction():
            await conn.execute(QUERIES["schema_lock"])
            await conn.execute(SCHEMA_PATH.read_text())
    finally:
        await conn.close()


class Install(StoreBase):
    """Which install the database belongs to, named by its Redis prefix."""

    async def claim_install(self, redis_prefix: str) -> str:
        """The install's prefix: ``redis_prefix`` if this is the first process to ask.

        Two processes starting together on a new database: the second's insert waits for
        the first's and does nothing, and its read of the row, under the statement's
        snapshot from before that commit, finds none. Asked again, it does.
        """
        for _ in range(3):
            recorded: str | None = await self._run(
                lambda: self.pool.fetchval(QUERIES["claim_install"], redis_prefix)
            )
            if recorded is not None:
                return recorded
        raise RuntimeError("the install's row was neither written nor found three times")

    async def move_install(self, redis_prefix: str) -> None:
        await self._run(lambda: self.pool.execute(QUERIES["move_install"], redis_prefix))
