"""``POST /api/sessions``: a new anonymous owner, its token also set as a cookie."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response

from jobcast.schemas import SessionCreated
from server.auth import COOKIE_NAME
from server.openapi import endpoint, error_responses
from server.params import services_of
from server.responses import model_response

_SESSION_MAX_AGE_S = 365 * 86_400


@endpoint(
    "Create an anonymous owner: a token, also set as a cookie",
    responses={201: SessionCreated, **error_responses(429, 503)},
    auth=None,
    tags=("sessions",),
)
async def create_session(request: Request) -> Response:
    services = services_of(request)
    settings = services.settings
    address = request.client.host if request.client else "unknown"
    await services.limiter.check(
        "session",
        address,
        per_min=settings.session_rate_per_min,
        burst=settings.session_burst,
        what="new sessions",
    )
    token = secrets.token_urlsafe(32)
    owner_id = await services.store.create_owner(token)
    secret = await services.store.webhook_secret(owner_id)
    response = model_response(SessionCreated(token=token, webhook_secret=secret), 201)
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=_SESSION_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response
