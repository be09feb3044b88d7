"""Limits that keep one visitor from starving the rest.

- Request bodies over ``JOBCAST_MAX_BODY_BYTES`` are refused with 413 as soon as
  the declared length (or the bytes read so far) says so: never read whole.
- A client that goes away before its body is read is a debug line, not an error.
- Rates (submits per owner, sessions and failed authentications per client
  address) are kept in Redis, so they hold across server processes: a GCRA token
  bucket in one Lua script. Where Redis does not answer, the rate is not enforced
  (fail open): submits must go on during a Redis outage, and the active-jobs cap
  in Postgres still holds.
- Open websockets per client address and in all are capped per process (429), on
  top of the per-owner cap: sessions are free, so that one does not bound a client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobcast.errors import PayloadTooLarge, TooManyRequests
from jobcast.model import dumps
from server.errors import answer_of, body_of, headers_of

log = logging.getLogger(__name__)

# KEYS: bucket; ARGV: ms per request, burst tolerance in ms. Returns 0 or ms to wait.
_GCRA = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > tolerance + interval then
  return new_tat - now - tolerance - interval
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return 0
"""


class RateLimiter:
    """Token buckets in Redis, keyed by a name and a subject (owner id, address)."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._script = redis.register_script(_GCRA)
        self._prefix = prefix

    async def check(
        self, name: str, subject: str, *, per_min: float, burst: int, what: str
    ) -> None:
        """Raise TooManyRequests with Retry-After when the subject is over the rate."""
        interval_ms = 60_000 / per_min
        try:
            wait_ms = int(
                await self._script(
                    keys=[f"{self._prefix}:rate:{name}:{subject}"],
                    args=[interval_ms, interval_ms * (burst - 1)],
                )
            )
        except (RedisError, OSError) as exc:
            log.warning("rate limit %s not checked, Redis unavailable: %s", name, exc)
            return
        if wait_ms > 0:
            retry_s = max(1, -(-wait_ms // 1000))
            raise TooManyRequests(
                f"too many {what}: at most {per_min:g} a minute; try again in {retry_s} s",
                retry_after_s=retry_s,
            )


class BodyLimit:
    """ASGI middleware: 413 for bodies over the limit, before they are read whole."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, per_path: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = per_path or {}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # a websocket passes straight on, leaving no frame of this held while it is open,
        # and so does a request without a body: HTTP/1.1 has one only where the request
        # says Content-Length or Transfer-Encoding (most are GETs: nothing to count)
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                declared = declared or b""
        if declared is None:
            return self.app(scope, receive, send)
        return self._limited(scope, receive, send, declared)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, declared: bytes) -> None:
        limit = self.per_path.get(scope["path"], self.max_bytes)
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(send, limit)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send, limit)
        except ClientDisconnect:
            log.debug(
                "%s %s: the client went away before its body was read",
                scope["method"],
                scope["path"],
            )

    async def _refuse(self, send: Send, limit: int) -> None:
        error = PayloadTooLarge(f"the body is over {limit} bytes")
        body = dumps(body_of(error))
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class SocketCaps:
    """ASGI middleware: at most so many open websockets per client address, and in all."""

    def __init__(self, app: ASGIApp, per_address: int, total: int) -> None:
        self.app = app
        self.per_address = per_address
        self.total = total
        self.open = 0
        self.by_address: dict[str, int] = {}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "websocket":
            return self.app(scope, receive, send)
        client = scope.get("client")
        address = client[0] if client else "unknown"
        held = self.by_address.get(address, 0)
        if self.open >= self.total:
            reason = f"this server holds {self.total} open websockets, its most"
        elif held >= self.per_address:
            reason = f"at most {self.per_address} open websockets per client address"
        else:
            # counted until the socket's task ends (the server runs each in a task of its
            # own), so that no frame of this is held while it is open: thousands may be
            task = asyncio.current_task()
            assert task is not None
            self.open += 1
            self.by_address[address] = held + 1
            task.add_done_callback(lambda _: self._release(address))
            return self.app(scope, receive, send)
        log.info("websocket from %s refused: %s", address, reason)
        return deny_socket(scope, receive, send, TooManyRequests(reason, retry_after_s=5))

    def _release(self, address: str) -> None:
        self.open -= 1
        left = self.by_address[address] - 1
        if left:
            self.by_address[address] = left
        else:
            del self.by_address[address]


async def deny_socket(scope: Scope, receive: Receive, send: Send, error: TooManyRequests) -> None:
    """Refuse a websocket handshake with the HTTP status and error body, where the server can."""
    await receive()  # websocket.connect
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    body = dumps(body_of(error))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in headers_of(error).items()]
    await send(
        {"type": "websocket.http.response.start", "status": answer_of(error)[0], "headers": headers}
    )
    await send({"type": "websocket.http.response.body", "body": body})
