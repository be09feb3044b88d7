"""Which hosts jobcast's own requests may reach: the rule, and the one lookup it judges.

A URL given by a user (a webhook target, a site to audit) is fetched from inside
the service's network, so it must not lead there: by default only hosts whose
every address is public are reached. An operator lists the exceptions
(``JOBCAST_WEBHOOK_HOSTS``, ``JOBCAST_AUDIT_HOSTS``). ``AddressRule.resolve``
looks a host up once and judges every address it got; ``jobcast.net`` then dials
exactly those, so DNS cannot answer differently in between.

This module imports nothing heavy: the web process uses it to check input at submit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

from jobcast.errors import PermanentError


class TargetRefused(PermanentError):
    """The host may not be reached (not public, or not listed): use another URL, or have
    the operator list the host."""


def is_public_address(address: str) -> bool:
    """Whether an IP address is reachable on the internet: no loopback, private or link-local."""
    ip = ipaddress.ip_address(address)
    return ip.is_global and not ip.is_multicast


def host_list(raw: str) -> frozenset[str]:
    """Hosts from a comma-separated setting, lower-cased, IPv6 brackets removed."""
    return frozenset(h.strip().strip("[]").lower() for h in raw.split(",") if h.strip())


@dataclass(frozen=True, slots=True)
class AddressRule:
    """Listed hosts may be reached whatever their addresses; any other host only when every
    address it resolves to is public, or never when ``only_listed``."""

    listed: frozenset[str] = frozenset()
    only_listed: bool = False

    def refusal(self, host: str) -> str | None:
        """Why ``host`` may not be reached, judged without DNS (at submit); None when it may
        be, or when only its addresses can tell (a name that is not listed)."""
        host = host.strip("[]").lower()
        if host in self.listed:
            return None
        if self.only_listed:
            return f"{host or 'an empty host'} is not among the allowed hosts"
        if not host or host == "localhost" or host.endswith(".localhost"):
            return f"{host or 'an empty host'} is not a public address"
        try:
            public = is_public_address(host)
        except ValueError:
            return None  # a name: its addresses are checked when it is reached
        return None if public else f"{host} is not a public address"

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to dial for ``host``, looked up once: TargetRefused when the rule
        refuses the host or any of its addresses; OSError when it cannot be resolved."""
        host = host.strip("[]").lower()
        refusal = self.refusal(host)
        if refusal is not None:
            raise TargetRefused(refusal)
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
        if host not in self.listed:
            refused = sorted(a for a in addresses if not is_public_address(a))
            if refused:
                raise TargetRefused(f"{host} is not a public address (it resolves to {refused[0]})")
        return addresses
