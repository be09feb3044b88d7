"""A parent waiting for its children reports their progress when it changes, and only then.

The parent's context runs in this process against real Postgres and Redis (the
worker's resources opened as ``python -m workers`` opens them); its child is a job
that a test-held attempt keeps running, so its progress moves only when told.
"""

from __future__ import annotations

import asyncio
import uuid
from uuid import UUID

from jobcast.endpoints import Endpoints
from jobcast.model import Claim, JobStatus
from jobcast.registry import load_registry
from jobcast.store import Store
from jobcast.store.reports import ProgressReport
from tests.conftest import DatabaseFactory
from tests.in_process import worker_settings
from tests.support import eventually
from workers.context import Reporter
from workers.state import WorkerState

POLL_S = 0.5  # how often a waiting parent looks at its children


async def progress_events(store: Store, job_id: UUID) -> int:
    count: int = await store.pool.fetchval(
        "SELECT count(*) FROM job_events WHERE job_id = $1 AND kind = 'progress'", job_id
    )
    return count


async def test_a_waiting_parent_writes_progress_only_when_its_children_change(
    endpoints: Endpoints, new_database: DatabaseFactory
) -> None:
    database = await new_database()
    # no sweep may take the parent over: this test holds its attempt without a heartbeat
    settings = worker_settings(endpoints, database, stale_after_s=3600)
    demo = load_registry().get("demo")
    async with WorkerState.open(settings) as state:
        store = state.store
        owner = await store.create_owner(uuid.uuid4().hex)
        parent = await store.create_job(owner_id=owner, job_type=demo, params={})
        assert parent is not None
        parent_claim = await store.claim(parent.job.id)
        assert isinstance(parent_claim, Claim)
        child = await store.create_job(
            owner_id=owner, job_type=demo, params={}, parent_id=parent.job.id
        )
        assert child is not None
        child_claim = await store.claim(child.job.id)
        assert isinstance(child_claim, Claim)
        reporter = Reporter(
            job_id=parent.job.id,
            owner_id=owner,
            attempt=parent_claim.attempt,
            priority=0,
            job_type=demo,
            state=state,
        )
        waiting = asyncio.create_task(reporter.wait_children([str(child.job.id)]))

        async def first_report() -> int:
            return await progress_events(store, parent.job.id)

        await eventually(first_report, what="the parent's first report")
        await asyncio.sleep(8 * POLL_S)  # eight looks at a child that does not change
        while_unchanged = await progress_events(store, parent.job.id)

        await store.record_reports(
            [ProgressReport(child.job.id, child_claim.attempt, 50, None, "half")]
        )

        async def reported_the_change() -> bool:
            return await progress_events(store, parent.job.id) > while_unchanged

        await eventually(reported_the_change, what="the parent reporting the child's 50 %")
        await store.finish(child.job.id, child_claim.attempt, status=JobStatus.COMPLETED)
        results = await asyncio.wait_for(waiting, 10)
        total = await progress_events(store, parent.job.id)
    assert while_unchanged == 1, f"{while_unchanged} progress events while nothing changed"
    assert [r["status"] for r in results] == ["completed"]
    assert total == 3  # the first look, the child at 50 %, the child done
