"""Who is calling: an owner token, an app key or a browser token, from ``Authorization:
Bearer``, the session cookie, or (websockets) ``?token=``.

- An owner token (an anonymous session) sees its own jobs.
- An app key (``jck_...``, made by ``jobcast keys create``) acts as the key's owner: it
  submits on behalf of a subject and tenant, and sees every job it submitted.
- A browser token (a JWT minted from an app key, ``jobcast.tokens``) acts as the key's
  owner within its scope: a job outside it is a plain 404 on every surface, and an
  action it was not given (``read``, ``input``, ``cancel``) is a 403.

Failed authentications are counted per client address (a token bucket in Redis, as
for the other rates): tokens are 256-bit, so guessing is hopeless, but each guess
costs a lookup and a log line; past ``JOBCAST_AUTH_FAILURE_BURST`` the answer is 429.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from starlette.requests import HTTPConnection

from jobcast import tokens
from jobcast.errors import Forbidden, NotFound, Unauthorized
from jobcast.store.keys import is_app_key
from jobcast.tokens import TokenScope
from server.state import Services

COOKIE_NAME = "jobcast_session"
TOKEN_PARAM = "token"
_MAX_OWNER_TOKEN_CHARS = 200
# the reads a browser token may make besides one job's: the list applies its scope
_TOKEN_READS = frozenset({"/api/job-types", "/api/jobs"})


@dataclass(frozen=True)
class Caller:
    """Whose jobs a request sees: an owner's, an app key's, or a browser token's scope."""

    owner_id: UUID
    key_id: str | None = None  # the app key, or the one a browser token was minted from
    scope: TokenScope | None = None  # a browser token's

    @property
    def is_app(self) -> bool:
        """An app key itself, with all its rights (not a browser token minted from it)."""
        return self.key_id is not None and self.scope is None


def token_of(conn: HTTPConnection) -> tuple[str | None, bool]:
    """The presented token, and whether it came from the cookie.

    A websocket may bring a browser token as ``?token=`` (browsers cannot set headers on
    a websocket); the access log masks it.
    """
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    if conn.scope["type"] == "websocket":
        given = conn.query_params.get(TOKEN_PARAM)
        if given:
            return given, False
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


async def caller_of(conn: HTTPConnection) -> Caller:
    """The caller, or Unauthorized (TooManyRequests after many failures); once per request."""
    known: Caller | None = getattr(conn.state, "caller", None)
    if known is not None:
        return known
    token, _ = token_of(conn)
    if not token:
        raise Unauthorized("an owner token is needed: Authorization: Bearer <token> or a session")
    if is_app_key(token):
        caller = await _app_key_caller(conn, token)
    elif tokens.looks_like_token(token):
        caller = await _token_caller(conn, token)
    else:
        caller = Caller(await _owner(conn, token))
    conn.state.caller = caller
    return caller


async def _owner(conn: HTTPConnection, token: str) -> UUID:
    services: Services = conn.state.services
    too_long = len(token) > _MAX_OWNER_TOKEN_CHARS
    owner_id = None if too_long else await services.store.owner_for_token(token)
    if owner_id is None:
        await note_failure(conn)
        raise Unauthorized("this token is not known; create a session with POST /api/sessions")
    return owner_id


async def _app_key_caller(conn: HTTPConnection, bearer: str) -> Caller:
    services: Services = conn.state.services
    key = None
    if len(bearer) <= _MAX_OWNER_TOKEN_CHARS:
        key = await services.store.app_key_for_bearer(bearer)
    if key is None:
        await note_failure(conn)
        raise Unauthorized("this app key is not known; an operator makes one: jobcast keys create")
    if key.revoked:
        raise Unauthorized(f"app key {key.id} ({key.name}) was revoked")
    return Caller(key.owner_id, key_id=key.id)


async def _token_caller(conn: HTTPConnection, raw: str) -> Caller:
    services: Services = conn.state.services
    key_id = tokens.key_id_of(raw)
    key = await services.store.app_key(key_id) if len(key_id) <= 100 else None
    if key is None:
        await note_failure(conn)
        raise Unauthorized(f"this browser token names no known app key ({key_id[:40]!r})")
    if key.revoked:
        raise Unauthorized(f"app key {key.id} was revoked, and every token minted from it")
    try:
        scope = tokens.verify(raw, key.id, key.signing_secret, services.settings.token_max_ttl_s)
    except Unauthorized:
        await note_failure(conn)
        raise
    return Caller(key.owner_id, key_id=key.id, scope=scope)


def action_of(conn: HTTPConnection) -> str:
    """What a request does to a job, in a browser token's terms: read, input or cancel."""
    if conn.scope["type"] == "websocket":
        return "read"
    method = conn.scope["method"]
    if method in ("GET", "HEAD"):
        return "read"
    path = conn.url.path
    if method == "POST" and path.endswith("/cancel"):
        return "cancel"
    if method == "POST" and path.endswith("/input"):
        return "input"
    return f"{method} {path}"


async def admit(conn: HTTPConnection, caller: Caller) -> None:
    """A browser token's own checks: the action is one it was given, the job (if the path
    names one) is in its scope (NotFound, as if none, when not)."""
    scope = caller.scope
    if scope is None:
        return
    action = action_of(conn)
    if action not in tokens.ACTIONS:
        raise Forbidden(f"a browser token may read, answer or cancel jobs; not {action[:80]}")
    if action not in scope.can:
        raise Forbidden(f"this browser token may not {action} jobs (it can: {sorted(scope.can)})")
    raw_id = conn.path_params.get("job_id")
    if raw_id is not None:
        if not await in_scope(conn, caller, raw_id):
            raise NotFound("no such job")
    elif conn.scope["type"] == "http" and conn.url.path not in _TOKEN_READS:
        raise Forbidden("a browser token reads the jobs of its scope: each, the list, or on /ws")


async def in_scope(conn: HTTPConnection, caller: Caller, raw_id: str) -> bool:
    """Whether the job is the caller's and, for a browser token, in its scope."""
    scope = caller.scope
    if scope is None:
        return True
    try:
        job_id = UUID(raw_id)
    except ValueError:
        return False
    if scope.by_ids_only:
        return job_id in scope.jobs
    services: Services = conn.state.services
    found = await services.store.job_scope(job_id, caller.owner_id)
    return found is not None and scope.admits(job_id, found.subject, found.tenant, found.tags)


async def owner_of(conn: HTTPConnection) -> UUID:
    """The owner whose jobs the caller sees; for a browser token, after its own checks."""
    caller = await caller_of(conn)
    await admit(conn, caller)
    return caller.owner_id
