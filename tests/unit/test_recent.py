"""Recent: the admin feeds of a process share one read of the stats a push period."""

from __future__ import annotations

import asyncio

import pytest

from server.recent import Recent


class Reader:
    """Counts its reads; each takes a moment, so callers can come while one runs."""

    def __init__(self) -> None:
        self.reads = 0
        self.fail = False

    async def __call__(self) -> int:
        self.reads += 1
        await asyncio.sleep(0.05)
        if self.fail:
            raise ConnectionError("the store is away")
        return self.reads


async def test_callers_that_come_together_share_one_read() -> None:
    recent: Recent[int] = Recent()
    read = Reader()
    got = await asyncio.gather(*(recent.get(read, max_age_s=5) for _ in range(20)))
    assert got == [1] * 20 and read.reads == 1


async def test_a_value_is_read_again_once_older_than_the_caller_allows() -> None:
    recent: Recent[int] = Recent()
    read = Reader()
    assert await recent.get(read, max_age_s=5) == 1
    assert await recent.get(read, max_age_s=5) == 1  # young enough
    await asyncio.sleep(0.1)
    assert await recent.get(read, max_age_s=0.05) == 2  # older than this caller allows
    assert read.reads == 2


async def test_a_failed_read_reaches_its_caller_and_the_next_caller_reads_again() -> None:
    recent: Recent[int] = Recent()
    read = Reader()
    assert await recent.get(read, max_age_s=0) == 1
    read.fail = True
    with pytest.raises(ConnectionError):
        await recent.get(read, max_age_s=0)
    read.fail = False
    assert await recent.get(read, max_age_s=0) == 3
    assert await recent.get(read, max_age_s=60) == 3
