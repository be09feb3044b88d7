"""Who may use the admin surfaces: the admin token acts, the operator token only looks.

Both tokens are compared in constant time, each on every request (so the time taken
does not say which one came close). A token that is neither is a failed try, counted
by the failed-authentication limiter like any other (``server.auth.note_failure``);
an owner token or app key is known but not an admin's: 403.
"""

from __future__ import annotations

import hmac
from enum import StrEnum

from pydantic import SecretStr
from starlette.requests import HTTPConnection

from jobcast.errors import Forbidden, Unauthorized
from server.auth import caller_of, token_of
from server.state import Services


class Role(StrEnum):
    ADMIN = "admin"  # sees and acts
    OPERATOR = "operator"  # sees, acts on nothing


def _matches(given: bytes, expected: SecretStr | None) -> bool:
    if expected is None:
        return False
    return hmac.compare_digest(given, expected.get_secret_value().encode())


async def role_of(conn: HTTPConnection) -> Role:
    """The caller's admin role; 401 without a token or with an unknown one, 403 with an
    owner's token or when neither admin token is set."""
    services: Services = conn.state.services
    settings = services.settings
    token, _ = token_of(conn)
    if not token:
        raise Unauthorized("the admin token is needed: Authorization: Bearer <token>")
    given = token.encode()
    is_admin = _matches(given, settings.admin_token)
    is_operator = _matches(given, settings.operator_token)
    if is_admin:
        return Role.ADMIN
    if is_operator:
        return Role.OPERATOR
    if settings.admin_token is None and settings.operator_token is None:
        raise Forbidden("admin endpoints are off: set JOBCAST_ADMIN_TOKEN to turn them on")
    try:
        await caller_of(conn)  # counts a failed try when the token is not known
    except Unauthorized:
        raise Unauthorized("this token is not known") from None
    raise Forbidden("this is an owner token or app key; admin endpoints need the admin token")


async def require_admin_role(conn: HTTPConnection) -> Role:
    """The caller's role, for an endpoint that only reads."""
    return await role_of(conn)


async def require_actor(conn: HTTPConnection) -> str:
    """For an endpoint that acts: the admin, named for the log (role and address); 403
    for the read-only operator token."""
    role = await role_of(conn)
    if role is not Role.ADMIN:
        raise Forbidden("the operator token is read-only: actions need the admin token")
    return f"{role.value}@{conn.client.host if conn.client else 'unknown'}"
