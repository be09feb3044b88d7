"""Every link to Redis and Postgres, opened with timeouts and TCP keepalive from the settings.

A connection whose peer vanished without closing it (a NAT or a firewall dropped
the flow) answers nothing, ever: an await on it without a deadline hangs forever.
So each link here has a connect timeout, a read (command) timeout, and TCP
keepalive with ``TCP_USER_TIMEOUT`` (which also ends a connection whose sent data
stays unacknowledged), and every Redis connection of a process goes through that
process's ``Circuit``: one timeout takes Redis for down, and from then on calls fail
at once instead of each waiting out its own timeout.

The web process and the worker open theirs here: the asyncpg pool (``Store.open``),
the LISTEN connection, the Redis client (commands, publishes and the pub/sub
connection), and arq's own pool.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import redis.asyncio as aioredis
from arq.connections import ArqRedis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.asyncio.sentinel import SentinelManagedConnection
from redis.connection import HiredisRespSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.utils import HIREDIS_AVAILABLE

from jobcast.circuit import Circuit
from jobcast.sentinels import SentinelSet

if TYPE_CHECKING:
    from jobcast.settings import Settings

log = logging.getLogger(__name__)

_KEEPALIVE_PROBES = 3


def keepalive_options(keepalive_s: int) -> dict[int, int]:
    """Linux TCP options: probe after ``keepalive_s`` idle, then every third of it, give up
    after three; and drop a connection whose data stays unacknowledged for twice as long."""
    options = {
        "TCP_KEEPIDLE": keepalive_s,
        "TCP_KEEPINTVL": max(1, keepalive_s // _KEEPALIVE_PROBES),
        "TCP_KEEPCNT": _KEEPALIVE_PROBES,
        "TCP_USER_TIMEOUT": 2 * keepalive_s * 1000,  # milliseconds
    }
    # the names exist only where the platform has them (Linux has all four)
    return {
        getattr(socket, name): value for name, value in options.items() if hasattr(socket, name)
    }


def set_keepalive(sock: Any, keepalive_s: int) -> None:
    """Turn TCP keepalive on for an open socket (a transport's; a no-op for Unix sockets)."""
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in keepalive_options(keepalive_s).items():
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
    except OSError as exc:  # a platform without one of them: the timeouts still hold
        log.debug("TCP keepalive not set: %s", exc)


# redis-py's asyncio connections pack every command in Python, argument by argument, even
# where hiredis is installed (redis/redis-py#4176); its sync ones pack in hiredis, the same
# bytes. A worker's publish of a thousand events is a command of thousands of arguments.
_PACKER = HiredisRespSerializer() if HIREDIS_AVAILABLE else None


class _Gated(AbstractConnection):
    """A Redis connection that fails at once while its circuit is open, and opens the
    circuit when a call on it times out or cannot reach Redis. It packs its commands as
    redis-py's sync connections do: in hiredis, where it is installed."""

    def __init__(self, *, circuit: Circuit, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.circuit = circuit

    def pack_command(self, *args: Any) -> list[bytes]:
        if _PACKER is None:
            return super().pack_command(*args)
        packed: list[bytes] = _PACKER.pack(*args)
        return packed

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self.circuit.check()
        try:
            await super().send_packed_command(command, check_health)
        except (RedisTimeoutError, RedisConnectionError) as exc:
            self.circuit.trip(exc)
            raise

    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 (redis-py's own signature)
        *,
        disconnect_on_error: bool = True,
        push_request: bool | None = False,
    ) -> Any:
        try:
            return await super().read_response(
                disable_decoding,
                timeout,
                disconnect_on_error=disconnect_on_error,
                push_request=push_request,
            )
        except (RedisTimeoutError, RedisConnectionError) as exc:
            self.circuit.trip(exc)
            raise


class GatedConnection(_Gated, Connection):
    pass


class GatedSSLConnection(_Gated, SSLConnection):
    pass


class GatedUnixConnection(_Gated, UnixDomainSocketConnection):
    pass


class GatedSentinelConnection(_Gated, SentinelManagedConnection):  # type: ignore[misc]
    """To the primary a Sentinel set names (asked again on each new connection)."""


_GATED: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: GatedConnection,
    SSLConnection: GatedSSLConnection,
    UnixDomainSocketConnection: GatedUnixConnection,
}


def circuit_of(redis: aioredis.Redis) -> Circuit | None:
    """The circuit a client made by ``RedisLink.client`` goes through."""
    circuit = redis.connection_pool.connection_kwargs.get("circuit")
    return circuit if isinstance(circuit, Circuit) else None


@dataclass(frozen=True)
class RedisLink:
    """How this process talks to Redis: the URL, the deadlines, TCP keepalive."""

    url: str
    connect_timeout_s: float
    timeout_s: float
    probe_interval_s: float
    keepalive_s: int

    @classmethod
    def of(cls, settings: Settings) -> RedisLink:
        return cls(
            url=settings.redis_dsn,
            connect_timeout_s=settings.redis_connect_timeout_s,
            timeout_s=settings.redis_timeout_s,
            probe_interval_s=settings.redis_probe_interval_s,
            keepalive_s=settings.tcp_keepalive_s,
        )

    def _pool_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {} if SentinelSet.parse(self.url) else dict(parse_url(self.url))
        options["socket_connect_timeout"] = self.connect_timeout_s
        options["socket_timeout"] = self.timeout_s
        if options.get("connection_class", Connection) is not UnixDomainSocketConnection:
            options["socket_keepalive"] = True
            options["socket_keepalive_options"] = keepalive_options(self.keepalive_s)
        return options

    def _pool(self, options: dict[str, Any]) -> ConnectionPool:
        sentinels = SentinelSet.parse(self.url)
        return sentinels.pool(options) if sentinels else ConnectionPool(**options)

    def gated_pool(self, circuit: Circuit) -> ConnectionPool:
        options = self._pool_options()
        if SentinelSet.parse(self.url):
            options["connection_class"] = GatedSentinelConnection
        else:
            options["connection_class"] = _GATED[options.get("connection_class", Connection)]
        return self._pool({**options, "circuit": circuit})

    def client(self, circuit: Circuit, *, health_check_s: float = 0) -> aioredis.Redis:
        """The process's Redis client, every connection of it through the circuit; with
        ``health_check_s``, a connection idle that long is PINGed before its next use."""
        pool = self.gated_pool(circuit)
        if health_check_s:
            pool.connection_kwargs["health_check_interval"] = health_check_s
        return aioredis.Redis.from_pool(pool)  # closing the client closes its pool

    def probe_client(self) -> aioredis.Redis:
        """A client outside the circuit, for the circuit's own probes."""
        return aioredis.Redis.from_pool(self._pool(self._pool_options()))


def arq_pool(settings: Settings) -> ArqRedis:
    """arq's own Redis pool, for the worker, in place of the one arq would make from its
    ``RedisSettings`` (which has a connect timeout but no read timeout nor keepalive): with
    the link's deadlines and keepalive, behind a circuit of its own."""
    link = RedisLink.of(settings)
    return ArqRedis(
        pool_or_conn=link.gated_pool(Circuit(link, "worker-arq")),
        default_queue_name=settings.queue_name,
    )


@dataclass(frozen=True)
class PgLink:
    """How this process talks to Postgres: the deadlines, TCP keepalive, and how many
    prepared statements each connection keeps (none behind PgBouncer in transaction mode,
    where a connection's next transaction may run on another server connection)."""

    connect_timeout_s: float
    command_timeout_s: float
    keepalive_s: int
    statement_cache_size: int = 100

    @classmethod
    def of(cls, settings: Settings) -> PgLink:
        return cls(
            connect_timeout_s=settings.pg_connect_timeout_s,
            command_timeout_s=settings.pg_command_timeout_s,
            keepalive_s=settings.tcp_keepalive_s,
            statement_cache_size=settings.pg_statement_cache_size,
        )

    def pool_options(self) -> dict[str, Any]:
        """asyncpg.create_pool keyword arguments (call ``keep_alive`` in the pool's init)."""
        return {
            "timeout": self.connect_timeout_s,
            "command_timeout": self.command_timeout_s,
            "statement_cache_size": self.statement_cache_size,
        }

    def keep_alive(self, conn: asyncpg.Connection) -> None:
        # asyncpg offers no keepalive option: set it on the connection's socket
        transport = getattr(conn, "_transport", None)
        set_keepalive(transport.get_extra_info("socket") if transport else None, self.keepalive_s)

    async def connect(
        self, dsn: str, *, command_timeout_s: float | None = None
    ) -> asyncpg.Connection:
        """One connection outside any pool (the LISTEN connection)."""
        conn = await asyncpg.connect(
            dsn,
            timeout=self.connect_timeout_s,
            command_timeout=command_timeout_s or self.command_timeout_s,
            statement_cache_size=self.statement_cache_size,
        )
        self.keep_alive(conn)
        return conn
