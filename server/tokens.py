"""``POST /api/tokens``: a browser token minted by jobcast, for backends that prefer to ask.

A backend can mint the same token itself (HS256 over its key's signing secret, the key's
id as ``kid``: ``jobcast.tokens``), with no round trip; this is the same token, made here.
Only an app key may ask, and only for a scope of its own jobs.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from jobcast import tokens
from jobcast.errors import Forbidden, InvalidInput, Unauthorized
from jobcast.model import MAX_NAME_CHARS, MAX_TAGS, Tag
from server.auth import caller_of
from server.openapi import endpoint, error_responses
from server.params import body_model, json_body, services_of
from server.responses import model_response

Action = Literal["read", "input", "cancel"]


class TokenRequest(BaseModel):
    """The body of ``POST /api/tokens``: what the browser may see and do, for how long."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[str] | None = Field(None, max_length=tokens.MAX_JOBS, description="Job ids.")
    tags: list[Tag] | None = Field(None, max_length=MAX_TAGS, description="Jobs with one of these.")
    subject: str | None = Field(None, min_length=1, max_length=MAX_NAME_CHARS)
    tenant: str | None = Field(None, min_length=1, max_length=MAX_NAME_CHARS)
    can: list[Action] = Field(
        default_factory=lambda: list[Action](["read"]),
        min_length=1,
        description="The actions allowed.",
    )
    expires_in: float = Field(gt=0, description="Seconds the token lives.")


class TokenCreated(BaseModel):
    token: str = Field(description="A JWT (HS256); send it as a bearer or as ?token= on /ws.")
    expires_at: int = Field(description="Its exp: seconds since the epoch.")


@endpoint(
    "Mint a browser token from the calling app key (a backend may mint it itself)",
    body=TokenRequest,
    responses={201: TokenCreated, **error_responses(400, 401, 403, 422, 503)},
    tags=("tokens",),
)
async def create_token(request: Request) -> Response:
    services = services_of(request)
    caller = await caller_of(request)
    if not caller.is_app or caller.key_id is None:
        raise Forbidden("only an app key mints browser tokens (jobcast keys create)")
    asked = body_model(TokenRequest, await json_body(request))
    claims: dict[str, Any] = {"exp": int(time.time() + asked.expires_in), "can": asked.can}
    for name, value in (("jobs", asked.jobs), ("tags", asked.tags)):
        if value:
            claims[name] = value
    if asked.subject is not None:
        claims["sub"] = asked.subject
    if asked.tenant is not None:
        claims["tenant"] = asked.tenant
    try:
        scope = tokens.scope_of(claims, caller.key_id, services.settings.token_max_ttl_s)
    except Unauthorized as exc:  # here a bad scope is the request's, not a credential's
        raise InvalidInput(
            exc.message, details=[{"field": "body", "message": exc.message}]
        ) from None
    key = await services.store.app_key(caller.key_id)
    if key is None or key.revoked:
        raise Unauthorized(f"app key {caller.key_id} was revoked")
    token = tokens.mint(scope, key.signing_secret)
    return model_response(TokenCreated(token=token, expires_at=int(scope.expires_at)), 201)
