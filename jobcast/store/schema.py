"""Applying schema.sql, the single source of the database's shape."""

from __future__ import annotations

import asyncpg

from jobcast.settings import SCHEMA_PATH
from jobcast.sql import QUERIES


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
