"""Security at the edge: admin tokens, which pages may act with the session cookie.

The session cookie comes with every request a browser makes to us, whichever page
makes it. ``SameSite=Lax`` keeps it off cross-*site* POSTs, but a page of the same
site (another port, a sibling subdomain) and old browsers still send it. So a
state-changing request that does not carry a bearer token must show that a page
of ours (or of an allowed origin) made it: browsers name the page's origin in
``Origin`` on every POST, and say ``Sec-Fetch-Site`` where ``Origin`` is missing.
Neither can be set by a page. A request naming neither is not from a current
browser: it is refused when it carries the cookie. docs/security.md says why this
and not a token the page echoes.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection, cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from jobcast.errors import Forbidden, Refused, Unauthorized
from server.auth import COOKIE_NAME, caller_of, token_of
from server.errors import answers, response_of
from server.state import Services

# Methods that change state; GET, HEAD and OPTIONS never do here.
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Endpoints whose bodies are not JSON. The others take only JSON from a cookie holder
# (415 for a form's or text/plain body), so that a foreign page's fetch always needs a
# CORS preflight, which only allowed origins pass.
_NOT_JSON = frozenset({"/api/uploads"})


@answers(415, "unsupported_media_type")
class UnsupportedMediaType(Refused):
    """The body's type is not the endpoint's: send ``Content-Type: application/json``."""


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
    try:
        await caller_of(conn)  # counts a failure when the token is not known
    except Unauthorized:
        raise Unauthorized("this token is not known") from None
    raise Forbidden("this is an owner token or app key; admin endpoints need the admin token")


def same_origin(origin: str, host: str, allowed: frozenset[str]) -> bool:
    """Whether a page of this origin may act with the cookie: our own, or an allowed one."""
    origin = origin.rstrip("/")
    if origin in allowed:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host


def origin_allowed(conn: HTTPConnection, allowed: frozenset[str]) -> bool:
    """Whether a browser's websocket comes from our own pages or an allowed origin."""
    origin = conn.headers.get("origin")
    if origin is None:
        return False
    return same_origin(origin, conn.headers.get("host", ""), allowed)


def cross_site_refusal(
    method: str, path: str, headers: Headers, allowed: frozenset[str]
) -> Refused | None:
    """Why a foreign page may not have made this request, or None when it may go on."""
    if method not in _UNSAFE:
        return None
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return None  # a page cannot attach our bearer token to a request
    origin = headers.get("origin")
    site = headers.get("sec-fetch-site")
    if origin is not None:
        if not same_origin(origin, headers.get("host", ""), allowed):
            return Forbidden(
                f"a page of {origin[:100]!r} may not act with the session cookie; "
                "list it in JOBCAST_ALLOWED_ORIGINS or send a bearer token"
            )
    elif site is not None:
        if site not in ("same-origin", "none"):
            return Forbidden(f"a {site[:20]} page may not act with the session cookie")
    elif _has_session(headers):
        return Forbidden(
            "a request with the session cookie must say which page sent it (Origin); "
            "other clients send Authorization: Bearer <token>"
        )
    content_type = headers.get("content-type")
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    if (
        content_type is not None
        and has_body
        and path.startswith("/api/")
        and path not in _NOT_JSON
        and _has_session(headers)
        and not content_type.split(";", 1)[0].strip().lower().endswith(("/json", "+json"))
    ):
        return UnsupportedMediaType(
            f"the body must be JSON (Content-Type: application/json), not {content_type[:60]!r}"
        )
    return None


def _has_session(headers: Headers) -> bool:
    raw = headers.get("cookie")
    return raw is not None and COOKIE_NAME in raw and bool(cookie_parser(raw).get(COOKIE_NAME))


class CrossSiteGuard:
    """ASGI middleware: 403 for a state-changing request a foreign page made the browser send."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # what passes goes straight on, leaving no frame of this held (a websocket's is
        # held as long as it is open)
        if scope["type"] == "http" and scope["method"] in _UNSAFE:  # reads pass at once
            refusal = cross_site_refusal(
                scope["method"], scope["path"], Headers(scope=scope), self.allowed
            )
            if refusal is not None:
                return response_of(refusal)(scope, receive, send)
        return self.app(scope, receive, send)
