"""REDIS_URL naming a Sentinel set."""

from __future__ import annotations

import pytest
from redis.asyncio.sentinel import SentinelConnectionPool

from jobcast.circuit import Circuit
from jobcast.links import GatedSentinelConnection, RedisLink
from jobcast.sentinels import SentinelSet


def test_a_sentinel_url_names_the_sentinels_service_db_and_password() -> None:
    parsed = SentinelSet.parse("redis+sentinel://:s%40cret@10.0.0.1:26380,sentinel-b/jobs?db=2")
    assert parsed == SentinelSet(
        addresses=(("10.0.0.1", 26380), ("sentinel-b", 26379)),
        service_name="jobs",
        db=2,
        password="s@cret",
    )


def test_other_urls_are_not_sentinel_sets() -> None:
    assert SentinelSet.parse("redis://127.0.0.1:6379/0") is None


@pytest.mark.parametrize("url", ["redis+sentinel://h:1/", "redis+sentinel:///jobs"])
def test_a_sentinel_url_without_service_or_sentinels_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="names its sentinels and service"):
        SentinelSet.parse(url)


def test_the_gated_pool_asks_the_sentinels_for_the_primary() -> None:
    link = RedisLink(
        url="redis+sentinel://127.0.0.1:26379/jobs?db=1",
        connect_timeout_s=1,
        timeout_s=2,
        probe_interval_s=1,
        keepalive_s=30,
    )
    pool = link.gated_pool(Circuit(link, "test"))
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "jobs"
    assert pool.connection_class is GatedSentinelConnection
    assert pool.connection_kwargs["db"] == 1
    assert pool.connection_kwargs["socket_timeout"] == 2
