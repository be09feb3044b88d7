"""The sweep's statistics: a table that grows with every job is analyzed once it has doubled,
so that plans a connection made while the install was new are made again, against a real
Postgres.

Postgres plans a statement with a table's size as it is then, and keeps a prepared
statement's plan for the connection. Planned on a new install's few pages of `jobs`, the
statements that claim and end a worker's jobs read the table whole, and went on doing so as
it grew, until an ANALYZE (autovacuum's, where it runs) made the plans again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from jobcast.model import JobStatus
from jobcast.sql import QUERIES
from jobcast.store import Store
from jobcast.store.reports import JobEnd, end_columns
from tests.conftest import DatabaseFactory
from tests.integration.test_plans import add_jobs, add_owner

KEPT = 20_000  # finished jobs an install has kept


@pytest.fixture
async def database(new_database: DatabaseFactory) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A new database with the tests' owner: its address, and a connection to it."""
    dsn = await new_database()
    conn = await asyncpg.connect(dsn)
    try:
        await add_owner(conn)
        yield dsn, conn
    finally:
        await conn.close()


async def analyzed(dsn: str) -> list[str]:
    """One pass of the sweep's statistics: the tables it analyzed."""
    async with Store.open(dsn, max_size=1) as store:
        return await store.analyze_grown()


async def jobs_read_whole(conn: asyncpg.Connection) -> int:
    """The rows of jobs this session has read by reading the table whole, since it last
    sent its counts on."""
    read: int = await conn.fetchval(
        "SELECT COALESCE(sum(seq_tup_read), 0)::bigint FROM pg_stat_xact_user_tables"
        " WHERE relname = 'jobs'"
    )
    return read


async def test_a_table_is_analyzed_when_it_has_doubled_and_not_before(
    database: tuple[str, asyncpg.Connection],
) -> None:
    dsn, conn = database
    assert await analyzed(dsn) == []  # a new install: every table a few pages
    await add_jobs(conn, 2_000, "completed")
    assert await analyzed(dsn) == ["jobs"]
    measured = await conn.fetchval("SELECT relpages FROM pg_class WHERE relname = 'jobs'")
    assert measured >= 16
    await add_jobs(conn, 500, "completed")  # grown, not doubled
    assert await analyzed(dsn) == []
    await add_jobs(conn, 2_500, "completed")
    assert await analyzed(dsn) == ["jobs"]
    assert (
        await conn.fetchval("SELECT relpages FROM pg_class WHERE relname = 'jobs'") >= 2 * measured
    )


async def test_plans_made_on_a_new_install_look_jobs_up_once_the_sweep_has_measured_it(
    database: tuple[str, asyncpg.Connection],
) -> None:
    dsn, conn = database
    await add_jobs(conn, 40, "pending")
    queued = [r["id"] for r in await conn.fetch("SELECT id FROM jobs ORDER BY id")]
    # a worker's connection, as it starts: past the five custom plans, the generic one is kept
    for job_id in queued[:10]:
        claim = (await conn.fetch(QUERIES["claims"], [job_id], [], "host:1"))[0]
        assert claim["id"] == job_id
        end = JobEnd(job_id, claim["attempts"], JobStatus.COMPLETED, {})
        ended = await conn.fetch(QUERIES["finishes"], *end_columns([end]))
        assert [r["id"] for r in ended] == [job_id]
    await add_jobs(conn, KEPT, "completed")

    async def reads_whole(claimed: uuid.UUID) -> tuple[int, int]:
        """The rows of jobs the claim of one job, then its end, read whole (rolled back)."""
        transaction = conn.transaction()
        await transaction.start()
        try:
            # the view also counts what earlier transactions read, until the session's
            # counts are sent on: each figure is the difference across its statement
            before = await jobs_read_whole(conn)
            answer = await conn.fetch(QUERIES["claims"], [claimed], [], "host:1")
            assert answer[0]["id"] == claimed
            after_claim = await jobs_read_whole(conn)
            end = JobEnd(claimed, answer[0]["attempts"], JobStatus.COMPLETED, {})
            assert len(await conn.fetch(QUERIES["finishes"], *end_columns([end]))) == 1
            return after_claim - before, await jobs_read_whole(conn) - after_claim
        finally:
            await transaction.rollback()

    # the plans made on 40 jobs read all 20,040 of them, at every claim and every end
    before = await reads_whole(queued[10])
    assert min(before) >= KEPT, before
    assert "jobs" in await analyzed(dsn)
    after = await reads_whole(queued[11])
    assert max(after) < 100, after


async def test_a_table_another_transaction_holds_waits_for_the_next_sweep(
    database: tuple[str, asyncpg.Connection],
) -> None:
    dsn, conn = database
    await add_jobs(conn, 2_000, "completed")
    holder = await asyncpg.connect(dsn)
    try:
        transaction = holder.transaction()
        await transaction.start()
        # what autovacuum holds while it vacuums or analyzes the table
        await holder.execute("LOCK TABLE jobs IN SHARE UPDATE EXCLUSIVE MODE")
        started = time.monotonic()
        assert await analyzed(dsn) == []  # skipped, not waited for
        assert time.monotonic() - started < 5
        await transaction.rollback()
    finally:
        await holder.close()
    assert await analyzed(dsn) == ["jobs"]
