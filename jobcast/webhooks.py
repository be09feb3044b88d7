"""Completion webhooks: who may be called, how a call is signed, and how it is sent.

When a job with a ``callback_url`` ends, jobcast POSTs the final job to it. The
body is signed with the owner's secret: the header ``X-Jobcast-Signature:
t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` lets the receiver check
both origin and freshness. Deliveries are rows in ``webhook_deliveries``, sent
by the workers and retried with backoff; each try is visible on the job.

Targets are checked at submit, without DNS, and at each call on the addresses
the call connects to (``jobcast.net``: the host is resolved once, every address
checked, and exactly those dialled, so DNS cannot point the call elsewhere in
between). A configured list (``JOBCAST_WEBHOOK_HOSTS``) names the only hosts
called; without one, only hosts whose every address is public are called, so a
job cannot be used to reach the service's own network. Redirects are not followed.

Each call has explicit limits: ``CONNECT_TIMEOUT_S`` to connect (the lookup
included), ``READ_TIMEOUT_S`` for each read, ``TRY_TIMEOUT_S`` for the whole try,
so that a receiver that answers slowly, or not at all, cannot hold a delivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from jobcast.addresses import AddressRule, TargetRefused
from jobcast.errors import InvalidInput

if TYPE_CHECKING:  # httpx is the worker's: the web process only checks targets
    import httpx

SIGNATURE_HEADER = "X-Jobcast-Signature"
USER_AGENT = "jobcast-webhook"
MAX_DELIVERY_ATTEMPTS = 8
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 10.0
TRY_TIMEOUT_S = 30.0


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header's value for this body."""
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


def verify(secret: str, body: bytes, header: str, *, tolerance_s: int = 300) -> bool:
    """What a receiver runs: the signature matches and is recent."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - ts) > tolerance_s:
        return False
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def target_rule(allowed_hosts: frozenset[str]) -> AddressRule:
    """The listed hosts only, when there is a list; else hosts whose addresses are public."""
    return AddressRule(listed=allowed_hosts, only_listed=bool(allowed_hosts))


def check_target(url: str, allowed_hosts: frozenset[str]) -> None:
    """InvalidInput when the URL may not be called (checked at submit, without DNS)."""
    host = (urlsplit(url).hostname or "").lower()
    if target_rule(allowed_hosts).refusal(host) is None:
        return
    if allowed_hosts:
        raise InvalidInput(
            f"callback_url: host {host!r} is not among the allowed webhook hosts",
            details=[{"field": "callback_url", "message": "host not allowed"}],
        )
    raise InvalidInput(
        f"callback_url: {host!r} is not a public host",
        details=[{"field": "callback_url", "message": "not a public host"}],
    )


def open_client(allowed_hosts: frozenset[str]) -> httpx.AsyncClient:
    """The client deliveries are sent with: it reaches only what ``target_rule`` allows, at
    the addresses it checked, within the timeouts above, following no redirect."""
    import httpx

    from jobcast.net import checked_client

    return checked_client(
        target_rule(allowed_hosts),
        timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        headers={"User-Agent": USER_AGENT},
    )


async def call(
    client: httpx.AsyncClient, url: str, body: bytes, secret: str
) -> tuple[int | None, str | None]:
    """POST the signed body to ``url``: the status code, and why the try failed (None when
    the receiver answered 2xx)."""
    import httpx

    try:
        async with asyncio.timeout(TRY_TIMEOUT_S):
            response = await client.post(
                url,
                content=body,
                headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body)},
            )
    except TargetRefused as exc:
        return None, f"the target is not an allowed host: {exc}"
    except TimeoutError:
        return None, f"no answer within {TRY_TIMEOUT_S:g} s"
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    if not 200 <= response.status_code < 300:
        return response.status_code, f"answered {response.status_code}"
    return response.status_code, None


def next_delay_s(attempt: int, base_s: float) -> float:
    """Backoff between tries: base, 2 base, 4 base, ... up to an hour."""
    return float(min(3600.0, base_s * 2 ** (attempt - 1)))
