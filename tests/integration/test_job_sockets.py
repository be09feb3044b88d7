"""A job's websocket with real processes: a bad ``after`` is refused with a clear close,
and a socket that falls behind is closed with 1013 and resumes with ``after=`` without
a gap."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from jobcast.endpoints import Endpoints
from tests.conftest import DatabaseFactory
from tests.support import Stack, eventually, launch, submit

QUEUE = 8  # events buffered per socket: the least the setting allows
SIZE = 60_000  # characters in each event the chatter job sends


def unread_at_most() -> int:
    """Bytes a connection can hold that its client has not read: the kernel's largest
    send buffer (tcp_wmem), uvicorn's 64 KiB transport buffer, and a little on the
    client's side (its 4 KiB window, one frame waiting to be read)."""
    try:
        kernel = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        kernel = 4 * 1024 * 1024
    return kernel + 64 * 1024 + SIZE + 8 * 1024


# a socket that stops reading falls behind once the job has sent this many events
BEHIND = unread_at_most() // SIZE + QUEUE + 2


@pytest.fixture(scope="module")
async def chatty(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("sockets"),
        JOBCAST_WS_QUEUE_SIZE=str(QUEUE),
        JOBCAST_JOB_MODULES="tests.chatter",
        # every report of the chatter job stored: its events are what fills the socket
        JOBCAST_PROGRESS_WINDOW_MS="0",
    )
    try:
        yield stack
    finally:
        stack.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def all_events(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        after = events[-1]["seq"] if events else 0
        response = await client.get(f"/api/jobs/{job_id}/events", params={"after": after})
        assert response.status_code == 200, response.text
        page = response.json()["events"]
        if not page:
            return events
        events.extend(page)


@pytest.mark.parametrize("after", ["abc", "-1", "1.5"])
async def test_a_bad_after_is_refused_with_1008_and_the_error(chatty: Stack, after: str) -> None:
    token = await chatty.owner()
    async with chatty.client(token) as client:
        job_id = await submit(client, "noop")
    url = f"{chatty.ws_base}/ws/jobs/{job_id}?after={after}"
    async with connect(url, additional_headers=bearer(token)) as ws:
        body = orjson.loads(await ws.recv())
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1008
    assert ws.close_reason == "bad_request"
    assert body["error"]["code"] == "bad_request"
    assert "after must be a whole number" in body["error"]["message"]


@pytest.mark.parametrize("after", ["3", "99999999999999999999"])
async def test_an_after_past_the_job_gets_the_snapshot_and_the_close_alone(
    chatty: Stack, after: str
) -> None:
    """A client that says it has more than the job ever had (a seq of another install, or
    one past what Postgres's integers hold) gets where the job stands, and nothing twice."""
    token = await chatty.owner()
    async with chatty.client(token) as client:
        job_id = await submit(client, "noop")
        await eventually(
            lambda: _completed(client, job_id), timeout_s=60, what="the noop job completed"
        )
    url = f"{chatty.ws_base}/ws/jobs/{job_id}?after={after}"
    async with connect(url, additional_headers=bearer(token)) as ws:
        messages = [orjson.loads(m) async for m in ws]
    assert [m["type"] for m in messages] == ["snapshot"]
    assert messages[0]["job"]["status"] == "completed"
    assert ws.close_code == 1000


async def _completed(client: Any, job_id: str) -> bool:
    response = await client.get(f"/api/jobs/{job_id}")
    return bool(response.json()["status"] == "completed")


async def resume(url: str, token: str, received: list[dict[str, Any]]) -> int | None:
    """Connect again after the last event received, as a client does: each event it gets
    is added to ``received``; the close code it ends with."""
    after = received[-1]["seq"] if received else 0
    async with connect(f"{url}?after={after}", additional_headers=bearer(token)) as ws:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                message = orjson.loads(raw)
                if message["type"] == "event":
                    received.append(message)
    return ws.close_code


def small_window_socket(base_url: str) -> socket.socket:
    """A connected socket whose receive buffer is small, so that a client that stops
    reading holds back the server's sends at once instead of after megabytes."""
    parts = urlsplit(base_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    sock.setblocking(False)
    return sock


async def test_a_socket_that_falls_behind_is_closed_1013_and_resumes_without_a_gap(
    chatty: Stack,
) -> None:
    token = await chatty.owner()
    received: list[dict[str, Any]] = []
    closes: list[int | None] = []
    async with chatty.client(token) as client:
        job_id = await submit(client, "chatter", events=2 * BEHIND, size=SIZE)

        async def past_what_buffers_hold() -> bool:
            job = (await client.get(f"/api/jobs/{job_id}")).json()
            return bool(job["seq"] > BEHIND + 3)  # pending, running, step start, progress...

        url = f"{chatty.ws_base}/ws/jobs/{job_id}"
        async with connect(
            url,
            additional_headers=bearer(token),
            sock=small_window_socket(chatty.base_url),
            max_queue=1,
        ) as ws:
            # on a busy machine the job may outrun the socket before its snapshot is read:
            # the close then comes first, and the resume below starts from nothing
            with contextlib.suppress(ConnectionClosed):
                snapshot = orjson.loads(await ws.recv())
                assert snapshot["type"] == "snapshot"
                # read nothing while the job talks: the server's sends wait, its queue
                # overflows. Not for long: a client that reads nothing for 10 s is dropped
                await eventually(past_what_buffers_hold, timeout_s=9, what="the job outrunning us")
                async for raw in ws:
                    received.append(orjson.loads(raw))
            closes.append(ws.close_code)
            reason = ws.close_reason
        # resume where the socket left off, as a client does, until the job's end: a
        # loaded machine may leave the reading client behind again (another 1013)
        while closes[-1] == 1013 and len(closes) < 20:
            closes.append(await resume(url, token, received))
        stored = await all_events(client, job_id)
    assert closes[0] == 1013 and closes[-1] == 1000, closes
    assert set(closes[1:-1]) <= {1013}, closes
    assert reason is not None and "slow consumer" in reason
    assert [e["seq"] for e in received] == list(range(1, len(stored) + 1))
    assert received == stored


async def test_sockets_that_leave_mid_catch_up_or_are_refused_log_no_error(chatty: Stack) -> None:
    """A client that goes away while its socket is catching up, and a handshake refused
    with an HTTP answer, are everyday events: neither is an error in the web log."""
    token = await chatty.owner()
    async with chatty.client(token) as client:
        job_id = await submit(client, "chatter", events=300, size=200)

        await eventually(
            lambda: _completed(client, job_id), timeout_s=60, what="the chatter job completed"
        )
    url = f"{chatty.ws_base}/ws/jobs/{job_id}"
    # each leaves after the snapshot, while 300 events are on their way (max_queue=None: the
    # client reads on while it closes; with its queue of 16 full, the library stops reading
    # and waits out its 10 s close timeout for a close frame it leaves unread)
    for _ in range(30):
        async with connect(url, additional_headers=bearer(token), max_queue=None) as ws:
            assert orjson.loads(await ws.recv())["type"] == "snapshot"
    for _ in range(3):  # no credential: refused at the handshake with 401
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url):
                pass
        assert refused.value.response.status_code == 401

    async def quiet_after_the_last() -> bool:
        return chatty.logs("web").count("[accepted]") >= 30

    await eventually(quiet_after_the_last, timeout_s=10, what="the sockets logged")
    logged = chatty.logs("web")
    assert "Exception in ASGI application" not in logged
    assert "without completing handshake" not in logged


async def test_a_client_that_reads_nothing_is_dropped_and_resumes_without_a_gap(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A client that stops reading while the job talks holds the server's buffer full: after
    ``JOBCAST_WS_SEND_TIMEOUT_S`` of that the socket is dropped (its waiting send ends, no
    error logged), and the client resumes with ``after=`` and loses nothing."""
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("stalled"),
        JOBCAST_JOB_MODULES="tests.chatter",
        JOBCAST_PROGRESS_WINDOW_MS="0",
        JOBCAST_WS_SEND_TIMEOUT_S="1",
        JOBCAST_WS_QUEUE_SIZE="100000",  # the queue never overflows: the timer ends it
    )
    try:
        token = await stack.owner()
        received: list[dict[str, Any]] = []
        async with stack.client(token) as client:
            job_id = await submit(client, "chatter", events=2 * BEHIND, size=SIZE)
            url = f"{stack.ws_base}/ws/jobs/{job_id}"

            async def dropped() -> bool:
                return "read nothing of what waited for it for 1 s" in stack.logs("web")

            async with connect(
                url,
                additional_headers=bearer(token),
                sock=small_window_socket(stack.base_url),
                max_queue=1,
            ) as ws:
                with contextlib.suppress(ConnectionClosed):
                    assert orjson.loads(await ws.recv())["type"] == "snapshot"
                    await eventually(dropped, timeout_s=60, what="the drop")
                    async for raw in ws:
                        received.append(orjson.loads(raw))
            assert ws.close_code in (None, 1006), ws.close_code  # dropped: no close frame
            assert await resume(url, token, received) == 1000
            stored = await all_events(client, job_id)
        assert [e["seq"] for e in received] == list(range(1, len(stored) + 1))
        assert received == stored
        logged = stack.logs("web")
        assert "Exception in ASGI application" not in logged
    finally:
        stack.close()
