"""Workers in the test process: their settings, and the jobs a test sets up for them.

``WorkerState.open(settings)`` runs what ``python -m workers`` runs beside its jobs (the
heartbeat, the sweep, webhook deliveries) against real Postgres and Redis, without arq.
"""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from jobcast.endpoints import Endpoints
from jobcast.model import Claim, JobStatus
from jobcast.registry import load_registry
from jobcast.settings import Settings, load_settings
from jobcast.store import Store
from tests.support import prefix_for

INTERVAL_S = 0.2  # the sweep's interval, and the webhook loop's


def worker_settings(endpoints: Endpoints, database: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database,
        "redis_url": endpoints.redis_url,
        "redis_prefix": prefix_for(database),
        "reaper_interval_s": INTERVAL_S,
        "stale_after_s": 1.0,
        "webhook_hosts": "127.0.0.1",
    }
    values.update(overrides)
    return load_settings(environ={}, **values)


async def finished_jobs(store: Store, count: int, callback_url: str) -> list[UUID]:
    """Jobs that ended with a callback_url: each has its first webhook try due now."""
    owner = await store.create_owner(uuid.uuid4().hex)
    noop = load_registry().get("noop")
    ids = []
    for _ in range(count):
        created = await store.create_job(
            owner_id=owner, job_type=noop, params={}, callback_url=callback_url
        )
        assert created is not None
        claim = await store.claim(created.job.id)
        assert isinstance(claim, Claim)
        await store.finish(created.job.id, claim.attempt, status=JobStatus.COMPLETED, result={})
        ids.append(created.job.id)
    return ids


async def stale_job(store: Store) -> UUID:
    """A running job whose worker stopped beating an hour ago."""
    owner = await store.create_owner(uuid.uuid4().hex)
    created = await store.create_job(
        owner_id=owner, job_type=load_registry().get("noop"), params={}
    )
    assert created is not None
    assert isinstance(await store.claim(created.job.id), Claim)
    await store.pool.execute(
        "UPDATE jobs SET heartbeat_at = now() - interval '1 hour' WHERE id = $1", created.job.id
    )
    return created.job.id
