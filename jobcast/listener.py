"""The fallback channel: Postgres LISTEN on a dedicated connection, fed into the hub.

A state change's NOTIFY carries its event (``job_id seq owner_id kind at payload``,
schema.sql's ``jobcast_notice``), which goes to the job's subscribers as it would have
come over Redis, without a read of Postgres. Some say ids alone, a hint, and each
subscriber that lacks the event reads it from ``job_events``: an event too large for the
payload (Postgres caps it near 8,000 bytes); every NOTIFY while a process of an earlier
version, which reads only ids, asks for them too; and a worker's own NOTIFY of an event
Redis refused, which every process hears, whatever its version.

The connection is never a pooled one (a pool's reset runs ``UNLISTEN *``). It is
opened with deadlines and TCP keepalive (``jobcast.links``) and pinged every 2 s
with a deadline (``JOBCAST_LISTEN_PING_TIMEOUT_S``): a silently dropped connection
sends nothing, and a LISTEN connection otherwise only reads.

Writers NOTIFY only while some server process asks for it (``fallback_listeners``):
this one asks as soon as its hub's Redis pub/sub is down, renews the ask while it
stays down, and withdraws it once pub/sub is back. Right after asking it catches its
subscribers up from ``job_events`` twice: at once, for what pub/sub lost before the
ask, and a moment later, for writes that were already under way when it asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

import asyncpg

from jobcast.bus import Hub, Live, Resync
from jobcast.bus.hub import observe_fanout
from jobcast.bus.message import heard
from jobcast.links import PgLink
from jobcast.settings import Settings
from jobcast.sql import NOTIFY_CHANNEL, QUERIES
from jobcast.tasks import Supervised, raise_swallowed_cancel

log = logging.getLogger(__name__)

_PING_INTERVAL_S = 2.0
# how long one ask for NOTIFYs holds unless renewed (it is renewed every ping interval)
_ASK_FOR_S = 10.0
# the second catch-up after asking: longer than a write statement takes
_SETTLE_S = 1.0


class Listener:
    """Turns NOTIFYs into hints for the hub's local subscribers."""

    def __init__(self, dsn: str, hub: Hub, settings: Settings) -> None:
        self._dsn = dsn
        self._hub = hub
        self._settings = settings
        self._link = PgLink.of(settings)
        self._ping_deadline_s = settings.listen_ping_timeout_s
        self.task = Supervised("pg-listener", self._run_forever)
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.connected = False
        self.asking = False  # for NOTIFYs, because pub/sub is down

    @property
    def tasks(self) -> tuple[Supervised, ...]:
        return (self.task,)

    async def start(self) -> None:
        self.task.start()

    async def close(self) -> None:
        await self.task.stop()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        """The event to the job's subscribers, and but for progress to its owner's: an
        owner's feed remembers what it sent only of the others (server/sockets/feed.py), so
        progress reaches it over Redis alone. Every process hears every NOTIFY: one that
        none of its subscribers follows is not read further."""
        text = str(payload)
        head = text.split(" ", 4)
        if len(head) < 4:
            log.warning("dropped a malformed NOTIFY payload")
            return
        job_id, _, owner_id, kind = head[:4]
        job_channel = self._settings.job_channel(job_id)
        owner_channel = self._settings.owner_channel(owner_id) if kind != "progress" else None
        if not self._hub.heard_here(job_channel) and not (
            owner_channel is not None and self._hub.heard_here(owner_channel)
        ):
            return
        item = heard(text)
        if item is None:
            return
        self._hub.deliver(job_channel, item)
        if owner_channel is not None:
            self._hub.deliver(owner_channel, item)
        if isinstance(item, Live):
            observe_fanout(item.at)

    async def _follow_hub(self, conn: asyncpg.Connection) -> None:
        """Ask for NOTIFYs while pub/sub is down, stop asking when it is back; wait for
        the next change of the hub's health or the next ping, whichever comes first."""
        changed = self._hub.healthy_changed
        if not self._hub.healthy:
            await conn.execute(
                QUERIES["want_notify"], self._holder, _ASK_FOR_S, timeout=self._ping_deadline_s
            )
            if not self.asking:
                self.asking = True
                log.info("asked writers for NOTIFYs while redis pub/sub is down")
                self._hub.deliver_all(Resync())
                await asyncio.sleep(_SETTLE_S)
                self._hub.deliver_all(Resync())
        elif self.asking:
            await conn.execute(QUERIES["stop_notify"], self._holder, timeout=self._ping_deadline_s)
            self.asking = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_PING_INTERVAL_S):
                await changed.wait()

    async def _hub_tried(self) -> None:
        """As the process starts, the hub's first connection to pub/sub is given the ping
        deadline to succeed or fail before the listener judges it: a hub still connecting
        is not an outage, and asking for NOTIFYs then resyncs every socket just opened."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._ping_deadline_s):
                await self._hub.tried.wait()

    async def _run_forever(self) -> None:
        backoff_s = 0.1
        while True:
            raise_swallowed_cancel()
            conn: asyncpg.Connection | None = None
            try:
                conn = await self._link.connect(self._dsn, command_timeout_s=self._ping_deadline_s)
                await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                self.connected = True
                backoff_s = 0.1
                # NOTIFYs sent while we were not listening are gone: catch up from job_events
                self._hub.deliver_all(Resync())
                await self._hub_tried()
                while True:
                    raise_swallowed_cancel()
                    await self._follow_hub(conn)
                    await conn.fetchval(QUERIES["ping"], timeout=self._ping_deadline_s)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                if self.connected:
                    log.warning("postgres LISTEN connection lost: %s", exc)
            finally:
                self.connected = False
                self.asking = False  # a new connection asks afresh if it needs to
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, 2.0)
