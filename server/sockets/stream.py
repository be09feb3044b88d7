"""What every socket shares: the sending side's loop over its subscription, and closing.

A socket subscribes to a channel of the hub and follows what arrives: ``Live``
events from Redis or carried by a Postgres NOTIFY, ``Hint``s (NOTIFYs of events too
large to carry), and ``Resync`` when the live channel was interrupted. A hint says an
event exists. While pub/sub is healthy the same event is usually on its way over Redis,
so the stream gives it a moment (``JOBCAST_PUBSUB_GRACE_MS``) and reads it from Postgres
only if it did not come: a worker that cannot reach Redis announces its events over
NOTIFY alone. While pub/sub is down a hint is read at once. Each socket runs two loops,
sending in the socket's own task and receiving in one beside it; when either ends, both
stop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from starlette import status
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from jobcast.bus import Hint, Live, Resync, Subscription
from jobcast.bus.message import Item
from jobcast.errors import ApiError
from jobcast.model import dumps
from jobcast.tasks import raise_swallowed_cancel
from server.errors import answer_of, body_of
from server.state import Services

# what ends a socket whose client has gone: its disconnect (a client that read nothing for
# JOBCAST_WS_SEND_TIMEOUT_S is dropped by the protocol, server/protocols.py: its waiting send
# ends so), a send after the socket was closed under it (starlette's WebSocketDisconnected)
CLIENT_GONE = (WebSocketDisconnect, WebSocketDisconnected)

Key = tuple[str, int]  # (job id, seq): one event


class Stream:
    """The sending side of one socket; subclasses say what was sent and how to fill gaps."""

    def __init__(self, ws: WebSocket, services: Services) -> None:
        self.ws = ws
        self.services = services
        self.done = False

    def has_sent(self, key: Key) -> bool:
        raise NotImplementedError

    async def on_live(self, live: Live) -> None:
        raise NotImplementedError

    async def on_missing(self, keys: list[Key]) -> None:
        """Hinted events that pub/sub did not bring in time: read them from Postgres."""
        raise NotImplementedError

    async def on_resync(self) -> None:
        raise NotImplementedError

    def due_at(self) -> float | None:
        """When (``time.monotonic()``) the stream has something held back to send, if it has."""
        return None

    async def on_due(self) -> None:
        """Send what was held back and is due by now."""

    async def follow(self, sub: Subscription) -> None:
        """Send what arrives until ``done``; hinted events pub/sub misses come from Postgres."""
        grace_s = self.services.settings.pubsub_grace_ms / 1000
        waiting: dict[Key, float] = {}  # hinted, not yet sent: when to stop waiting for pub/sub
        while not self.done:
            raise_swallowed_cancel()
            deadlines = list(waiting.values())
            if (held_until := self.due_at()) is not None:
                deadlines.append(held_until)
            if not deadlines:  # the usual case: no deadline scope to enter and leave an event
                item: Item | None = await sub.get()
            else:
                try:
                    async with asyncio.timeout(max(0.0, min(deadlines) - time.monotonic())):
                        item = await sub.get()
                except TimeoutError:
                    item = None
            if isinstance(item, Live):
                await self.on_live(item)
            elif isinstance(item, Hint):
                key = (item.job_id, item.seq)
                if not self.has_sent(key) and key not in waiting:
                    wait_s = grace_s if self.services.hub.healthy else 0.0
                    waiting[key] = time.monotonic() + wait_s
            elif isinstance(item, Resync):
                await self.on_resync()
            if waiting and not self.done:
                now = time.monotonic()
                due = [key for key, by in waiting.items() if by <= now or self.has_sent(key)]
                for key in due:
                    del waiting[key]
                missing = [key for key in due if not self.has_sent(key)]
                if missing:
                    await self.on_missing(missing)
            held_until = self.due_at()
            if not self.done and held_until is not None and held_until <= time.monotonic():
                await self.on_due()


async def run_pair(ws: WebSocket, sender: Callable[[], Awaitable[None]]) -> None:
    """Run the sender in this task and a receiver beside it; when either ends, both stop.

    The receiver is the socket's one task of its own: when the client leaves, it cancels
    this task, and that cancel ends here as a return. An error of the sender (a slow
    client, Postgres gone) is raised here as itself, for the caller to close the socket
    with the right code; a cancel from elsewhere goes on as a cancel.
    """
    this = asyncio.current_task()
    assert this is not None
    gone = over = False

    async def receive() -> None:
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
        except WebSocketDisconnect:
            return

    def client_gone(_: object) -> None:
        nonlocal gone
        if not over:
            gone = True
            this.cancel()

    receiving = asyncio.ensure_future(receive())
    receiving.add_done_callback(client_gone)
    try:
        await sender()
    except asyncio.CancelledError:
        if not gone or this.uncancel() > 0:
            raise
    else:
        if gone:  # the sender swallowed the receiver's cancel: it is spent all the same
            this.uncancel()
    finally:
        over = True
        receiving.cancel()
        await asyncio.gather(receiving, return_exceptions=True)


async def send_error(ws: WebSocket, exc: ApiError, code: int) -> None:
    """Send the error body, then close with ``code`` and the error's code as the reason."""
    await ws.send_text(dumps(body_of(exc)).decode())
    await ws.close(code, reason=answer_of(exc)[1])


async def close(ws: WebSocket, code: int, reason: str) -> None:
    try:
        await ws.close(code, reason=reason)
    except (RuntimeError, WebSocketDisconnect, OSError):
        pass  # already closed by the client


async def close_all(sockets: set[WebSocket]) -> None:
    """Close every open socket with 1001, so that clients reconnect (elsewhere, if they can)."""
    await asyncio.gather(
        *(
            close(ws, status.WS_1001_GOING_AWAY, "server restarting: reconnect")
            for ws in list(sockets)
        )
    )
