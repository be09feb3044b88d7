"""A start releases its fairness group's next parked job in its place, against a real Postgres.

A job submitted while its group (its tenant, else its owner) has the window's worth of
jobs on the queue is parked; each start of one of the group's queued jobs releases one
parked job in its place (highest priority, then oldest), and the claim answers it for the
worker to queue. These tests call the store as a worker does, with no Redis.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from uuid import UUID

import pytest
import redis.asyncio as aioredis

from jobcast.concurrency import JobKey
from jobcast.model import Claim, JobStatus
from jobcast.queue import Queue
from jobcast.registry import load_registry
from jobcast.settings import load_settings
from jobcast.store import Store, apply_schema
from jobcast.store.attempts import Held
from tests.conftest import DatabaseFactory
from workers.released import queue_in_place

WINDOW = 2


async def submit(
    store: Store, owner: UUID, priority: int = 0, keys: list[JobKey] | None = None
) -> UUID:
    created = await store.create_job(
        owner_id=owner,
        job_type=load_registry().get("noop"),
        params={},
        priority=priority,
        keys=keys,
        fair_window=WINDOW,
    )
    assert created is not None
    return created.job.id


async def parked(store: Store, job_id: UUID) -> str | None:
    on: str | None = await store.pool.fetchval("SELECT parked_on FROM jobs WHERE id = $1", job_id)
    return on


async def test_each_start_releases_the_next_parked_job_highest_priority_then_oldest(
    store: Store,
) -> None:
    owner = await store.create_owner(uuid.uuid4().hex)
    group = f"fair:owner:{owner}"
    queued = [await submit(store, owner) for _ in range(WINDOW)]
    older, urgent, newer = (
        await submit(store, owner),
        await submit(store, owner, priority=5),
        await submit(store, owner),
    )
    assert [await parked(store, j) for j in queued] == [None, None]
    assert [await parked(store, j) for j in (older, urgent, newer)] == [group] * 3

    first = await store.claim(queued[0])
    assert isinstance(first, Claim)
    assert first.released is not None
    assert (first.released.job_id, first.released.priority) == (urgent, 5)
    assert (first.released.group, first.released.delay_s) == (group, 0)
    row = await store.pool.fetchrow(
        "SELECT parked_on, waiting_reason, released_by, status FROM jobs WHERE id = $1", urgent
    )
    assert dict(row) == {
        "parked_on": None,
        "waiting_reason": None,
        "released_by": None,
        "status": "pending",
    }

    second = await store.claim(queued[1])
    assert isinstance(second, Claim) and second.released is not None
    assert second.released.job_id == older
    third = await store.claim(urgent)
    assert isinstance(third, Claim) and third.released is not None
    assert third.released.job_id == newer
    # nothing parked is left: the next start releases nothing
    last = await store.claim(older)
    assert isinstance(last, Claim) and last.released is None


async def test_a_job_a_key_holds_back_still_gives_its_place_to_the_next(store: Store) -> None:
    owner = await store.create_owner(uuid.uuid4().hex)
    key = [JobKey("concurrency", f"k:{uuid.uuid4().hex[:8]}", 1)]
    holder, blocked = await submit(store, owner, keys=key), await submit(store, owner, keys=key)
    waiting = await submit(store, owner)
    assert isinstance(await store.claim(holder), Claim)  # released `waiting`, in its place
    nothing_left = await submit(store, owner)
    held = await store.claim(blocked)
    assert isinstance(held, Held)
    assert held.released is not None and held.released.job_id == nothing_left
    assert await parked(store, blocked) == key[0].key
    assert await parked(store, waiting) is None


async def test_starts_at_once_release_different_jobs_and_none_twice(store: Store) -> None:
    owner = await store.create_owner(uuid.uuid4().hex)
    queued = [await submit(store, owner) for _ in range(WINDOW)]
    waiting = [await submit(store, owner) for _ in range(4)]
    claims = await asyncio.gather(*(store.claim(j) for j in queued))
    released = [c.released.job_id for c in claims if isinstance(c, Claim) and c.released]
    assert len(released) == WINDOW and len(set(released)) == WINDOW
    assert set(released) <= set(waiting)
    still = await store.pool.fetchval(
        "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[]) AND parked_on IS NOT NULL", waiting
    )
    assert still == len(waiting) - WINDOW


async def test_the_gate_of_earlier_versions_marks_what_it_released_for_their_worker(
    store: Store,
) -> None:
    owner = await store.create_owner(uuid.uuid4().hex)
    queued = [await submit(store, owner) for _ in range(WINDOW)]
    waiting = await submit(store, owner)
    gate = await store.pool.fetchrow(
        "SELECT * FROM jobcast_start_gate($1, '{}'::text[], '{}'::integer[])", queued[0]
    )
    assert gate["job_type"] == "noop" and gate["held_key"] is None and gate["released"] == 1
    taken = await store.take_released(queued[0])
    assert [r["id"] for r in taken] == [waiting]
    assert await store.take_released(queued[0]) == []  # taken once


async def test_a_finished_job_releases_nothing_of_its_group(store: Store) -> None:
    owner = await store.create_owner(uuid.uuid4().hex)
    queued = [await submit(store, owner) for _ in range(WINDOW)]
    waiting = [await submit(store, owner) for _ in range(2)]
    claim = await store.claim(queued[0])
    assert isinstance(claim, Claim) and claim.released is not None
    await store.finish(queued[0], 1, status=JobStatus.COMPLETED, result={})
    # its start gave its place away once; its end gives nothing more
    assert await store.take_released(queued[0]) == []
    assert await parked(store, waiting[1]) == f"fair:owner:{owner}"


async def test_a_share_cut_short_by_a_cancel_is_filled_by_the_sweeps_release(store: Store) -> None:
    owner = await store.create_owner(uuid.uuid4().hex)
    group = f"fair:owner:{owner}"
    queued = [await submit(store, owner) for _ in range(WINDOW)]
    waiting = [await submit(store, owner) for _ in range(3)]
    assert await store.cancel(queued[0], owner)  # leaves the queue, releasing nothing
    assert await parked(store, waiting[0]) == group
    released = await store.release_key(group)  # what the sweep's pass over parked keys runs
    assert [r["id"] for r in released] == [waiting[0]]  # the share is full again: one
    assert await store.release_key(group) == []


async def test_a_parked_job_that_leaves_pending_is_parked_no_more(store: Store) -> None:
    owner = await store.create_owner(uuid.uuid4().hex)
    queued = [await submit(store, owner) for _ in range(WINDOW)]
    cancelled, paused, next_in_line = [await submit(store, owner) for _ in range(3)]
    assert await store.cancel(cancelled, owner)
    assert await store.pause(paused, owner)
    assert await parked(store, cancelled) is None and await parked(store, paused) is None
    # so the release passes them by without looking at their status
    claim = await store.claim(queued[0])
    assert isinstance(claim, Claim) and claim.released is not None
    assert claim.released.job_id == next_in_line


async def test_the_schema_unparks_what_an_earlier_version_left_parked(
    new_database: DatabaseFactory,
) -> None:
    dsn = await new_database()
    async with Store.open(dsn) as store:
        owner = await store.create_owner(uuid.uuid4().hex)
        [await submit(store, owner) for _ in range(WINDOW)]
        left = await submit(store, owner)
        async with store.pool.acquire() as conn:  # as an earlier version cancelled it
            await conn.execute("ALTER TABLE jobs DISABLE TRIGGER jobs_unpark")
            await conn.execute("UPDATE jobs SET status = 'cancelled' WHERE id = $1", left)
            await conn.execute("ALTER TABLE jobs ENABLE TRIGGER jobs_unpark")
        assert await parked(store, left) is not None
    await apply_schema(dsn)
    async with Store.open(dsn) as store:
        assert await parked(store, left) is None


async def test_a_release_redis_refuses_is_left_for_the_outbox_to_queue(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    owner = await store.create_owner(uuid.uuid4().hex)
    queued = [await submit(store, owner) for _ in range(WINDOW)]
    waiting = await submit(store, owner)
    claim = await store.claim(queued[0])
    assert isinstance(claim, Claim) and claim.released is not None
    nowhere = "redis://127.0.0.1:9/0"  # nothing listens there: Redis refuses
    redis = aioredis.Redis.from_url(nowhere, socket_connect_timeout=1)
    try:
        settings = load_settings(environ={}, redis_url=nowhere, redis_prefix="fair-release")
        with caplog.at_level(logging.WARNING, logger="workers.released"):
            await queue_in_place(Queue(redis, settings), queued[0], claim.released)  # no raise
    finally:
        await redis.aclose()
    assert f"{waiting}, released in its place, not queued yet" in caplog.text
    # the outbox's look for pending jobs missing from the queue finds it
    assert waiting in {r["id"] for r in await store.pending(older_than_s=0)}


async def test_a_claim_says_whether_the_jobs_end_may_release_parked_jobs(store: Store) -> None:
    """Only then does the worker look for jobs the end released: a job of no concurrency
    key, whose type has no cap, no operator's limit and no job parked on it, releases none."""

    async def may_release(keys: list[JobKey] | None = None, **caps: int) -> bool:
        owner = await store.create_owner(uuid.uuid4().hex)  # a group of its own: not parked
        claim = await store.claim(await submit(store, owner, keys=keys), caps)
        assert isinstance(claim, Claim)
        return claim.may_release

    assert not await may_release()
    assert await may_release([JobKey("concurrency", f"k:{uuid.uuid4().hex[:8]}", 2)])
    assert not await may_release([JobKey("throttle", f"t:{uuid.uuid4().hex[:8]}", 5, 60.0)])
    assert await may_release(noop=100)  # the worker's cap on its type
    await store.pool.execute(
        "INSERT INTO key_limits (key, kind, lim, set_by)"
        " VALUES ('type:noop', 'concurrency', 100, 'test')"
    )
    assert await may_release()  # an operator's limit on its type
    await store.pool.execute("DELETE FROM key_limits")
    assert not await may_release()
    owner = await store.create_owner(uuid.uuid4().hex)
    held = await submit(store, owner)
    await store.pool.execute("UPDATE jobs SET parked_on = 'type:noop' WHERE id = $1", held)
    assert await may_release()  # a job parked on its type, from a limit since taken back


async def test_a_job_parked_on_a_type_limit_set_while_another_ran_is_left_to_the_outbox(
    store: Store,
) -> None:
    """The one case the claim's may_release does not foresee: the running job's type had no
    cap, limit or parked job as it started. Its end still releases the job parked since (the
    trigger), and the outbox's look for pending jobs finds that one, to queue it."""
    owner = await store.create_owner(uuid.uuid4().hex)
    first = await store.claim(await submit(store, owner))
    assert isinstance(first, Claim) and not first.may_release
    await store.pool.execute(
        "INSERT INTO key_limits (key, kind, lim, set_by)"
        " VALUES ('type:noop', 'concurrency', 1, 'test')"
    )
    second = await submit(store, await store.create_owner(uuid.uuid4().hex))
    held = await store.claim(second)
    assert isinstance(held, Held) and held.key == "type:noop"

    ended = await store.finish(first.job.id, first.attempt, status=JobStatus.COMPLETED)

    assert ended is not None
    assert await parked(store, second) is None
    assert second in {r["id"] for r in await store.pending(older_than_s=0)}
