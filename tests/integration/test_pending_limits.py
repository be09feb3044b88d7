"""Pending limits against the running service: with the only worker slot busy, a type that
fails jobs pending past its limit fails them (error, final event), a type that reports them
shows them stuck (job view, admin stats, /metrics), and a job scheduled for later counts
its wait only from its time."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from jobcast.bus import Publisher
from jobcast.endpoints import Endpoints
from jobcast.model import Event
from jobcast.registry import load_registry
from jobcast.store import Store
from tests.conftest import DatabaseFactory
from tests.in_process import worker_settings
from tests.integration.test_metrics import scrape, value
from tests.integration.test_reliability import job_of, wait_status
from tests.support import Stack, eventually, launch, parse_at, watch
from workers.sweep import Turn
from workers.sweep.lease import Lease
from workers.sweep.pending_limits import PendingLimits

ADMIN_TOKEN = f"admin-{uuid.uuid4().hex}"
LIMIT_S = 2.0
MESSAGE = "waited more than 2 s for a worker slot"


@pytest.fixture(scope="module")
async def busy_stack(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """One worker with one slot, so that a long job keeps every other one pending."""
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("pending"),
        JOBCAST_JOB_MODULES="tests.pending_jobtypes",
        JOBCAST_WORKER_CONCURRENCY="1",
        JOBCAST_REAPER_INTERVAL_S="0.3",
        JOBCAST_ADMIN_TOKEN=ADMIN_TOKEN,
    )
    try:
        yield stack
    finally:
        stack.close()


def _between(job: dict[str, Any], earlier: str, later: str) -> float:
    """Seconds from one time of the job's view to another."""
    return (parse_at(str(job[later])) - parse_at(str(job[earlier]))).total_seconds()


async def test_past_the_limit_a_job_fails_or_is_reported_and_a_scheduled_one_waits(
    busy_stack: Stack,
) -> None:
    stack = busy_stack
    token = await stack.owner()
    async with stack.client(token) as client, stack.client(ADMIN_TOKEN) as admin:

        async def submitted(body: dict[str, object]) -> str:
            response = await client.post("/api/jobs", json=body)
            assert response.status_code == 202, response.text
            job_id: str = response.json()["id"]
            return job_id

        holder = await submitted({"type": "hold", "input": {"seconds": 120}})
        await wait_status(client, holder, "running")
        failing = await submitted({"type": "slot_fail", "input": {"n": 1}})
        watching = asyncio.create_task(watch(stack, token, failing, timeout_s=60))
        reported = await submitted({"type": "slot_report", "input": {"n": 2}})
        later = await submitted({"type": "slot_fail", "input": {"n": 3}, "delay_seconds": 4})

        failed = await wait_status(client, failing, "failed")
        assert failed["error"]["message"] == MESSAGE
        assert failed["error"]["category"] == "permanent"
        assert failed["attempts"] == 0
        assert _between(failed, "run_at", "finished_at") >= LIMIT_S
        watched = await watching
        final = watched.events[-1]
        assert final["kind"] == "status" and final["status"] == "failed"
        assert final["error"]["message"] == MESSAGE

        async def stuck() -> dict[str, Any] | None:
            job = await job_of(client, reported)
            return job if job["stuck_since"] else None

        shown = await eventually(stuck, what="the reported job marked stuck")
        assert shown["status"] == "pending"
        assert _between(shown, "run_at", "stuck_since") >= LIMIT_S
        events = (await client.get(f"/api/jobs/{reported}/events")).json()["events"]
        assert any(e.get("stuck") for e in events), events
        stats = (await admin.get("/api/admin/stats")).json()
        assert stats["stuck_pending"] == {"slot_report": 1}
        samples = await scrape(stack)
        assert value(samples, "jobcast_stuck_pending_jobs", type="slot_report") == 1
        assert value(samples, "jobcast_stuck_pending_jobs", type="slot_fail") == 0

        # the scheduled job's wait counted from its run time, not from its submit
        late = await wait_status(client, later, "failed")
        assert _between(late, "run_at", "finished_at") >= LIMIT_S
        assert _between(late, "created_at", "finished_at") >= 4 + LIMIT_S

        # the slot frees: the stuck job runs, and is stuck no more
        assert (await client.post(f"/api/jobs/{holder}/cancel")).status_code == 202
        done = await wait_status(client, reported, "completed")
        assert done["stuck_since"] is None
        assert done["result"] == {"n": 2, "attempt": 1}
        after = await scrape(stack)
        assert value(after, "jobcast_stuck_pending_jobs", type="slot_report") == 0
        assert (await admin.get("/api/admin/stats")).json()["stuck_pending"] == {}


@pytest.fixture
async def duty_setup(
    endpoints: Endpoints, new_database: DatabaseFactory
) -> AsyncIterator[tuple[Store, PendingLimits, Turn]]:
    """The duty alone, on a database of its own, with a lease held for the test."""
    database = await new_database()
    settings = worker_settings(endpoints, database)
    redis = aioredis.Redis.from_url(endpoints.redis_url)
    async with Store.open(database) as store:
        publisher = Publisher(redis, settings, store)
        registry = load_registry(["tests.pending_jobtypes"])
        lease = Lease(store, "pending-test", 600)
        assert await lease.take()
        turn = Turn(lease=lease, redis_up=True, last_outage_at=0.0)
        try:
            yield store, PendingLimits(store, publisher, registry), turn
        finally:
            await publisher.close()
            await redis.aclose()


async def test_parked_jobs_and_a_paused_type_are_not_counted(
    duty_setup: tuple[Store, PendingLimits, Turn],
) -> None:
    store, duty, turn = duty_setup
    owner = await store.create_owner(uuid.uuid4().hex)
    registry = load_registry(["tests.pending_jobtypes"])
    slot_fail = registry.get("slot_fail")
    ids = {}
    for name, draft in (("due", False), ("paused", False), ("draft", True)):
        created = await store.create_job(owner_id=owner, job_type=slot_fail, params={}, draft=draft)
        assert created is not None
        ids[name] = created.job.id
    assert isinstance(await store.pause(ids["paused"], owner), Event)
    await store.pool.execute(
        "UPDATE jobs SET run_at = now() - interval '1 hour' WHERE id = ANY($1::uuid[])",
        list(ids.values()),
    )
    # the type is paused: none of its jobs waits for a slot
    await store.pause_type("slot_fail", "admin")
    await duty.run(turn)
    assert {n: (await _status(store, i)) for n, i in ids.items()} == {
        "due": "pending",
        "paused": "paused",
        "draft": "draft",
    }
    # resumed, its jobs are due from now: the hour it was paused is not a wait
    await store.resume_type("slot_fail")
    await duty.run(turn)
    assert await _status(store, ids["due"]) == "pending"
    # an hour past the limit, unpaused: it fails; the paused job and the draft do not
    await store.pool.execute(
        "UPDATE jobs SET run_at = now() - interval '1 hour' WHERE id = ANY($1::uuid[])",
        list(ids.values()),
    )
    await duty.run(turn)
    assert {n: (await _status(store, i)) for n, i in ids.items()} == {
        "due": "failed",
        "paused": "paused",
        "draft": "draft",
    }
    failed = await store.get_job(ids["due"])
    assert failed is not None and failed.error is not None
    assert failed.error["message"] == MESSAGE


async def _status(store: Store, job_id: uuid.UUID) -> str:
    job = await store.get_job(job_id)
    assert job is not None
    return job.status.value
