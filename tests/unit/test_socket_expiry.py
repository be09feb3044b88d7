"""A socket's token deadline closes it with 4401 however the event loop rounds its timers."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest
import uvloop
from starlette.websockets import WebSocket

from server.sockets.expiry import EXPIRED_REASON, WS_4401_TOKEN_EXPIRED, expiring


class _Socket:
    """What ``expiring`` uses of a websocket: its path in the log line, and close."""

    class url:  # read as ws.url.path
        path = "/ws/jobs/test"

    def __init__(self) -> None:
        self.closed: list[tuple[int, str]] = []

    async def close(self, code: int, reason: str = "") -> None:
        self.closed.append((code, reason))


async def _one(offset_s: float) -> list[tuple[int, str]]:
    ws = _Socket()
    async with expiring(cast(WebSocket, ws), time.time() + offset_s):
        await asyncio.sleep(1)  # the handler, waiting on its socket
    return ws.closed


@pytest.mark.parametrize("loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_every_socket_is_closed_with_4401_at_its_deadline(loop_factory: Any) -> None:
    # uvloop's timers have a millisecond's grain and may fire before the deadline's exact
    # float: sixty deadlines spread over fractions of a millisecond meet that grain
    async def all_of_them() -> list[list[tuple[int, str]]]:
        offsets = [0.01 + i * 0.000137 for i in range(60)]
        return await asyncio.gather(*(_one(offset) for offset in offsets))

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        closed = runner.run(all_of_them())
    assert closed == [[(WS_4401_TOKEN_EXPIRED, EXPIRED_REASON)]] * 60


def test_a_timeout_of_the_handlers_own_is_not_taken_for_the_tokens() -> None:
    async def handler_times_out() -> list[tuple[int, str]]:
        ws = _Socket()
        with pytest.raises(TimeoutError):
            async with expiring(cast(WebSocket, ws), time.time() + 30):
                async with asyncio.timeout(0.01):
                    await asyncio.sleep(1)
        return ws.closed

    assert asyncio.run(handler_times_out()) == []
