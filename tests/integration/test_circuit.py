"""The silent proxy itself, and a process's Redis circuit in front of it (real Redis)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobcast.bus import Publisher
from jobcast.circuit import Circuit, CircuitOpen
from jobcast.endpoints import Endpoints
from jobcast.errors import StorageUnavailable
from jobcast.links import PgLink, RedisLink
from jobcast.model import Event, EventKind
from jobcast.settings import load_settings
from jobcast.sql import NOTIFY_CHANNEL
from jobcast.store import Store
from tests.conftest import DatabaseFactory
from tests.silent import SilentProxy
from tests.support import eventually


async def test_the_proxy_holds_every_byte_while_silent_and_delivers_them_on_resume(
    endpoints: Endpoints,
) -> None:
    async with SilentProxy(endpoints.redis_url, max_silence_s=20) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"PING\r\n")
        assert await asyncio.wait_for(reader.readline(), 2) == b"+PONG\r\n"
        proxy.silence()
        writer.write(b"PING\r\n")
        late_r, late_w = await asyncio.open_connection("127.0.0.1", proxy.port)  # held too
        late_w.write(b"ECHO held\r\n")
        for silent in (reader, late_r):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(silent.readline(), 0.5)
        assert not writer.is_closing() and not late_w.is_closing()  # nothing was closed
        proxy.resume()
        assert await asyncio.wait_for(reader.readline(), 2) == b"+PONG\r\n"
        assert await asyncio.wait_for(late_r.read(64), 2) == b"$4\r\nheld\r\n"
        assert proxy.accepted == 2
        for w in (writer, late_w):
            w.close()


async def test_a_silence_ends_by_itself_after_its_bound(endpoints: Endpoints) -> None:
    async with SilentProxy(endpoints.redis_url, max_silence_s=0.5) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        proxy.silence()
        writer.write(b"PING\r\n")
        assert await asyncio.wait_for(reader.readline(), 3) == b"+PONG\r\n"
        assert not proxy.silent
        writer.close()


async def test_a_silent_redis_costs_one_timeout_then_calls_fail_at_once_until_it_answers(
    endpoints: Endpoints,
) -> None:
    async with SilentProxy(endpoints.redis_url, max_silence_s=20) as proxy:
        settings = load_settings(
            {}, redis_url=proxy.url, redis_timeout_s=0.5, redis_probe_interval_s=0.2
        )
        link = RedisLink.of(settings)
        circuit = Circuit(link, "test")
        redis = link.client(circuit)
        try:
            assert await redis.ping()
            proxy.silence()
            started = time.monotonic()
            with pytest.raises(RedisTimeoutError):
                await redis.ping()
            assert 0.4 < time.monotonic() - started < 2
            assert circuit.is_open
            # every later call, on any connection, fails at once instead of waiting its own
            started = time.monotonic()
            for _ in range(20):
                with pytest.raises(CircuitOpen):
                    await redis.set("k", "v")
            # each waiting its own timeout, the 20 would take 10 s; at once, well under one
            # (0.2 s was missed once on a loaded machine: 0.22 s)
            assert time.monotonic() - started < 1.0
            assert isinstance(CircuitOpen("x"), RedisConnectionError)  # callers' own handling
            assert circuit.trips == 1
            proxy.resume()
            await eventually(lambda: _closed(circuit), timeout_s=5, what="the circuit closed")
            assert await redis.ping()
        finally:
            await circuit.close()
            await redis.aclose()


async def _closed(circuit: Circuit) -> bool:
    return not circuit.is_open


async def test_the_publisher_never_waits_for_a_silent_redis_and_notify_carries_every_event(
    endpoints: Endpoints, new_database: DatabaseFactory
) -> None:
    dsn = await new_database()
    async with SilentProxy(endpoints.redis_url, max_silence_s=20) as proxy:
        settings = load_settings(
            {},
            redis_url=proxy.url,
            redis_prefix=f"sp{uuid.uuid4().hex[:8]}",
            redis_timeout_s=5,
            redis_publish_timeout_s=0.3,
            redis_probe_interval_s=0.2,
        )
        link = RedisLink.of(settings)
        circuit = Circuit(link, "test")
        redis = link.client(circuit)
        heard: list[str] = []
        listener = await asyncpg.connect(dsn)
        await listener.add_listener(NOTIFY_CHANNEL, lambda *args: heard.append(str(args[-1])))
        try:
            async with Store.open(dsn, link=PgLink.of(settings)) as store:
                publisher = Publisher(redis, settings, store)
                owner, job_id = uuid.uuid4(), uuid.uuid4()
                proxy.silence()
                started = time.monotonic()
                for seq in range(1, 31):
                    at = datetime.now(UTC)
                    await publisher.publish(
                        Event(job_id, seq, EventKind.PROGRESS, at, {"progress": 1}, owner)
                    )
                handed_over_s = time.monotonic() - started
                assert handed_over_s < 0.1, handed_over_s  # nobody waited for Redis

                async def announced() -> bool:
                    return len(heard) == 30

                await eventually(announced, timeout_s=5, what="30 NOTIFYs")
                announced_s = time.monotonic() - started
                # one publish timeout for the whole run, not one per event
                assert announced_s < 0.3 + 1.5, announced_s
                assert [int(p.split()[1]) for p in heard] == list(range(1, 31))
                assert circuit.is_open and circuit.trips == 1
                proxy.resume()
                await publisher.close()
        finally:
            await listener.close()
            await circuit.close()
            await redis.aclose()


async def test_a_store_whose_postgres_went_silent_still_closes_within_its_deadline(
    new_database: DatabaseFactory,
) -> None:
    async with SilentProxy(await new_database(), max_silence_s=20) as proxy:
        link = PgLink(connect_timeout_s=1, command_timeout_s=1, keepalive_s=30)
        started = 0.0
        with pytest.raises(StorageUnavailable):
            async with Store.open(proxy.url, link=link) as store:
                await asyncio.gather(store.ping(), store.ping())  # two idle connections
                proxy.silence()
                started = time.monotonic()
                await store.ping()  # waits out its statement deadline, then says so
        assert time.monotonic() - started < 1 + 1 + 1.5  # the statement, then the close
