"""Who is calling: an owner token from ``Authorization: Bearer`` or the session cookie.

Failed authentications are counted per client address (a token bucket in Redis, as
for the other rates): tokens are 256-bit, so guessing is hopeless, but each guess
costs a lookup and a log line; past ``JOBCAST_AUTH_FAILURE_BURST`` the answer is 429.
"""

from __future__ import annotations

from uuid import UUID

from starlette.requests import HTTPConnection

from jobcast.errors import Unauthorized
from server.state import Services

COOKIE_NAME = "jobcast_session"


def token_of(conn: HTTPConnection) -> tuple[str | None, bool]:
    """The presented token, and whether it came from the cookie."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    cookie = conn.cookies.get(COOKIE_NAME)
    return (cookie, True) if cookie else (None, False)


async def note_failure(conn: HTTPConnection) -> None:
    """Count a failed authentication from this address; TooManyRequests past the rate."""
    services: Services = conn.state.services
    settings = services.settings
    await services.limiter.check(
        "auth-failure",
        conn.client.host if conn.client else "unknown",
        per_min=settings.auth_failure_rate_per_min,
        burst=settings.auth_failure_burst,
        what="failed authentications from this address",
    )


async def owner_of(conn: HTTPConnection) -> UUID:
    """The calling owner, or Unauthorized (TooManyRequests after many failures)."""
    services: Services = conn.state.services
    token, _ = token_of(conn)
    if not token:
        raise Unauthorized("an owner token is needed: Authorization: Bearer <token> or a session")
    owner_id = None if len(token) > 200 else await services.store.owner_for_token(token)
    if owner_id is None:
        await note_failure(conn)
        raise Unauthorized("this token is not known; create a session with POST /api/sessions")
    return owner_id
