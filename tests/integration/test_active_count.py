"""The per-owner count of active jobs that the submit gate reads, against a real Postgres.

The count is kept by triggers on ``jobs`` in a few rows per owner; these tests walk jobs
through every way in or out of pending/running and compare it with a real ``count(*)``.
"""

from __future__ import annotations

import asyncio
import uuid
from uuid import UUID

import asyncpg

from jobcast.model import JobStatus
from jobcast.registry import load_registry
from jobcast.store import Store, apply_schema
from tests.conftest import DatabaseFactory


async def counts(store: Store, owner: UUID) -> tuple[int, int]:
    """(the kept count, the real number of pending plus running jobs) of an owner."""
    async with store.pool.acquire() as conn:
        counter = await conn.fetchval("SELECT jobcast_active_jobs($1)", owner)
        real = await conn.fetchval(
            "SELECT count(*) FROM jobs WHERE owner_id = $1 AND status IN ('pending', 'running')",
            owner,
        )
    return counter, real


async def new_job(store: Store, owner: UUID, max_active: int | None = None) -> UUID | None:
    created = await store.create_job(
        owner_id=owner, job_type=load_registry().get("noop"), params={}, max_active=max_active
    )
    return created.job.id if created is not None else None


async def test_the_counter_follows_every_way_in_and_out(store: Store) -> None:
    owner = await store.create_owner(uuid.uuid4().hex)
    other = await store.create_owner(uuid.uuid4().hex)
    ids = [await new_job(store, owner) for _ in range(6)]
    await new_job(store, other)
    assert await counts(store, owner) == (6, 6)

    claimed = await store.claim(ids[0])  # pending -> running: still active
    assert claimed is not None
    assert await counts(store, owner) == (6, 6)
    await store.finish(ids[0], 1, status=JobStatus.COMPLETED, result={})
    assert await counts(store, owner) == (5, 5)

    await store.claim(ids[1])
    await store.retry_later(ids[1], 1, delay_s=0, message="again", error={"message": "x"})
    assert await counts(store, owner) == (5, 5)  # running -> pending: still active
    await store.claim(ids[1])
    await store.finish(ids[1], 2, status=JobStatus.FAILED, error={"message": "x"})
    assert await counts(store, owner) == (4, 4)

    await store.claim(ids[2])
    await store.hand_back(ids[2], 1, message="stopping")
    assert await counts(store, owner) == (4, 4)

    assert await store.cancel(ids[3], owner) is not None
    assert await counts(store, owner) == (3, 3)

    async with store.pool.acquire() as conn:
        await conn.execute("DELETE FROM jobs WHERE id = $1", ids[4])  # an active job deleted
        await conn.execute("DELETE FROM jobs WHERE id = $1", ids[0])  # a finished one
    assert await counts(store, owner) == (2, 2)
    assert await store.delete_expired(0, 0, 0) == 2  # retention: finished jobs only
    assert await counts(store, owner) == (2, 2)
    assert await counts(store, other) == (1, 1)


async def test_changes_rewrite_the_same_row_rather_than_add_rows(
    new_database: DatabaseFactory,
) -> None:
    async with Store.open(await new_database(), max_size=1) as store:  # one connection
        owner = await store.create_owner(uuid.uuid4().hex)
        for _ in range(30):
            job_id = await new_job(store, owner, max_active=5)
            assert job_id is not None
            await store.claim(job_id)
            await store.finish(job_id, 1, status=JobStatus.COMPLETED, result={})
        assert await counts(store, owner) == (0, 0)
        rows = await store.pool.fetchval(
            "SELECT count(*) FROM owner_job_counts WHERE owner_id = $1", owner
        )
    assert rows == 1  # one shard per connection, updated in place 60 times


async def test_the_cap_counts_with_the_counter(store: Store) -> None:
    owner = await store.create_owner(uuid.uuid4().hex)
    first = await new_job(store, owner, max_active=2)
    assert await new_job(store, owner, max_active=2) is not None
    assert await new_job(store, owner, max_active=2) is None  # at the cap: nothing stored
    assert await counts(store, owner) == (2, 2)
    assert first is not None
    await store.claim(first)
    await store.finish(first, 1, status=JobStatus.COMPLETED, result={})
    assert await new_job(store, owner, max_active=2) is not None  # room again
    assert await counts(store, owner) == (2, 2)


async def test_an_older_database_gets_its_counts_when_the_schema_is_applied(
    new_database: DatabaseFactory,
) -> None:
    dsn = await new_database()
    async with Store.open(dsn) as store:
        owner = await store.create_owner(uuid.uuid4().hex)
        for _ in range(3):
            await new_job(store, owner)
        done = await new_job(store, owner)
        assert done is not None
        await store.claim(done)
        await store.finish(done, 1, status=JobStatus.COMPLETED, result={})
    conn = await asyncpg.connect(dsn)
    try:  # as a database made before the counts existed
        await conn.execute("DROP TABLE owner_job_counts")
        await apply_schema(dsn)
    finally:
        await conn.close()
    async with Store.open(dsn) as store:
        assert await counts(store, owner) == (3, 3)
        await apply_schema(dsn)  # and applying it again leaves the count alone
        assert await counts(store, owner) == (3, 3)


async def test_parallel_submits_stop_exactly_at_a_cap_far_above_the_connections(
    new_database: DatabaseFactory,
) -> None:
    """Far below its cap an owner's submits run side by side (a shared lock); near it they
    go one at a time. A burst that crosses from one to the other stops exactly at the cap."""
    async with Store.open(await new_database(), max_size=40) as store:
        connections = int(await store.pool.fetchval("SHOW max_connections"))
        cap = 2 * connections + 60
        owner = await store.create_owner(uuid.uuid4().hex)
        made = await asyncio.gather(
            *(new_job(store, owner, max_active=cap) for _ in range(cap + 40))
        )
        assert sum(1 for m in made if m is not None) == cap
        assert await counts(store, owner) == (cap, cap)
