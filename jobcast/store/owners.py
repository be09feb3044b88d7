"""Owners: who a token is, and the secret that signs their webhooks."""

from __future__ import annotations

import hashlib
import secrets
from uuid import UUID, uuid4

import asyncpg

from jobcast.sql import QUERIES
from jobcast.store.base import StoreBase

_OWNER_CACHE_SIZE = 100_000


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Owners(StoreBase):
    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self._owners: dict[bytes, UUID] = {}  # token hash to owner, oldest first

    async def create_owner(self, token: str) -> UUID:
        owner_id = uuid4()
        await self._run(
            lambda: self.pool.execute(
                QUERIES["create_owner"], owner_id, hash_token(token), secrets.token_hex(24)
            )
        )
        return owner_id

    async def ensure_owner(self, owner_id: UUID) -> None:
        """An owner no token opens (the one scheduled jobs belong to)."""
        await self._run(
            lambda: self.pool.execute(
                QUERIES["ensure_owner"],
                owner_id,
                secrets.token_bytes(32),
                secrets.token_hex(24),
            )
        )

    async def webhook_secret(self, owner_id: UUID) -> str:
        secret: str = await self._run(
            lambda: self.pool.fetchval(QUERIES["webhook_secret"], owner_id)
        )
        return secret

    async def owner_for_token(self, token: str) -> UUID | None:
        """The owner of a token; known owners are remembered (a token's owner never changes)."""
        key = hash_token(token)
        owner_id = self._owners.get(key)
        if owner_id is not None:
            return owner_id
        owner_id = await self._run(lambda: self.pool.fetchval(QUERIES["owner_for_token"], key))
        if owner_id is not None:
            if len(self._owners) >= _OWNER_CACHE_SIZE:
                self._owners.pop(next(iter(self._owners)))
            self._owners[key] = owner_id
        return owner_id
