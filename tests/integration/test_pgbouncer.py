"""Postgres behind a real PgBouncer in transaction mode (Debian's, 1.18: it carries no
prepared statements from one transaction to the next).

The web process, two workers, the outbox and the sweep all reach Postgres through the
pooler, with asyncpg's statement cache off (``JOBCAST_PG_STATEMENT_CACHE_SIZE=0``); the
web process's LISTEN connection goes direct (``JOBCAST_LISTEN_DATABASE_URL``), as LISTEN
cannot work through a pooler that hands each transaction to any server connection.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from jobcast.endpoints import Endpoints
from jobcast.store import apply_schema
from tests.chaos import PrivateRedis, Watcher, chaos_env
from tests.conftest import DatabaseFactory
from tests.pgbouncer import PgBouncer
from tests.support import Stack, eventually, launch, submit

pytestmark = pytest.mark.topology


@pytest.fixture(scope="module")
def bouncer(endpoints: Endpoints) -> Iterator[PgBouncer]:
    running = PgBouncer(endpoints.database_url, pool_size=8)
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
async def pooled(
    bouncer: PgBouncer,
    redis_server: PrivateRedis,
    new_database: DatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    direct = await new_database()
    stack = await launch(
        bouncer.url(direct),
        redis_server.url,
        tmp_path_factory.mktemp("pgbouncer"),
        workers=2,
        JOBCAST_LISTEN_DATABASE_URL=direct,
        JOBCAST_PG_STATEMENT_CACHE_SIZE="0",
        **chaos_env(),
    )
    try:
        yield stack
    finally:
        stack.close()


async def status_of(client: httpx.AsyncClient, job_id: str) -> str:
    response = await client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


async def wait_running(client: httpx.AsyncClient, job_id: str) -> None:
    async def running() -> bool:
        return await status_of(client, job_id) == "running"

    await eventually(running, timeout_s=20, what=f"job {job_id} running")


async def test_schema_applies_through_the_pooler_from_several_processes_at_once(
    bouncer: PgBouncer, new_database: DatabaseFactory
) -> None:
    # a session-level lock would stay on whichever server connection took it, and the
    # next apply, on another server connection, would wait for it forever
    url = bouncer.url(await new_database())
    async with asyncio.timeout(30):
        await asyncio.gather(*(apply_schema(url) for _ in range(3)))
        await apply_schema(url)


async def test_demo_jobs_run_end_to_end_with_every_event(pooled: Stack) -> None:
    token = await pooled.owner()
    async with pooled.client(token) as client:
        ids = [await submit(client, "demo", duration=1) for _ in range(6)]
    watchers = [Watcher(pooled, token, job_id) for job_id in ids]
    await asyncio.gather(*(w.run(timeout_s=60) for w in watchers))
    for watcher in watchers:
        watcher.assert_gap_free()
        assert watcher.final_statuses == ["completed"]


async def test_a_running_job_is_cancelled(pooled: Stack) -> None:
    token = await pooled.owner()
    async with pooled.client(token) as client:
        job_id = await submit(client, "demo", duration=20)
        watcher = Watcher(pooled, token, job_id)
        watching = asyncio.create_task(watcher.run(timeout_s=30))
        await wait_running(client, job_id)
        assert (await client.post(f"/api/jobs/{job_id}/cancel")).status_code == 202
        await watching
    watcher.assert_gap_free()
    assert watcher.final_statuses == ["cancelled"]


async def test_a_sigkilled_workers_job_runs_again_and_completes(pooled: Stack) -> None:
    token = await pooled.owner()
    async with pooled.client(token) as client:
        job_id = await submit(client, "demo", duration=3)
        watcher = Watcher(pooled, token, job_id)
        watching = asyncio.create_task(watcher.run(timeout_s=60))
        await wait_running(client, job_id)
        job = (await client.get(f"/api/jobs/{job_id}")).json()
        # the worker holding it is not named in the job: kill both, start two again
        for name in ("worker-0", "worker-1"):
            pooled.stop(name, signal.SIGKILL)
        pooled.start("worker-0")
        pooled.start("worker-1")
        await watching
        job = (await client.get(f"/api/jobs/{job_id}")).json()
    watcher.assert_gap_free()
    assert watcher.final_statuses == ["completed"]
    assert job["attempts"] == 2


async def test_watchers_get_every_event_over_listen_while_pubsub_is_down(
    pooled: Stack, redis_server: PrivateRedis
) -> None:
    token = await pooled.owner()
    async with pooled.client(token) as client:
        job_id = await submit(client, "demo", duration=3)
        watcher = Watcher(pooled, token, job_id)
        watching = asyncio.create_task(watcher.run(timeout_s=60))
        await wait_running(client, job_id)
        redis_server.kill()  # pub/sub gone: events come by NOTIFY on the direct connection
        try:
            seen = len(watcher.events)

            async def more() -> bool:
                return len(watcher.events) >= seen + 5

            await eventually(more, timeout_s=15, what="events while Redis is down")
        finally:
            redis_server.start()
        await watching
        stored = (await client.get(f"/api/jobs/{job_id}/events")).json()["events"]
    watcher.assert_gap_free()
    assert watcher.events == stored
    assert watcher.final_statuses == ["completed"]
