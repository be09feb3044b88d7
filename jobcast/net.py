"""An HTTP client for URLs that users give: it connects only to addresses it has checked.

Checking a host's addresses and then letting the HTTP client look the name up
again leaves a gap (DNS rebinding): the second answer may be a private address.
The client made here has no second lookup. Each time it opens a connection, it
resolves the host once through an ``AddressRule``, refuses the host if any
address is not allowed, and dials exactly the addresses it checked. Everything
else still speaks of the name: the URL, the ``Host`` header, TLS's SNI and the
certificate check. Redirects, when a caller follows them, open connections the
same way, so each hop is checked too.

Used by webhook delivery (``workers``) and ``site_audit``; both set explicit
connect and read timeouts, and the connect timeout covers the lookup.
"""

from __future__ import annotations

import asyncio
import ssl
import typing
from typing import Any

import httpcore
import httpx

from jobcast.addresses import AddressRule


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the lookup taken over: resolve, check, then dial the
    checked addresses in turn (the first that answers is used)."""

    def __init__(self, rule: AddressRule) -> None:
        self._rule = rule
        self._dial = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._rule.resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"{host} was not resolved within {timeout:g} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} could not be resolved ({exc})") from None
        failure: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                return await self._dial.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self._dial.sleep(seconds)


class _CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool that dials through ``_CheckedBackend``.

    httpx takes no network backend, so the pool it builds is replaced by the same pool with
    one: the transport's request and response handling stay httpx's own.
    """

    def __init__(
        self, rule: AddressRule, limits: httpx.Limits, verify: ssl.SSLContext | bool
    ) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_CheckedBackend(rule),
        )


def checked_client(
    rule: AddressRule,
    *,
    timeout: httpx.Timeout,
    limits: httpx.Limits | None = None,
    verify: ssl.SSLContext | bool = True,
    **options: Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that reaches only what ``rule`` allows, at the addresses it
    checked. It follows no redirect unless told to (``follow_redirects=True``: each hop is
    checked in turn) and ignores proxy settings from the environment (a proxy would do the
    dialling instead). ``verify`` is httpx's: the certificates trusted for TLS, checked
    against the URL's host name. ``TargetRefused`` comes out of a request to a refused host;
    other failures are httpx's own errors."""
    options.setdefault("follow_redirects", False)
    return httpx.AsyncClient(
        transport=_CheckedTransport(rule, limits or httpx.Limits(), verify),
        timeout=timeout,
        trust_env=False,
        **options,
    )
