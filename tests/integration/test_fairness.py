"""Fairness under a backlog: tenants take turns on the queue, priority wins between bands."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from jobcast.endpoints import Endpoints
from jobcast.queue import Queue, Queued, score_for
from jobcast.settings import Settings, load_settings
from tests.conftest import DatabaseFactory
from tests.integration.test_reliability import job_of, wait_status
from tests.support import launch

WORKERS, PER_WORKER = 2, 2


@pytest.fixture
async def turns(endpoints: Endpoints) -> AsyncIterator[tuple[Queue, aioredis.Redis, Settings]]:
    settings = load_settings(
        environ={}, redis_url=endpoints.redis_url, redis_prefix=f"turns-{uuid.uuid4().hex[:12]}"
    )
    client = aioredis.Redis.from_url(endpoints.redis_url)
    try:
        yield Queue(client, settings), client, settings
    finally:
        keys = [k async for k in client.scan_iter(match=f"{settings.redis_prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def backlog_of(client: httpx.AsyncClient, count: int, *, sleep_s: float) -> list[str]:
    """Submit a backlog of noop jobs in one batch; their ids."""
    made = await client.post(
        "/api/jobs/batch", json={"jobs": [{"type": "noop", "input": {"sleep_s": sleep_s}}] * count}
    )
    assert made.status_code == 202, made.text
    return [j["id"] for j in made.json()["jobs"]]


def _jobs(group: str, count: int, priority: int = 0) -> list[Queued]:
    return [Queued(uuid.uuid4(), priority=priority, group=group) for _ in range(count)]


async def test_queued_groups_take_turns_and_priority_wins_between_bands(
    turns: tuple[Queue, aioredis.Redis, Settings],
) -> None:
    queue, client, settings = turns
    a = _jobs("fair:tenant:a", 5)
    await queue.enqueue_many(a)  # A's backlog first
    b = _jobs("fair:tenant:b", 2)
    await queue.enqueue_many(b)  # then B, one job at a time
    c = _jobs("fair:tenant:c", 1)
    await queue.enqueue(c[0].job_id, group="fair:tenant:c")
    urgent = _jobs("fair:tenant:a", 1, priority=5)
    await queue.enqueue_many(urgent)
    late = _jobs("fair:tenant:a", 1)  # A's next job goes behind its own backlog
    await queue.enqueue_many(late)
    plain = Queued(uuid.uuid4())  # no group (fairness off): its run time is its score
    before_ms = int(time.time() * 1000)
    await queue.enqueue_many([plain])
    after_ms = int(time.time() * 1000)

    ranked = await client.zrange(settings.queue_name, 0, -1, withscores=True)
    score = {uuid.UUID(m.decode()): s for m, s in ranked}
    plain_score = score.pop(plain.job_id)
    assert score_for(before_ms, 0, after_ms) <= plain_score <= score_for(after_ms, 0, after_ms)
    rounds: dict[float, set[uuid.UUID]] = {}
    for job_id, s in score.items():
        rounds.setdefault(s, set()).add(job_id)
    order = [rounds[s] for s in sorted(rounds)]
    ids = [{j.job_id} for j in (*urgent, a[0])]
    # the higher priority first, whatever its group's backlog; then round by round: A's
    # head alone, then one job of each group with work queued, A's rest and its late job
    assert order[:2] == ids
    assert order[2] == {a[1].job_id, b[0].job_id, c[0].job_id}
    assert order[3] == {a[2].job_id, b[1].job_id}
    assert order[4:] == [{a[3].job_id}, {a[4].job_id}, {late[0].job_id}]


async def test_a_second_tenant_starts_within_a_few_turns_of_a_deep_backlog(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """With the default window (100 of a tenant's jobs on the queue), B's jobs start
    within a few of A's starts after their submit, not after A's window or backlog."""
    database = await new_database()
    stack = await launch(
        database,
        endpoints.redis_url,
        tmp_path_factory.mktemp("turns"),
        workers=WORKERS,
        JOBCAST_WORKER_CONCURRENCY=str(PER_WORKER),
    )
    try:
        first, second = await stack.owner(), await stack.owner()
        async with stack.client(first) as a, stack.client(second) as b:
            a_ids = await backlog_of(a, 300, sleep_s=0.05)
            # A's jobs are running: B comes behind a queue A fills
            await wait_status(a, a_ids[0], "completed", timeout_s=60)
            made = await b.post("/api/jobs/batch", json={"jobs": [{"type": "noop"}] * 3})
            assert made.status_code == 202, made.text
            b_ids = [j["id"] for j in made.json()["jobs"]]
            for job_id in b_ids:
                await wait_status(b, job_id, "completed", timeout_s=60)
        conn = await asyncpg.connect(database)
        try:
            # for each of B's jobs: A's jobs that started between its submit and its start
            between = await conn.fetch(
                "SELECT b.id, (SELECT count(*) FROM jobs a WHERE a.owner_id <> b.owner_id"
                "   AND a.started_at > b.created_at AND a.started_at < b.started_at) AS n"
                " FROM jobs b WHERE b.id = ANY($1::uuid[])",
                b_ids,
            )
            a_left = await conn.fetchval(
                "SELECT count(*) FROM jobs WHERE owner_id <> (SELECT owner_id FROM jobs"
                " WHERE id = $1::uuid) AND (started_at IS NULL OR started_at > (SELECT"
                " max(started_at) FROM jobs WHERE id = ANY($2::uuid[])))",
                b_ids[0],
                b_ids,
            )
        finally:
            await conn.close()
    finally:
        stack.close()
    # round-robin: B's third job waits for at most A's head and a turn of A per B job
    # before it, and the starts the workers had in hand; behind A's window it would be
    # about 100, behind A's backlog about 300
    assert max(r["n"] for r in between) <= 2 * WORKERS * PER_WORKER, between
    assert a_left > 200  # B ran long before A's backlog drained


async def test_a_small_window_keeps_a_backlog_off_the_queue_and_says_so(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("fair"),
        JOBCAST_WORKER_CONCURRENCY="2",
        JOBCAST_FAIR_WINDOW="3",
    )
    redis = aioredis.Redis.from_url(stack.redis_url)
    queue = stack.env["JOBCAST_REDIS_PREFIX"] + ":queue"
    try:
        first, second = await stack.owner(), await stack.owner()
        async with stack.client(first) as a, stack.client(second) as b:
            a_ids = await backlog_of(a, 40, sleep_s=0.2)
            waiting = await job_of(a, a_ids[-1])
            queued_most = 0
            b_ids = [
                (await b.post("/api/jobs", json={"type": "noop"})).json()["id"] for _ in range(3)
            ]
            b_jobs = [await wait_status(b, i, "completed", timeout_s=60) for i in b_ids]
            for _ in range(10):
                queued_most = max(queued_most, await redis.zcard(queue))
                await asyncio.sleep(0.05)
            a_jobs = [await wait_status(a, i, "completed", timeout_s=120) for i in a_ids]
    finally:
        await redis.aclose()
        stack.close()
    a_starts = sorted(j["started_at"] for j in a_jobs)
    # every job of the second tenant started while most of the first one's still waited
    assert max(j["started_at"] for j in b_jobs) < a_starts[len(a_starts) // 2]
    # the first tenant's share of the queue (3) and the two it runs (arq keeps a running
    # job on its queue until it ends), not its backlog of 40
    assert queued_most <= 3 + 2
    assert waiting["status"] == "pending" and "Waiting its turn" in waiting["waiting_reason"]
    assert all(j["status"] == "completed" for j in a_jobs)
