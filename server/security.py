"""Security at the edge: admin tokens, websocket origins, and headers on every answer."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from jobcast.errors import Forbidden, Unauthorized
from server.auth import token_of
from server.state import Services


async def require_admin(conn: HTTPConnection) -> None:
    """401 without a token, 403 with an owner token (or when admin is off)."""
    services: Services = conn.state.services
    token, _ = token_of(conn)
    if not token:
        raise Unauthorized("the admin token is needed: Authorization: Bearer <token>")
    expected = services.settings.admin_token
    if expected is not None and hmac.compare_digest(
        token.encode(), expected.get_secret_value().encode()
    ):
        return
    if expected is None:
        raise Forbidden("admin endpoints are off: set JOBCAST_ADMIN_TOKEN to turn them on")
    if len(token) <= 200 and await services.store.owner_for_token(token) is not None:
        raise Forbidden("this is an owner token; admin endpoints need the admin token")
    raise Unauthorized("this token is not known")


def origin_allowed(conn: HTTPConnection, allowed: frozenset[str]) -> bool:
    """Whether a browser's websocket comes from our own pages or an allowed origin."""
    origin = conn.headers.get("origin")
    if origin is None:
        return False
    origin = origin.rstrip("/")
    if origin in allowed:
        return True
    host = conn.headers.get("host", "")
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == host
