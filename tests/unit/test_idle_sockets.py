"""What an open websocket holds while it waits: an inbox that is empty, one task beside the
socket's own, and a place in the socket caps given back when the socket's task ends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from jobcast.bus import Live, SlowConsumer, Subscription
from jobcast.inbox import Inbox
from server.limits import SocketCaps
from server.sockets.stream import run_pair


async def test_an_inbox_hands_out_in_order_and_wakes_its_reader() -> None:
    inbox: Inbox[int] = Inbox()
    reading = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not reading.done() and inbox.empty()
    for n in (1, 2, 3):
        inbox.put_nowait(n)
    assert await reading == 1
    assert [await inbox.get(), await inbox.get()] == [2, 3]
    assert inbox.empty() and len(inbox) == 0


async def test_a_read_given_up_leaves_the_inbox_as_it_was() -> None:
    inbox: Inbox[str] = Inbox()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await inbox.get()
    inbox.put_nowait("after")
    assert await inbox.get() == "after"


def _live(seq: int) -> Live:
    text = f'{{"type":"event","job_id":"j","seq":{seq},"kind":"status","status":"running"}}'
    return Live(job_id="j", seq=seq, text=text, progress=False, final=False, at="")


async def test_a_subscriber_past_its_size_is_told_it_fell_behind() -> None:
    sub = Subscription("c", 2)
    sub.deliver(_live(1))
    sub.deliver(_live(2))
    sub.deliver(_live(3))  # one more than it holds
    with pytest.raises(SlowConsumer):
        await sub.get()


class _Socket:
    """What run_pair reads of a websocket: its receive, which ends when the client goes."""

    def __init__(self) -> None:
        self.gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        raise WebSocketDisconnect(1001)


async def test_the_client_going_ends_the_pair_as_a_return() -> None:
    socket = _Socket()
    stopped: list[str] = []

    async def sender() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.append("sender")
            raise

    pair = asyncio.create_task(run_pair(socket, sender))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    socket.gone.set()
    async with asyncio.timeout(5):
        await pair  # returns: no CancelledError
    assert stopped == ["sender"]
    assert pair.cancelling() == 0  # the cancel it used is spent


async def test_a_cancel_from_elsewhere_goes_on_as_a_cancel() -> None:
    socket = _Socket()

    async def sender() -> None:
        await asyncio.Event().wait()

    pair = asyncio.create_task(run_pair(socket, sender))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    pair.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pair


async def test_the_senders_error_is_raised_as_itself() -> None:
    socket = _Socket()

    async def sender() -> None:
        raise SlowConsumer("c")

    with pytest.raises(SlowConsumer):
        await run_pair(socket, sender)  # type: ignore[arg-type]


async def test_a_socket_gives_its_place_back_when_its_task_ends() -> None:
    release = asyncio.Event()

    async def app(_scope: Any, _receive: Any, _send: Any) -> None:
        await release.wait()

    caps = SocketCaps(app, per_address=1, total=10)
    scope = {"type": "websocket", "client": ("10.0.0.1", 1234)}

    async def serve() -> None:
        await caps(scope, None, None)  # type: ignore[arg-type]

    first = asyncio.create_task(serve())
    await asyncio.sleep(0)
    assert caps.open == 1 and caps.by_address == {"10.0.0.1": 1}
    release.set()
    await first
    await asyncio.sleep(0)  # the task's done callbacks run
    assert caps.open == 0 and caps.by_address == {}
