"""Completion webhooks: who may be called, how a call is signed, and how it is sent.

When a job with a ``callback_url`` ends, jobcast POSTs the final job to it. The
body is signed with the owner's secret: the header ``X-Jobcast-Signature:
t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` lets the receiver check
both origin and freshness. Deliveries are rows in ``webhook_deliveries``, sent
by the workers' sweep and retried with backoff; each try is visible on the job.

Targets are checked twice, at submit and before each call (DNS may change): a
configured list (``JOBCAST_WEBHOOK_HOSTS``) is trusted as it is; without one,
only hosts whose every address is public are called, so a job cannot be used to
reach the service's own network.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
import time
from urllib.parse import urlsplit

from jobcast.errors import InvalidInput

SIGNATURE_HEADER = "X-Jobcast-Signature"
MAX_DELIVERY_ATTEMPTS = 8


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


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_global and not ip.is_multicast


def check_target(url: str, allowed_hosts: frozenset[str]) -> None:
    """InvalidInput when the URL may not be called (checked at submit, without DNS)."""
    host = (urlsplit(url).hostname or "").lower()
    if allowed_hosts:
        if host not in allowed_hosts:
            raise InvalidInput(
                f"callback_url: host {host!r} is not among the allowed webhook hosts",
                details=[{"field": "callback_url", "message": "host not allowed"}],
            )
        return
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if host in ("localhost", "") or (literal is not None and not _public(host)):
        raise InvalidInput(
            f"callback_url: {host!r} is not a public host",
            details=[{"field": "callback_url", "message": "not a public host"}],
        )


async def resolves_public(url: str, allowed_hosts: frozenset[str]) -> bool:
    """Whether the target may be called now: listed, or every address it resolves to public."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if allowed_hosts:
        return host in allowed_hosts
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return bool(infos) and all(_public(str(info[4][0])) for info in infos)


def next_delay_s(attempt: int, base_s: float) -> float:
    """Backoff between tries: base, 2 base, 4 base, ... up to an hour."""
    return float(min(3600.0, base_s * 2 ** (attempt - 1)))
