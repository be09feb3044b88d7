"""The edge of every HTTP answer: the request id, security headers, and one log line.

One middleware rather than three, since each wraps every message of every request:
it takes ``X-Request-ID`` from the caller (or makes one) and echoes it, adds the
security headers (docs/security.md) to every answer, a websocket's refused
handshake included, and logs one line per request. Over https (directly, or
through a trusted proxy's ``X-Forwarded-Proto``) the answer also carries HSTS.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobcast.logs import REQUEST_ID

log = logging.getLogger("jobcast.access")

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")

# The page loads its scripts and styles from /static only, and talks to its own origin
# (fetch and websockets); nothing may frame it.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

_SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]

# Browsers that once saw the service over https keep to https for a year. Not for
# subdomains: jobcast often sits on one subdomain of an app that has others.
_HSTS = (b"strict-transport-security", b"max-age=31536000")
_SECURE_SCHEMES = frozenset({"https", "wss"})
_STARTS = frozenset({"http.response.start", "websocket.http.response.start"})


class Edge:
    """ASGI middleware: request ids, security headers and the access log."""

    def __init__(self, app: ASGIApp, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "http":
            return self._http(scope, receive, send)
        if scope["type"] != "websocket":
            return self.app(scope, receive, send)
        # A websocket runs in a task of its own, so the request id set here ends with it,
        # and nothing is logged at its end: it goes straight on, leaving no frame of this
        # held while it is open (thousands may be).
        request_id = _request_id(scope)
        REQUEST_ID.set(request_id)
        return self.app(scope, receive, _with_headers(send, _added(scope, request_id)))

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _request_id(scope)
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 0
        added = _added(scope, request_id)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] in _STARTS:
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *added]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if self.access_log:
                log.info(
                    "%s %s %d %.1fms",
                    scope["method"],
                    scope["path"],
                    status,
                    (time.perf_counter() - started) * 1000,
                )
            REQUEST_ID.reset(token)


def _request_id(scope: Scope) -> str:
    """The caller's X-Request-ID where it is one a log can hold, else a new one."""
    given = ""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            given = value.decode("latin-1")
            break
    return given if _VALID_ID.match(given) else uuid.uuid4().hex


def _added(scope: Scope, request_id: str) -> list[tuple[bytes, bytes]]:
    added = [(b"x-request-id", request_id.encode()), *_SECURITY_HEADERS]
    if scope.get("scheme") in _SECURE_SCHEMES:
        added.append(_HSTS)
    return added


def _with_headers(send: Send, added: list[tuple[bytes, bytes]]) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] in _STARTS:
            message["headers"] = [*message.get("headers", []), *added]
        await send(message)

    return send_with_headers
