"""Browser tokens: what a token's claims let through, without a server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from jobcast.errors import TokenExpired, Unauthorized
from jobcast.tokens import TokenScope, key_id_of, looks_like_token, mint, scope_of, verify

SECRET = "jcs_" + "s" * 43
KID = "ak_0123456789abcdef"


def token(secret: str = SECRET, headers: dict[str, Any] | None = None, **claims: Any) -> str:
    claims.setdefault("exp", int(time.time() + 60))
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers or {"kid": KID})


def test_a_minted_token_verifies_to_the_scope_it_was_minted_for() -> None:
    job = uuid.uuid4()
    scope = TokenScope(
        key_id=KID,
        can=frozenset({"read", "cancel"}),
        expires_at=time.time() + 60,
        jobs=frozenset({job}),
        tags=frozenset({"org:42"}),
        subject="u1",
        tenant="t1",
    )
    raw = mint(scope, SECRET)
    assert looks_like_token(raw) and key_id_of(raw) == KID
    back = verify(raw, KID, SECRET, max_ttl_s=3600)
    assert back == TokenScope(**{**scope.__dict__, "expires_at": float(int(scope.expires_at))})


def test_a_job_is_in_scope_only_when_it_matches_every_kind_named() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    scope = scope_of({"exp": time.time() + 60, "tenant": "acme", "tags": ["x", "y"]}, KID, 3600)
    assert scope.admits(a, "anyone", "acme", ["y", "z"])
    assert not scope.admits(a, "anyone", "acme", ["z"])
    assert not scope.admits(a, "anyone", "other", ["x"])
    by_id = scope_of({"exp": time.time() + 60, "jobs": [str(a)]}, KID, 3600)
    assert (
        by_id.by_ids_only
        and by_id.admits(a, None, None, [])
        and not by_id.admits(b, None, None, [])
    )
    assert by_id.can == frozenset({"read"})  # the default action


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: token(secret="jcs_" + "o" * 43, sub="u"), "signature"),
        (lambda: token(sub="u", exp=int(time.time() + 10 * 3600)), "at most"),
        (lambda: token(can=["read"]), "names nothing"),
        (lambda: token(sub="u", can=["write"]), "write"),
        (lambda: token(sub="u", tags=[f"t{i}" for i in range(11)]), "at most 10"),
        (lambda: token(sub="u", tags=["t" * 101]), "at most 100"),
        (lambda: token(sub="u" * 201), "sub"),
        (lambda: token(jobs=["not-a-uuid"]), "UUID"),
        (lambda: jwt.encode({"sub": "u"}, SECRET, algorithm="HS256", headers={"kid": KID}), "exp"),
    ],
)
def test_bad_tokens_are_refused_naming_why(make: Callable[[], str], says: str) -> None:
    # minted when the test runs, not at collection: the suite may take longer than a token lives
    with pytest.raises(Unauthorized) as refused:
        verify(make(), KID, SECRET, max_ttl_s=3600)
    assert says in str(refused.value)
    assert not isinstance(refused.value, TokenExpired)


def test_an_expired_token_is_its_own_refusal() -> None:
    with pytest.raises(TokenExpired):
        verify(token(sub="u", exp=int(time.time() - 1)), KID, SECRET, max_ttl_s=3600)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (jwt.encode({"sub": "u", "exp": time.time() + 60}, None, algorithm="none"), "HS256"),
        (jwt.encode({"sub": "u"}, SECRET * 2, algorithm="HS384", headers={"kid": KID}), "HS256"),
        (token(headers={"typ": "JWT"}, sub="u"), "kid"),
        ("eyJ" + "a" * 9000 + ".b.c", "at most"),
    ],
    ids=["alg-none", "hs384", "no-kid", "too-long"],  # the same on every xdist worker
)
def test_only_hs256_tokens_naming_their_key_are_read(raw: str, says: str) -> None:
    with pytest.raises(Unauthorized) as refused:
        key_id_of(raw)
    assert says in str(refused.value)
