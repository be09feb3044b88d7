"""The one place a websocket is admitted: its owner, its origin, the caps on open sockets.

A socket that passes is accepted and counted (per owner, in the process's set of open
sockets that a shutdown closes with 1001, and in the open-websockets gauge) for as long
as its handler runs; one that does not is refused at the handshake with the HTTP status
and the error body where the server can send them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import wraps
from uuid import UUID

from starlette import status
from starlette.websockets import WebSocket

from jobcast import metrics
from jobcast.errors import ApiError, Forbidden, TooManyRequests
from server.auth import caller_of, owner_of, token_of
from server.errors import response_of
from server.security import origin_allowed
from server.sockets.expiry import expiring
from server.state import Services


def services_of(ws: WebSocket) -> Services:
    services: Services = ws.state.services
    return services


async def _deny(ws: WebSocket, exc: ApiError) -> None:
    """Refuse the handshake with the HTTP status and error body, where the server can."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(response_of(exc))
    else:
        await ws.close(status.WS_1008_POLICY_VIOLATION)


@asynccontextmanager
async def admitted(ws: WebSocket) -> AsyncIterator[UUID | None]:
    """The owner of an accepted socket, or None when the handshake was refused.

    A cookie comes with every request a browser makes, whichever site's page makes
    it: a cookie-authenticated socket must come from our own pages (or an allowed
    origin), else any site could read its visitors' jobs (cross-site websocket
    hijacking). A bearer token cannot be sent that way, so it needs no such check.
    """
    services = services_of(ws)
    try:
        owner_id = await owner_of(ws)
        caller = await caller_of(ws)
        _, by_cookie = token_of(ws)
        if by_cookie and not origin_allowed(ws, services.settings.origins):
            raise Forbidden("this origin may not open websockets with the session cookie")
        # an app's browsers share its key's owner: the app's minting of tokens bounds them,
        # and the caps per address and per process still hold
        capped = caller.scope is None
        if capped and services.sockets.get(owner_id, 0) >= services.settings.max_sockets_per_owner:
            raise TooManyRequests(
                f"at most {services.settings.max_sockets_per_owner} open websockets per owner",
                retry_after_s=5,
            )
    except ApiError as exc:
        await _deny(ws, exc)
        yield None
        return
    if capped:
        services.sockets[owner_id] = services.sockets.get(owner_id, 0) + 1
    services.open_sockets.add(ws)
    gauge = metrics.OPEN_WEBSOCKETS.labels("job" if "job_id" in ws.path_params else "owner")
    gauge.inc()
    try:
        await ws.accept()
        if caller.scope is None:
            yield owner_id
        else:
            async with expiring(ws, caller.scope.expires_at):
                yield owner_id
    finally:
        gauge.dec()
        services.open_sockets.discard(ws)
        if capped:
            left = services.sockets[owner_id] - 1
            if left:
                services.sockets[owner_id] = left
            else:
                del services.sockets[owner_id]


def owned(
    serve: Callable[[WebSocket, UUID], Awaitable[None]],
) -> Callable[[WebSocket], Awaitable[None]]:
    """A websocket endpoint that serves each admitted socket with its owner's id (a refused
    one has had its answer at the handshake)."""

    @wraps(serve)
    async def endpoint(ws: WebSocket) -> None:
        async with admitted(ws) as owner_id:
            if owner_id is not None:
                await serve(ws, owner_id)

    return endpoint
