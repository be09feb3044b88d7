"""App keys: the credentials an operator gives a backend, and the scope browser tokens name.

A key is stored as its sha256, like an owner token; its signing secret, which signs the
browser tokens minted from it (HS256), is stored as is, since checking a signature needs
it. Every key has an owner of its own that no token opens: the jobs a key submits are
that owner's, so the usual per-owner queries serve a key unchanged.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

import asyncpg

from jobcast.sql import QUERIES
from jobcast.store.base import StoreBase
from jobcast.store.owners import hash_token

KEY_PREFIX = "jck_"
SECRET_PREFIX = "jcs_"
ID_PREFIX = "ak_"


@dataclass(frozen=True)
class AppKey:
    id: str
    name: str
    owner_id: UUID
    created_at: datetime
    revoked_at: datetime | None
    # empty where the key was listed rather than looked up to check a token
    signing_secret: str = ""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class NewAppKey:
    """A key as made: the only time its bearer key and signing secret are shown."""

    key: AppKey
    bearer: str
    signing_secret: str


@dataclass(frozen=True)
class JobScope:
    """What a browser token's scope is checked against."""

    subject: str | None
    tenant: str | None
    tags: tuple[str, ...]


def is_app_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def _key(row: asyncpg.Record) -> AppKey:
    return AppKey(
        id=row["id"],
        name=row["name"],
        owner_id=row["owner_id"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        signing_secret=row["signing_secret"] if "signing_secret" in row.keys() else "",
    )


class Keys(StoreBase):
    async def create_app_key(self, name: str) -> NewAppKey:
        bearer = KEY_PREFIX + secrets.token_urlsafe(32)
        signing_secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        row = await self._run(
            lambda: self.pool.fetchrow(
                QUERIES["create_app_key"],
                ID_PREFIX + secrets.token_hex(8),
                name,
                uuid4(),
                hash_token(bearer),
                signing_secret,
                secrets.token_bytes(32),  # the owner's own token: none opens it
                secrets.token_hex(24),
            )
        )
        assert row is not None  # an INSERT ... RETURNING answers its row
        return NewAppKey(key=_key(row), bearer=bearer, signing_secret=signing_secret)

    async def app_key_for_bearer(self, bearer: str) -> AppKey | None:
        """The key a bearer key is, revoked or not; read each time, so a revocation holds
        at once in every process."""
        row = await self._run(
            lambda: self.pool.fetchrow(QUERIES["app_key_for_hash"], hash_token(bearer))
        )
        return None if row is None else _key(row)

    async def app_key(self, key_id: str) -> AppKey | None:
        row = await self._run(lambda: self.pool.fetchrow(QUERIES["app_key_by_id"], key_id))
        return None if row is None else _key(row)

    async def app_keys(self) -> list[AppKey]:
        rows = await self._run(lambda: self.pool.fetch(QUERIES["list_app_keys"]))
        return [_key(r) for r in rows]

    async def revoke_app_key(self, key_id: str) -> AppKey | None:
        row = await self._run(lambda: self.pool.fetchrow(QUERIES["revoke_app_key"], key_id))
        return None if row is None else _key(row)

    async def job_scope(self, job_id: UUID, owner_id: UUID) -> JobScope | None:
        row = await self._run(lambda: self.pool.fetchrow(QUERIES["job_scope"], job_id, owner_id))
        if row is None:
            return None
        return JobScope(subject=row["subject"], tenant=row["tenant"], tags=tuple(row["tags"]))
