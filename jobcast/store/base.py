"""The store's connection pool, and the one place driver errors become domain errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Self, TypeVar

import asyncpg
import orjson

from jobcast import metrics
from jobcast.errors import StorageUnavailable
from jobcast.links import PgLink
from jobcast.settings import load_settings
from jobcast.sql import QUERIES

T = TypeVar("T")

# Errors that mean "Postgres is not there right now", as opposed to a bug in a query.
UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    TimeoutError,
)


async def _keep_as_is(conn: asyncpg.Connection) -> None:
    """Pooled connections hold no session state (no LISTEN, SET or session lock), so the
    full reset asyncpg runs on every release (a round trip per query) is skipped; only a
    transaction left open, which the client knows of without asking, is rolled back."""
    if conn.is_in_transaction():
        await conn.execute(QUERIES["rollback"])


async def json_codecs(conn: asyncpg.Connection) -> None:
    """json and jsonb read and written as Python values, by orjson."""
    for json_type in ("json", "jsonb"):
        await conn.set_type_codec(
            json_type,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


def row_count(status: str) -> int:
    """The rows a statement touched, from its status ("DELETE 3")."""
    return int(status.split()[-1])


class StoreBase:
    """A pool, and ``_run``, through which every statement of the store goes."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    @asynccontextmanager
    async def open(
        cls, dsn: str, *, max_size: int = 10, link: PgLink | None = None
    ) -> AsyncIterator[Self]:
        """The pool, its connections opened with ``link``'s deadlines and TCP keepalive
        (unset: the settings' defaults)."""
        link = link or PgLink.of(load_settings({}))

        async def init(conn: asyncpg.Connection) -> None:
            link.keep_alive(conn)
            await json_codecs(conn)

        try:
            pool = await asyncpg.create_pool(
                # min_size 0: a process starts, and answers 503, while Postgres is down
                dsn,
                min_size=0,
                max_size=max_size,
                init=init,
                reset=_keep_as_is,
                **link.pool_options(),
            )
        except UNAVAILABLE as exc:
            raise StorageUnavailable(f"Postgres does not answer: {exc}") from exc
        try:
            yield cls(pool)
        finally:
            try:
                # a graceful close waits for each connection's goodbye: not forever
                async with asyncio.timeout(link.command_timeout_s):
                    await pool.close()
            except TimeoutError:
                pool.terminate()

    async def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except UNAVAILABLE as exc:
            metrics.BACKEND_ERRORS.labels("postgres").inc()
            raise StorageUnavailable("the job store is unavailable; try again shortly") from exc

    async def ping(self) -> None:
        await self._run(lambda: self.pool.fetchval(QUERIES["ping"]))
