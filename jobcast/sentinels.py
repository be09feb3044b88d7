"""A Redis Sentinel set named by ``REDIS_URL``: the sentinels, the service, the database.

``redis+sentinel://[:password@]host:port,host:port/service_name?db=0`` asks the
sentinels (26379 when a port is left out) for the primary of ``service_name`` on each
new connection, so after a failover every process's next connection reaches the
promoted replica. The password, when given, is the primary's; the sentinels are
reached without one. The queue (arq), pub/sub and the rate limits all go through the
pool made here, so one URL moves them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio.connection import ConnectionPool
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

SCHEME = "redis+sentinel"
DEFAULT_PORT = 26379


@dataclass(frozen=True)
class SentinelSet:
    """Where the sentinels are and which service they watch."""

    addresses: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SentinelSet | None:
        """The set a ``redis+sentinel://`` URL names; None for any other URL."""
        parts = urlsplit(url)
        if parts.scheme != SCHEME:
            return None
        userinfo, _, hosts = parts.netloc.rpartition("@")
        password = unquote(userinfo.split(":", 1)[-1]) if userinfo else None
        addresses = []
        for item in filter(None, (h.strip() for h in hosts.split(","))):
            host, colon, port = item.rpartition(":")
            addresses.append((host, int(port)) if colon else (item, DEFAULT_PORT))
        service = parts.path.strip("/")
        if not addresses or not service:
            raise ValueError(
                "a redis+sentinel URL names its sentinels and service: "
                "redis+sentinel://host:26379,host:26380/mymaster"
            )
        db = int(parse_qs(parts.query).get("db", ["0"])[0])
        return cls(tuple(addresses), service, db, password or None)

    def pool(self, options: dict[str, Any]) -> ConnectionPool:
        """A pool whose connections go to the service's current primary; ``options`` are
        the connections' (timeouts, keepalive, connection_class, circuit...)."""
        sentinel_options = {
            key: options[key]
            for key in (
                "socket_connect_timeout",
                "socket_timeout",
                "socket_keepalive",
                "socket_keepalive_options",
            )
            if key in options
        }
        # redis-py leaves its Sentinel classes untyped
        manager = Sentinel(list(self.addresses), sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call]
        return SentinelConnectionPool(  # type: ignore[no-untyped-call]
            self.service_name, manager, db=self.db, password=self.password, **options
        )
