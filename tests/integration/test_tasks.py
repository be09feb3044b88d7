"""Background tasks do not die silently: a failure is logged, the task restarted, and
/readyz shows it meanwhile; the hub's reader failing leaves pub/sub taken for down, so
the NOTIFY fallback carries the events until the reader runs again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from jobcast.endpoints import Endpoints
from jobcast.tasks import Supervised, states
from tests.chaos import Watcher
from tests.conftest import DatabaseFactory
from tests.redis_proxy import RedisProxy
from tests.support import Stack, eventually, launch, submit


@pytest.fixture
async def proxy(endpoints: Endpoints) -> AsyncIterator[RedisProxy]:
    upstream = urlsplit(endpoints.redis_url)
    running = RedisProxy(upstream.hostname or "127.0.0.1", upstream.port or 6379)
    await running.start()
    yield running
    await running.close()


@pytest.fixture
async def proxied(
    proxy: RedisProxy, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    stack = await launch(await new_database(), proxy.url, tmp_path_factory.mktemp("tasks"))
    try:
        yield stack
    finally:
        stack.close()


async def readiness(stack: Stack) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=5) as client:
        response = await client.get("/readyz")
    return response.status_code, response.json()


async def fallback_asks(stack: Stack) -> int:
    conn = await asyncpg.connect(stack.database_url)
    try:
        asks: int = await conn.fetchval(
            "SELECT count(*) FROM fallback_listeners WHERE expires_at > now()"
        )
        return asks
    finally:
        await conn.close()


async def test_a_failing_hub_reader_is_logged_restarted_and_shown_by_readyz(
    proxied: Stack, proxy: RedisProxy
) -> None:
    status, body = await readiness(proxied)
    assert status == 200
    assert body["tasks"] == {
        "hub-reader": "running",
        "hub-ping": "running",
        "pg-listener": "running",
    }

    proxy.garbage = True  # Redis answers the hub's pub/sub connection with garbage

    async def shown_restarting() -> dict[str, Any] | None:
        status, body = await readiness(proxied)
        if status == 503 and body.get("tasks", {}).get("hub-reader") == "restarting":
            return body
        return None

    down = await eventually(shown_restarting, interval_s=0.02, what="/readyz 503, reader down")
    assert down["checks"]["redis"] == "ok"  # Redis answers commands: only the reader fails
    assert down["checks"]["pubsub"] == "down"

    # the reader's failure leaves pub/sub taken for down: the listener asks for NOTIFYs,
    # and a job's watcher gets every event through them
    async def asked() -> bool:
        return await fallback_asks(proxied) >= 1

    await eventually(asked, timeout_s=10, what="the web process asking for NOTIFYs")
    token = await proxied.owner()
    async with proxied.client(token) as client:
        job_id = await submit(client, "demo", duration=1)
        watcher = Watcher(proxied, token, job_id)
        await watcher.run(timeout_s=30)
        stored = (await client.get(f"/api/jobs/{job_id}/events")).json()["events"]
    watcher.assert_gap_free()
    assert watcher.events == stored
    assert watcher.final_statuses == ["completed"]

    proxy.garbage = False

    async def running_again() -> bool:
        status, body = await readiness(proxied)
        return status == 200 and body["checks"]["pubsub"] == "ok"

    await eventually(running_again, timeout_s=20, what="/readyz 200 with the reader back")
    log = proxied.logs("web")
    assert "background task hub-reader failed; restarting" in log
    assert "Traceback" in log and "IndexError" in log
    assert proxy.garbage_sent >= 1


async def test_a_supervised_task_is_restarted_after_each_failure_until_it_runs() -> None:
    failures = 3
    runs = 0
    running = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= failures:
            raise ValueError(f"failure {runs}")
        running.set()
        await asyncio.Event().wait()

    task = Supervised("flaky", flaky, first_backoff_s=0.01, max_backoff_s=0.02)
    task.start()
    try:
        await asyncio.wait_for(running.wait(), 5)
        assert states([task]) == {"flaky": "running"}
        assert task.restarts == failures
        assert task.last_error == f"ValueError: failure {failures}"
    finally:
        await task.stop()
    assert states([task]) == {"flaky": "stopped"}
