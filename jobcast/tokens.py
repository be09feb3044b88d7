"""Scoped browser tokens: JWTs an app's backend mints from its app key, for one browser.

A token is a JWT signed with HS256 over the app key's signing secret, with the key's id
in the header's ``kid``, so that any backend mints one with its usual JWT library and
no call to jobcast. Its claims say what the browser may see and do:

- ``jobs`` (job ids), ``tags``, ``sub`` (the app's user) and ``tenant`` (its
  organisation): a job is in scope when it matches every one the token names (one of
  its ids, one of its tags, its subject, its tenant); a token must name at least one;
- ``can``: the actions, among ``read``, ``input`` and ``cancel`` (default: read);
- ``exp``: required, and at most ``JOBCAST_TOKEN_MAX_TTL_S`` away.

Only HS256 is accepted (never ``none``, never a public-key algorithm fed the secret).
Revoking the key refuses every token whose ``kid`` names it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import jwt

from jobcast.errors import TokenExpired, Unauthorized
from jobcast.model import MAX_NAME_CHARS, MAX_TAG_CHARS, MAX_TAGS

ALGORITHM = "HS256"
ACTIONS = frozenset({"read", "input", "cancel"})
MAX_JOBS = 100  # job ids one token names
_MAX_TOKEN_CHARS = 8192
_LEEWAY_S = 30  # on the cap: clocks of the minting backend and of jobcast may differ


@dataclass(frozen=True)
class TokenScope:
    """What a verified token lets its bearer see and do, and until when."""

    key_id: str
    can: frozenset[str]
    expires_at: float  # seconds since the epoch
    jobs: frozenset[UUID] = frozenset()
    tags: frozenset[str] = frozenset()
    subject: str | None = None
    tenant: str | None = None

    def admits(
        self, job_id: UUID, subject: str | None, tenant: str | None, tags: Iterable[str]
    ) -> bool:
        """Whether a job with these is in scope: it matches every kind the token names."""
        if self.jobs and job_id not in self.jobs:
            return False
        if self.subject is not None and subject != self.subject:
            return False
        if self.tenant is not None and tenant != self.tenant:
            return False
        return not self.tags or not self.tags.isdisjoint(tags)

    @property
    def by_ids_only(self) -> bool:
        """The scope is decided by the job's id alone, without reading the job."""
        return self.subject is None and self.tenant is None and not self.tags

    def claims(self) -> dict[str, Any]:
        """The claims that say this scope, as a token carries them."""
        claims: dict[str, Any] = {"exp": int(self.expires_at), "can": sorted(self.can)}
        if self.jobs:
            claims["jobs"] = sorted(str(j) for j in self.jobs)
        if self.tags:
            claims["tags"] = sorted(self.tags)
        if self.subject is not None:
            claims["sub"] = self.subject
        if self.tenant is not None:
            claims["tenant"] = self.tenant
        return claims


def looks_like_token(raw: str) -> bool:
    """A JWT (three base64url parts, the header a JSON object), not an owner token."""
    return raw.startswith("eyJ") and raw.count(".") == 2


def key_id_of(raw: str) -> str:
    """The ``kid`` of a token's header, read before its signature is checked."""
    if len(raw) > _MAX_TOKEN_CHARS:
        raise Unauthorized(f"a browser token is at most {_MAX_TOKEN_CHARS} characters")
    try:
        header = jwt.get_unverified_header(raw)
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"this browser token cannot be read: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise Unauthorized(f"a browser token is signed with {ALGORITHM}, not {header.get('alg')!r}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Unauthorized("a browser token names its app key in the header's kid")
    return kid


def verify(raw: str, key_id: str, secret: str, max_ttl_s: float) -> TokenScope:
    """The scope of a token signed with ``secret``; Unauthorized (TokenExpired) if not."""
    try:
        claims = jwt.decode(
            raw,
            secret,
            algorithms=[ALGORITHM],
            # no leeway on exp: a socket is closed at exp, and HTTP agrees with it
            options={"require": ["exp"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise TokenExpired("this browser token has expired: ask the app for a new one") from None
    except jwt.MissingRequiredClaimError:
        raise Unauthorized("a browser token must say when it expires (exp)") from None
    except jwt.InvalidSignatureError:
        raise Unauthorized(
            f"this browser token's signature is not app key {key_id}'s: sign it with that "
            "key's signing secret"
        ) from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"this browser token is not valid: {exc}") from None
    return scope_of(claims, key_id, max_ttl_s)


def scope_of(claims: Mapping[str, Any], key_id: str, max_ttl_s: float) -> TokenScope:
    """The scope the claims name; Unauthorized naming the claim that is wrong."""
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise Unauthorized("a browser token's exp is a number of seconds since the epoch")
    if exp - time.time() > max_ttl_s + _LEEWAY_S:
        raise Unauthorized(
            f"a browser token may live at most {max_ttl_s:g} s (JOBCAST_TOKEN_MAX_TTL_S); "
            f"this one's exp is {exp - time.time():.0f} s away"
        )
    can = _strings(claims, "can", MAX_TAG_CHARS, len(ACTIONS)) or ["read"]
    unknown = sorted(set(can) - ACTIONS)
    if unknown:
        raise Unauthorized(f"can: {unknown[0]!r} is not one of {sorted(ACTIONS)}")
    try:
        jobs = frozenset(UUID(j) for j in _strings(claims, "jobs", 36, MAX_JOBS))
    except ValueError:
        raise Unauthorized("jobs: each is a job id (a UUID)") from None
    scope = TokenScope(
        key_id=key_id,
        can=frozenset(can),
        expires_at=float(exp),
        jobs=jobs,
        tags=frozenset(_strings(claims, "tags", MAX_TAG_CHARS, MAX_TAGS)),
        subject=_name(claims, "sub"),
        tenant=_name(claims, "tenant"),
    )
    if not scope.jobs and not scope.tags and scope.subject is None and scope.tenant is None:
        raise Unauthorized("a browser token's scope names nothing: give jobs, tags, sub or tenant")
    return scope


def _strings(claims: Mapping[str, Any], name: str, max_chars: int, max_items: int) -> list[str]:
    value = claims.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise Unauthorized(f"{name}: a list of non-empty strings")
    if len(value) > max_items:
        raise Unauthorized(f"{name}: at most {max_items}, got {len(value)}")
    long = next((v for v in value if len(v) > max_chars), None)
    if long is not None:
        raise Unauthorized(f"{name}: each at most {max_chars} characters, got {long[:40]!r}...")
    return value


def _name(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS:
        raise Unauthorized(f"{name}: a string of 1 to {MAX_NAME_CHARS} characters")
    return value


def mint(scope: TokenScope, secret: str) -> str:
    """A token for ``scope``, as an app's backend would make it (and POST /api/tokens does)."""
    return jwt.encode(
        {**scope.claims(), "iat": int(time.time())},
        secret,
        algorithm=ALGORITHM,
        headers={"kid": scope.key_id},
    )
