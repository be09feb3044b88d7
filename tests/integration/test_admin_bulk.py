"""A bulk cancel of many jobs: job reads are answered all through it, and a crash halfway
leaves each job cancelled or untouched, never half."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from jobcast.endpoints import Endpoints
from tests.conftest import DatabaseFactory
from tests.support import Stack, eventually, launch, submit

ADMIN = "admin-" + "b" * 40
READERS = 4


@pytest.fixture(scope="module")
async def bulk_stack(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("bulk"),
        JOBCAST_ADMIN_TOKEN=ADMIN,
    )
    try:
        yield stack
    finally:
        stack.close()


async def _drafts(stack: Stack, owner_id: str, n: int, job_type: str) -> None:
    """``n`` draft jobs (stored, never queued) of the owner, written straight to Postgres."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute(
            "INSERT INTO jobs (id, owner_id, type, status) SELECT gen_random_uuid(), $1::uuid, $2,"
            " 'draft' FROM generate_series(1, $3)",
            owner_id,
            job_type,
            n,
        )
    finally:
        await conn.close()


async def _action(stack: Stack, action_id: str) -> asyncpg.Record:
    conn = await asyncpg.connect(stack.database_url)
    try:
        row: asyncpg.Record = await conn.fetchrow(
            "SELECT done, matched, finished_at FROM admin_actions WHERE id = $1::uuid", action_id
        )
        return row
    finally:
        await conn.close()


async def _owner_and_job(stack: Stack, token: str) -> tuple[str, str]:
    async with stack.client(token) as mine, stack.client(ADMIN) as admin:
        job_id = await submit(mine, "noop")
        owner_id: str = (await admin.get(f"/api/admin/jobs/{job_id}")).json()["job"]["owner_id"]
    return owner_id, job_id


def _p(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _read_until(
    client: httpx.AsyncClient, job_id: str, stop: asyncio.Event
) -> list[tuple[float, float]]:
    """Read the job again and again until ``stop``: when each read was sent and answered."""
    spans: list[tuple[float, float]] = []
    while not stop.is_set():
        start = time.perf_counter()
        response = await client.get(f"/api/jobs/{job_id}")
        spans.append((start, time.perf_counter()))
        assert response.status_code == 200
    return spans


async def test_job_reads_are_answered_all_through_a_bulk_cancel_of_10000(
    bulk_stack: Stack,
) -> None:
    """The cancel runs in batches that each hold only their own jobs: reads of another job
    are answered between them, all through the cancel, and none waits for the whole of it.
    (Judged against the cancel's own duration, not a wall-clock limit: the machine may be
    busy; the latencies are printed.)"""
    token = await bulk_stack.owner()
    owner_id, job_id = await _owner_and_job(bulk_stack, token)
    await _drafts(bulk_stack, owner_id, 10_000, "bulk-cancel")
    async with bulk_stack.client(token) as mine, bulk_stack.client(ADMIN) as admin:
        stop = asyncio.Event()
        readers = [asyncio.create_task(_read_until(mine, job_id, stop)) for _ in range(READERS)]
        began = time.perf_counter()
        accepted = await admin.post(
            "/api/admin/jobs/cancel", json={"filter": {"type": "bulk-cancel"}}
        )
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["matched"] == 10_000
        action_id = accepted.json()["action_id"]
        row = await eventually(
            lambda: _finished_action(bulk_stack, action_id), timeout_s=120, what="the cancel"
        )
        finished = time.perf_counter()
        stop.set()
        spans = [span for task in readers for span in await task]
    took = finished - began
    waits = [answered - sent for sent, answered in spans]
    print(
        f"\nbulk cancel of 10,000 jobs: {took:.1f} s; GET /api/jobs/{{id}} with {READERS} readers:"
        f" {len(waits)} reads, p50 {_p(waits, 0.5) * 1000:.1f} ms,"
        f" p99 {_p(waits, 0.99) * 1000:.1f} ms, longest {max(waits) * 1000:.1f} ms"
    )
    assert row["done"] == 10_000
    quarters = Counter(
        min(3, int(4 * (answered - began) / took))
        for _, answered in spans
        if began <= answered < finished
    )
    assert all(quarters[q] > 0 for q in range(4)), f"reads answered per quarter: {quarters}"
    assert max(waits) < took / 3, "a job read waited for much of the bulk cancel"
    conn = await asyncpg.connect(bulk_stack.database_url)
    try:
        counts = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'cancelled') AS cancelled, count(*) AS n,"
            " (SELECT count(*) FROM job_events e JOIN jobs j ON j.id = e.job_id"
            "  WHERE j.type = 'bulk-cancel') AS events FROM jobs WHERE type = 'bulk-cancel'"
        )
    finally:
        await conn.close()
    assert counts["cancelled"] == counts["n"] == counts["events"] == 10_000


async def _finished_action(stack: Stack, action_id: str) -> asyncpg.Record | None:
    row = await _action(stack, action_id)
    return row if row["finished_at"] is not None else None


async def _started_action(stack: Stack, action_id: str) -> asyncpg.Record | None:
    row = await _action(stack, action_id)
    return row if row["done"] > 0 else None


async def test_a_crash_halfway_leaves_each_job_cancelled_or_untouched(bulk_stack: Stack) -> None:
    token = await bulk_stack.owner()
    owner_id, _ = await _owner_and_job(bulk_stack, token)
    n = 20_000
    await _drafts(bulk_stack, owner_id, n, "bulk-crash")
    async with bulk_stack.client(ADMIN) as admin:
        accepted = await admin.post(
            "/api/admin/jobs/cancel", json={"filter": {"type": "bulk-crash"}}
        )
    action_id = accepted.json()["action_id"]
    await eventually(lambda: _started_action(bulk_stack, action_id), interval_s=0.01)
    bulk_stack.stop("web", signal.SIGKILL)
    conn = await asyncpg.connect(bulk_stack.database_url)
    try:
        jobs = await conn.fetch(
            "SELECT j.id, j.status, j.seq,"
            " (SELECT count(*) FROM job_events e WHERE e.job_id = j.id) AS events"
            " FROM jobs j WHERE j.type = 'bulk-crash' ORDER BY j.id"
        )
    finally:
        await conn.close()
    cancelled = [j for j in jobs if j["status"] == "cancelled"]
    assert 0 < len(cancelled) < n, "the crash did not come halfway; the test proves nothing"
    for job in jobs:
        if job["status"] == "cancelled":
            assert (job["seq"], job["events"]) == (1, 1), f"job {job['id']} half cancelled"
        else:
            assert (job["status"], job["seq"], job["events"]) == ("draft", 0, 0), job["id"]
    # batches go by id: what was cancelled is the first part, whole batches of 500
    assert [j["status"] for j in jobs[: len(cancelled)]] == ["cancelled"] * len(cancelled)
    assert len(cancelled) % 500 == 0
    bulk_stack.start("web")
    await bulk_stack.wait_ready()
