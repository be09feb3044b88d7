"""A socket opened with a browser token ends when the token does.

The socket's handler runs under a deadline at the token's ``exp``; when it passes, the
handler is cancelled wherever it waits and the socket is closed with
``WS_4401_TOKEN_EXPIRED`` and the reason ``token expired``. The client mints (asks its
app for) a new token and reconnects with ``after=`` its last seq, losing nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.websockets import WebSocket

from server.sockets.stream import close

log = logging.getLogger(__name__)

# 4000-4999 are the application's own close codes; 4401 reads as HTTP's 401
WS_4401_TOKEN_EXPIRED = 4401
EXPIRED_REASON = "token expired"


@asynccontextmanager
async def expiring(ws: WebSocket, expires_at: float) -> AsyncIterator[None]:
    """Run the body until ``expires_at`` (seconds since the epoch), then close the socket."""
    loop = asyncio.get_running_loop()
    deadline = asyncio.timeout_at(loop.time() + max(0.0, expires_at - time.time()))
    try:
        async with deadline:
            yield
    except TimeoutError:
        # asked of the deadline, not of the clock: uvloop's timers fire up to a
        # millisecond early, so the time read here may still be short of it
        if not deadline.expired():
            raise  # a timeout of the handler's own, not the token's
        log.info("websocket %s: its browser token expired; closed", ws.url.path)
        await close(ws, WS_4401_TOKEN_EXPIRED, EXPIRED_REASON)
