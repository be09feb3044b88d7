"""The fallback channel: Postgres LISTEN on a dedicated connection, fed into the hub.

NOTIFY payloads carry ids only (``job_id seq owner_id kind``): Postgres caps them
near 8,000 bytes, and the event itself is read from ``job_events`` when needed.
The connection is never a pooled one (a pool's reset runs ``UNLISTEN *``), and it
is pinged with a deadline, since asyncpg sets no TCP keepalive and a silently
dropped connection would otherwise go unnoticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from jobcast.bus import Hint, Hub, Resync
from jobcast.settings import Settings
from jobcast.sql import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

_PING_INTERVAL_S = 2.0
_PING_DEADLINE_S = 3.0


class Listener:
    """Turns NOTIFYs into hints for the hub's local subscribers."""

    def __init__(self, dsn: str, hub: Hub, settings: Settings) -> None:
        self._dsn = dsn
        self._hub = hub
        self._settings = settings
        self._task: asyncio.Task[None] | None = None
        self.connected = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever(), name="pg-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            job_id, seq, owner_id, kind = str(payload).split(" ")
            hint = Hint(job_id=job_id, seq=int(seq))
        except ValueError:
            log.warning("dropped a malformed NOTIFY payload")
            return
        self._hub.deliver(self._settings.job_channel(job_id), hint)
        if kind != "progress":
            self._hub.deliver(self._settings.owner_channel(owner_id), hint)

    async def _run_forever(self) -> None:
        backoff_s = 0.1
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=_PING_DEADLINE_S)
                await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                self.connected = True
                backoff_s = 0.1
                # NOTIFYs sent while we were not listening are gone: catch up from job_events
                self._hub.deliver_all(Resync())
                while True:
                    await asyncio.sleep(_PING_INTERVAL_S)
                    await conn.fetchval("SELECT 1", timeout=_PING_DEADLINE_S)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                if self.connected:
                    log.warning("postgres LISTEN connection lost: %s", exc)
            finally:
                self.connected = False
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 2.0)
