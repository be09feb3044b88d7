"""Redis on a real Sentinel set: the primary killed mid-run, the replica promoted.

``REDIS_URL=redis+sentinel://…`` carries the queue, pub/sub and the rate limits
alike. The figures (how long submits saw errors, how many were accepted while Redis
was away and queued later by the outbox, how long until the service used the new
primary) are printed and written to test-artifacts/sentinel-failover.json.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.chaos import Watcher, chaos_env
from tests.conftest import DatabaseFactory
from tests.sentinels import SentinelTopology
from tests.support import ARTIFACTS, Stack, eventually, launch

pytestmark = pytest.mark.topology

JOBS = 100
KILL_AT = 30  # the primary is killed right before this submit
SUBMIT_EVERY_S = 0.08


@pytest.fixture
def sentinel_set() -> Iterator[SentinelTopology]:
    topology = SentinelTopology()
    topology.start()
    yield topology
    topology.stop()


async def redis_ok(client: httpx.AsyncClient) -> bool:
    try:
        checks: dict[str, str] = (await client.get("/readyz")).json()["checks"]
    except httpx.HTTPError:
        return False
    return checks["redis"] == "ok" and checks["pubsub"] == "ok"


def running_starts(events: list[dict[str, Any]]) -> int:
    return sum(1 for e in events if e["kind"] == "status" and e["status"] == "running")


async def test_a_primary_killed_mid_run_loses_no_job_and_no_event(
    sentinel_set: SentinelTopology,
    new_database: DatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    stack: Stack = await launch(
        await new_database(),
        sentinel_set.url,
        tmp_path_factory.mktemp("sentinel"),
        workers=2,
        **chaos_env(
            JOBCAST_REDIS_TIMEOUT_S="1",
            JOBCAST_REDIS_CONNECT_TIMEOUT_S="1",
            JOBCAST_REDIS_PROBE_INTERVAL_S="0.3",
        ),
    )
    try:
        token = await stack.owner()
        watchers: list[Watcher] = []
        watching: list[asyncio.Task[None]] = []
        errors: list[float] = []  # when (s after the kill) a submit failed
        accepted_while_down = 0
        killed_at = 0.0
        redis_back_s: float | None = None
        async with stack.client(token) as client:
            while len(watchers) < JOBS:
                if len(watchers) == KILL_AT and not killed_at:
                    sentinel_set.kill_primary()
                    killed_at = time.monotonic()
                try:
                    response = await client.post(
                        "/api/jobs", json={"type": "demo", "input": {"duration": 2}}
                    )
                except httpx.HTTPError:
                    response = None
                now = time.monotonic()
                if response is None or response.status_code != 202:
                    errors.append(now - killed_at)
                    await asyncio.sleep(SUBMIT_EVERY_S)
                    continue
                if killed_at and redis_back_s is None:
                    if await redis_ok(client):
                        redis_back_s = time.monotonic() - killed_at
                    else:
                        accepted_while_down += 1
                watcher = Watcher(stack, token, response.json()["id"])
                watchers.append(watcher)
                watching.append(asyncio.create_task(watcher.run(timeout_s=150)))
                await asyncio.sleep(SUBMIT_EVERY_S)
            if redis_back_s is None:
                await eventually(partial_ok(client), timeout_s=30, what="Redis back")
                redis_back_s = time.monotonic() - killed_at
            await asyncio.gather(*watching)
            stored = {}
            for watcher in watchers:
                response = await client.get(f"/api/jobs/{watcher.job_id}/events")
                stored[watcher.job_id] = response.json()["events"]
        promoted = sentinel_set.primary() == sentinel_set.replica_port
    finally:
        stack.close()

    twice = [job_id for job_id, events in stored.items() if running_starts(events) != 1]
    lost = [w.job_id for w in watchers if w.final_statuses != ["completed"]]
    figures = {
        "jobs": JOBS,
        "submit_errors": len(errors),
        "submit_errors_window_s": round(errors[-1] - errors[0], 2) if errors else 0.0,
        "accepted_while_redis_away": accepted_while_down,
        "redis_ready_again_after_s": round(redis_back_s, 2),
        "jobs_lost": len(lost),
        "jobs_started_more_than_once": len(twice),
    }
    print("sentinel failover:", figures)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "sentinel-failover.json").write_text(json.dumps(figures, indent=1))
    assert promoted, sentinel_set.logs()
    assert not lost, f"jobs not completed once: {lost}"
    for watcher in watchers:
        watcher.assert_gap_free()
        assert watcher.events == stored[watcher.job_id]
    assert not twice, f"jobs started more than once: {twice}"


def partial_ok(client: httpx.AsyncClient) -> Any:
    async def check() -> bool:
        return await redis_ok(client)

    return check
