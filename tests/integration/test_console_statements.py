"""The operator console's numbers, against a real Postgres: the same numbers as a plain
reading of their definitions, from a statement whose cost is a window's jobs rather than
every job retention keeps.

A console asks for its stats after each second's status changes and for its charts every
five seconds; with a month of jobs kept, each statement that read the jobs table whole cost
Postgres a fifth of a second or more a time (docs/performance.md).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from bench.console import PLAIN_DEPTH, PLAIN_SERIES_JOBS, PLAIN_TYPE_STATS
from jobcast.sql import QUERIES
from tests.conftest import DatabaseFactory
from tests.integration.test_plans import scans_of_jobs

OWNER = uuid.UUID(int=7)
TYPES = ("noop", "demo", "audit")

# (status, submitted, started, finished), in seconds before the start of the ten minutes now
# is in (None: not yet), so that some fall on the ends of both kinds of bucket; a bucket's
# end is in it: a job counts as waiting there up to its start, inclusive
SHAPES: list[tuple[str, float, float | None, float | None]] = [
    ("pending", 50, None, None),
    ("pending", 7000, None, None),  # waiting since before the window
    ("running", 1800, 1790, None),
    ("running", 90_000, 89_000, None),  # started before the day
    ("completed", 3000, 2990, 2900),
    ("completed", 600, 480, 420),  # submitted and started on bucket ends
    ("completed", 80_000, 70_000, 60_000),  # in the day, not in the hour
    ("completed", 400_000, 399_000, 398_000),  # before both windows
    ("failed", 1200, 1100, 1000),
    ("failed", 50_000, 49_000, 48_000),
    ("cancelled", 2000, None, 1500),  # never started: waited until cancelled
    ("cancelled", 900, 800, 700),
    ("waiting", 2500, 2400, None),
    ("paused", 1000, None, None),
    ("draft", 300, None, None),  # not submitted to run: never waiting
]


async def add_job(
    conn: asyncpg.Connection,
    job_type: str,
    status: str,
    submitted: float,
    started: float | None,
    finished: float | None,
) -> None:
    await conn.execute(
        "INSERT INTO jobs (id, owner_id, type, status, attempts, created_at, started_at,"
        " finished_at)"
        " SELECT gen_random_uuid(), $1, $2, $3, 1, at - $4 * interval '1 second',"
        "        at - $5 * interval '1 second', at - $6 * interval '1 second'"
        # from the start of the ten minutes now is in: on the ends of both kinds of bucket
        " FROM date_bin(interval '600 seconds', now(), timestamptz 'epoch') AS at",
        OWNER,
        job_type,
        status,
        submitted,
        started,
        finished,
    )


@pytest.fixture
async def kept(new_database: DatabaseFactory) -> AsyncIterator[asyncpg.Connection]:
    """Jobs of every shape and three types, at times aligned to the buckets' ends, and
    5,000 completed jobs of a month ago, as retention keeps them; analyzed."""
    conn = await asyncpg.connect(await new_database())
    try:
        await conn.execute(
            "INSERT INTO owners (id, token_hash, webhook_secret) VALUES ($1, '\\x00', 'x')",
            OWNER,
        )
        for i, job_type in enumerate(TYPES):
            for status, submitted, started, finished in SHAPES:
                await add_job(conn, job_type, status, submitted + i, started, finished)
        await conn.execute(
            "INSERT INTO jobs (id, owner_id, type, status, attempts, created_at, started_at,"
            " finished_at)"
            " SELECT gen_random_uuid(), $1, 'noop', 'completed', 1,"
            "        now() - interval '30 days' - g * interval '1 second',"
            "        now() - interval '30 days' - g * interval '1 second',"
            "        now() - interval '29 days' - g * interval '1 second'"
            " FROM generate_series(1, 10000) g",
            OWNER,
        )
        await conn.execute("ANALYZE jobs")
        yield conn
    finally:
        await conn.close()


def rows(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(r) for r in records]


async def test_the_type_windows_are_the_two_windows_read_one_at_a_time(
    kept: asyncpg.Connection,
) -> None:
    async with kept.transaction():  # one now() for every statement
        both = rows(await kept.fetch(QUERIES["type_windows"], 3600, 86_400))
        hour = rows(await kept.fetch(PLAIN_TYPE_STATS, 3600))
        day = rows(await kept.fetch(PLAIN_TYPE_STATS, 86_400))
    for which, window in (("short", hour), ("long", day)):
        shown = [
            {
                "type": r["type"],
                **{k: r[f"{which}_{k}"] for k in ("finished", "failed", "p50_s", "p95_s")},
            }
            for r in both
            if r[f"{which}_finished"]
        ]
        assert shown == window, which
    assert {r["type"] for r in both} == set(TYPES)
    assert [r["long_failed"] for r in both] == [2, 2, 2]


async def test_the_queue_depth_is_each_bucket_counted_on_its_own(
    kept: asyncpg.Connection,
) -> None:
    for window_s, bucket_s in ((3600, 60), (86_400, 600)):
        async with kept.transaction():
            summed = rows(await kept.fetch(QUERIES["series_depth"], window_s, bucket_s))
            counted = rows(await kept.fetch(PLAIN_DEPTH, window_s, bucket_s))
        assert summed == counted, window_s
        assert len(counted) > 10 and max(r["depth"] for r in counted) >= 6


async def test_the_finished_series_is_the_window_read_whole(kept: asyncpg.Connection) -> None:
    for window_s, bucket_s in ((3600, 60), (86_400, 600)):
        async with kept.transaction():
            through_index = rows(await kept.fetch(QUERIES["series_jobs"], window_s, bucket_s))
            whole = rows(await kept.fetch(PLAIN_SERIES_JOBS, window_s, bucket_s))
        assert through_index == whole and through_index, window_s


async def test_the_live_counts_are_the_counts_of_the_jobs_not_finished(
    kept: asyncpg.Connection,
) -> None:
    async with kept.transaction():
        live = rows(await kept.fetch(QUERIES["live_counts"]))
        every = rows(await kept.fetch(QUERIES["counts"]))
    unfinished = {"pending", "running", "waiting", "paused", "draft"}
    key = lambda r: (r["type"], r["status"])  # noqa: E731
    assert sorted(live, key=key) == sorted((r for r in every if r["status"] in unfinished), key=key)
    assert {r["status"] for r in live} == unfinished and len(live) == 5 * len(TYPES)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("type_windows", (3600, 86_400)),
        ("series_jobs", (86_400, 600)),
        ("series_depth", (86_400, 600)),
        ("live_counts", ()),
    ],
)
async def test_the_console_reads_a_window_or_the_live_jobs_not_the_table(
    kept: asyncpg.Connection, name: str, args: tuple[int, int]
) -> None:
    explain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + QUERIES[name]
    plan = json.loads(await kept.fetchval(explain, *args))[0]["Plan"]
    pages = plan["Shared Hit Blocks"] + plan.get("Shared Read Blocks", 0)
    table_pages = await kept.fetchval("SELECT relpages FROM pg_class WHERE relname = 'jobs'")
    assert "seq" not in scans_of_jobs(plan), scans_of_jobs(plan)
    # the table whole is well over a hundred pages; the day's jobs or the live ones, a few
    assert pages < 40 < 3 * 40 < table_pages, (pages, table_pages)
