"""A hostile client against the real web process: huge heads, slow heads, stalled bodies,
ping floods, token guessing, socket hoarding. Each is bounded, and the process stays
small and quick for everyone else."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from jobcast.endpoints import Endpoints
from tests.conftest import DatabaseFactory
from tests.integration.test_errors import assert_error
from tests.support import Stack, eventually, launch

MiB = 1024 * 1024
METRICS_TOKEN = "metrics-" + "m" * 32


@pytest.fixture(scope="module")
async def hostile(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """A service with short read timeouts and small caps, so each limit is quick to reach."""
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("hostile"),
        JOBCAST_HEADER_TIMEOUT_S="1",
        JOBCAST_BODY_TIMEOUT_S="1",
        JOBCAST_MAX_SOCKETS_PER_ADDRESS="3",
        JOBCAST_MAX_SOCKETS="5",
        JOBCAST_AUTH_FAILURE_BURST="5",
        JOBCAST_AUTH_FAILURE_RATE_PER_MIN="10",
        JOBCAST_LOG_LEVEL="DEBUG",
        JOBCAST_METRICS_TOKEN=METRICS_TOKEN,
        JOBCAST_METRICS_CACHE_S="60",
        JOBCAST_TRUSTED_PROXIES="",
    )
    try:
        yield stack
    finally:
        stack.close()


def rss_bytes(stack: Stack, field: str = "VmRSS") -> int:
    """The web process's resident memory now, or at its peak (VmHWM)."""
    with open(f"/proc/{stack.procs['web'].pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def open_raw(
    stack: Stack, local: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = int(stack.base_url.rsplit(":", 1)[1])
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0))


async def answer_of(reader: asyncio.StreamReader, timeout_s: float = 10) -> bytes:
    """Everything the server sends until it closes the connection."""
    async with asyncio.timeout(timeout_s):
        try:
            return await reader.read(-1)
        except ConnectionResetError:
            return b""


async def healthz_ms(stack: Stack) -> float:
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            assert (await client.get("/healthz")).status_code == 200
            best = min(best, (time.perf_counter() - started) * 1000)
    return best


# request heads


async def test_a_huge_header_is_431_and_never_read_whole(stack: Stack) -> None:
    before = rss_bytes(stack, "VmHWM")
    reader, writer = await open_raw(stack)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
    sent = 0
    try:
        chunk = b"a" * MiB
        while sent < 64 * MiB:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
        writer.write(b"\r\n\r\n")
        await writer.drain()
    except (ConnectionResetError, BrokenPipeError):
        pass  # refused early: the server stopped reading
    answer = await answer_of(reader)
    writer.close()
    grown = rss_bytes(stack, "VmHWM") - before  # at its peak (a 64 MiB header: 128 MiB)
    assert answer.startswith(b"HTTP/1.1 431 ") or sent < 64 * MiB, answer[:200]
    assert grown < 4 * MiB, f"the web process grew by {grown / MiB:.1f} MiB"
    assert await healthz_ms(stack) < 50


async def test_too_many_headers_are_431_and_ordinary_heads_pass(stack: Stack) -> None:
    many = {f"x-h{i}": "v" for i in range(150)}
    big_but_fine = {"x-fine": "f" * 20_000}
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        refused = await client.get("/healthz", headers=many)
        passed = await client.get("/healthz", headers=big_but_fine)
    assert refused.status_code == 431
    assert passed.status_code == 200


# read timeouts


async def test_a_slow_head_is_dropped(hostile: Stack) -> None:
    reader, writer = await open_raw(hostile)
    started = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\n")

    async def trickle() -> None:
        try:
            for _ in range(40):  # one header byte every 0.1 s: the head never ends in time
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.1)
        except (ConnectionResetError, BrokenPipeError):
            pass

    trickling = asyncio.create_task(trickle())
    answer = await answer_of(reader)
    held_s = time.monotonic() - started
    trickling.cancel()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert held_s < 3


async def test_a_silent_connection_is_dropped(hostile: Stack) -> None:
    reader, writer = await open_raw(hostile)
    started = time.monotonic()
    assert await answer_of(reader) == b""
    writer.close()
    assert time.monotonic() - started < 3


async def test_a_stalled_chunked_body_is_dropped_without_a_traceback(hostile: Stack) -> None:
    token = await hostile.owner()
    reader, writer = await open_raw(hostile)
    started = time.monotonic()
    writer.write(
        b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\n".encode()
        + b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"typ\r\n'
    )
    await writer.drain()
    answer = await answer_of(reader)  # and then nothing more, ever
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ") or answer == b"", answer[:200]
    assert time.monotonic() - started < 4
    async with hostile.client(token) as client:
        assert (await client.get("/api/jobs")).json()["jobs"] == []
    assert "Traceback" not in hostile.logs("web")


async def test_an_aborted_body_is_one_debug_line(hostile: Stack) -> None:
    token = await hostile.owner()
    _, writer = await open_raw(hostile)
    writer.write(
        b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\n".encode()
        + b'Content-Length: 1000\r\n\r\n{"type": "noop"'
    )
    await writer.drain()
    await asyncio.sleep(0.2)  # the handler is reading the body
    writer.close()

    def gone_line() -> bool:
        return "the client went away before its body was read" in hostile.logs("web")

    await eventually(lambda: asyncio.sleep(0, gone_line()), what="the debug line")
    logs = hostile.logs("web")
    assert "Traceback" not in logs and "Exception in ASGI application" not in logs


async def test_an_idle_connection_outlives_a_clients_own_keep_alive(stack: Stack) -> None:
    """httpx keeps an idle connection for 5 s: a server that closed its own after 5 s too
    met a request sent on it at that moment ("Server disconnected without sending a
    response"). The server keeps it longer, so the client is the one to let it go."""
    httpx_keep_alive_s = 5.0
    reader, writer = await open_raw(stack)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

    async def answered() -> bytes:
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.lower().split(b"\r\n")
                if line.startswith(b"content-length:")
            )
            await reader.readexactly(length)
            return head

    writer.write(request)
    assert (await answered()).startswith(b"HTTP/1.1 200 ")
    await asyncio.sleep(httpx_keep_alive_s + 0.5)
    writer.write(request)
    try:
        again = await answered()
    except (asyncio.IncompleteReadError, ConnectionResetError):
        again = b"(closed)"
    writer.close()
    assert again.startswith(b"HTTP/1.1 200 "), again[:100]


# websockets


def ping_frame(payload: bytes) -> bytes:
    """A client's ping: FIN + opcode 9, masked, a payload of at most 125 bytes."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x89, 0x80 | len(payload)]) + mask + masked


async def test_a_ping_flood_that_reads_nothing_is_dropped(stack: Stack) -> None:
    token = await stack.owner()
    reader, writer = await open_raw(stack)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
    before = rss_bytes(stack)
    batch = ping_frame(b"p" * 125) * 1000
    sent = 0
    try:
        while sent < 100_000:  # and never read a pong
            writer.write(batch)
            await asyncio.wait_for(writer.drain(), 10)
            sent += 1000
    except (ConnectionResetError, BrokenPipeError):
        pass
    during_ms = await healthz_ms(stack)
    grown = rss_bytes(stack) - before
    dropped = sent < 100_000 or await _closed_by_server(reader)
    writer.close()
    assert dropped, "the server kept a socket that reads none of its pongs"
    assert grown < 4 * MiB, f"the web process grew by {grown / MiB:.1f} MiB"
    assert during_ms < 50


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection while we read (and drop) what it sent."""
    try:
        async with asyncio.timeout(10):
            while await reader.read(MiB):
                pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


async def test_websockets_are_capped_per_address_and_in_all(hostile: Stack) -> None:
    token = await hostile.owner()
    url = f"{hostile.ws_base}/ws"
    bearer = {"Authorization": f"Bearer {token}"}

    async def refusal(local: str) -> InvalidStatus:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, additional_headers=bearer, local_addr=(local, 0)):
                pass
        return refused.value

    held = [await connect(url, additional_headers=bearer) for _ in range(3)]
    per_address = await refusal("127.0.0.1")
    held += [
        await connect(url, additional_headers=bearer, local_addr=("127.0.0.2", 0)) for _ in range(2)
    ]
    in_all = await refusal("127.0.0.2")
    for ws in held:
        await ws.close()
    for refused, reason in ((per_address, "per client address"), (in_all, "its most")):
        response = refused.response
        assert response.status_code == 429
        assert reason in response.body.decode()
        assert response.headers["retry-after"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]

    async def welcome() -> bool:  # the count goes down as sockets close
        try:
            async with connect(url, additional_headers=bearer):
                return True
        except InvalidStatus:
            return False

    await eventually(welcome, what="a socket once the others closed")


async def test_a_refused_handshake_carries_the_security_headers(hostile: Stack) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{hostile.ws_base}/ws"):
            pass
    response = refused.value.response
    assert response.status_code == 401
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


# credentials


async def test_no_credential_in_a_url_reaches_the_logs(hostile: Stack) -> None:
    token = await hostile.owner()
    # refused at the handshake, or answered with an error and closed: uvicorn writes its line
    with contextlib.suppress(InvalidStatus, ConnectionClosed):
        async with connect(f"{hostile.ws_base}/ws/jobs/nope?token={token}&after=0") as ws:
            async for _message in ws:
                pass
    async with hostile.client(token) as client:
        await client.get(f"/api/jobs?token={token}")
    logs = hostile.logs("web")
    assert "WebSocket /ws/jobs/nope?token=***&after=0" in logs  # uvicorn's line, masked
    assert token not in logs


async def test_failed_authentications_are_limited_per_address(hostile: Stack) -> None:
    token = await hostile.owner()
    guesser = httpx.AsyncHTTPTransport(local_address="127.0.0.3")
    async with httpx.AsyncClient(base_url=hostile.base_url, transport=guesser) as client:
        guesses = [
            await client.get("/api/jobs", headers={"Authorization": f"Bearer guess-{i}"})
            for i in range(8)
        ]
    async with hostile.client(token) as owner, hostile.client("wrong") as other:
        mine = await owner.get("/api/jobs")  # another address, a good token
        theirs = await other.get("/api/jobs")
    assert [g.status_code for g in guesses[:5]] == [401] * 5
    limited = guesses[5:]
    assert all(g.status_code == 429 for g in limited), [g.status_code for g in limited]
    assert_error(limited[0], 429, "too_many_requests")
    assert int(limited[0].headers["retry-after"]) >= 1
    assert mine.status_code == 200
    assert_error(theirs, 401, "unauthorized")


# /metrics, forwarded headers


async def test_metrics_need_their_token_and_reuse_the_install_numbers(hostile: Stack) -> None:
    bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    token = await hostile.owner()
    async with httpx.AsyncClient(base_url=hostile.base_url) as client:
        assert_error(await client.get("/metrics"), 401, "unauthorized")
        first = await client.get("/metrics", headers=bearer)
        async with hostile.client(token) as owner:
            later = {"type": "noop", "delay_seconds": 600}
            assert (await owner.post("/api/jobs", json=later)).status_code == 202
        second = await client.get("/metrics", headers=bearer)
    assert first.status_code == 200 and "jobcast_queue_depth" in first.text

    # within JOBCAST_METRICS_CACHE_S a scrape costs no database work: the same numbers
    def pending(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("jobcast_pending")]

    assert pending(second.text) == pending(first.text)


async def test_hsts_over_https_from_a_trusted_proxy_only(stack: Stack, hostile: Stack) -> None:
    https = {"X-Forwarded-Proto": "https"}
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        proxied = await client.get("/healthz", headers=https)
        plain = await client.get("/healthz")
    async with httpx.AsyncClient(base_url=hostile.base_url) as client:
        untrusted = await client.get("/healthz", headers=https)  # no trusted proxies there
    assert proxied.headers["strict-transport-security"] == "max-age=31536000"
    assert "strict-transport-security" not in plain.headers
    assert "strict-transport-security" not in untrusted.headers
