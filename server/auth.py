"""Who is calling: an owner token from ``Authorization: Bearer`` or the session cookie."""

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


async def owner_of(conn: HTTPConnection) -> UUID:
    """The calling owner, or Unauthorized."""
    services: Services = conn.state.services
    token, _ = token_of(conn)
    if not token or len(token) > 200:
        raise Unauthorized("an owner token is needed: Authorization: Bearer <token> or a session")
    owner_id = await services.store.owner_for_token(token)
    if owner_id is None:
        raise Unauthorized("this token is not known; create a session with POST /api/sessions")
    return owner_id
