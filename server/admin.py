"""Admin endpoints: every owner's jobs and the numbers an operator watches."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from jobcast.schemas import JobOut, Model
from server.jobs import job_view
from server.openapi import endpoint, error_responses
from server.params import AdminJobFilter, query_of, services_of
from server.responses import model_response
from server.security import require_admin


class AdminJobOut(JobOut):
    owner_id: str


class AdminJobList(Model):
    jobs: list[AdminJobOut]


class TypeWindow(Model):
    finished: int
    failed: int
    failure_rate: float = Field(ge=0, le=1)
    p50_s: float | None
    p95_s: float | None


class QueueStats(Model):
    depth: int | None = Field(description="Jobs on the Redis queue, scheduled ones included.")
    due: int | None = Field(description="Jobs on the queue whose time has come.")


class AdminStats(Model):
    by_status: dict[str, int]
    by_type: dict[str, dict[str, int]]
    queue: QueueStats
    oldest_pending_s: float
    stuck_running: int = Field(description="Running jobs whose worker stopped beating.")
    last_hour: dict[str, TypeWindow]
    last_day: dict[str, TypeWindow]


@endpoint(
    "Counts, queue depth, oldest wait, failure rate and durations per type",
    responses={200: AdminStats, **error_responses(401, 403, 503)},
    auth="admin",
    tags=("admin",),
)
async def stats(request: Request) -> Response:
    await require_admin(request)
    services = services_of(request)
    numbers: dict[str, Any] = await services.store.stats(services.settings.stale_after_s)
    depth: int | None
    due: int | None
    try:
        depth, due = await services.queue.depth()
    except (RedisError, OSError):
        depth = due = None
    return model_response(AdminStats(**numbers, queue=QueueStats(depth=depth, due=due)))


@endpoint(
    "Every owner's jobs, newest first",
    responses={200: AdminJobList, **error_responses(400, 401, 403, 422, 503)},
    query=AdminJobFilter,
    auth="admin",
    tags=("admin",),
)
async def jobs(request: Request) -> Response:
    await require_admin(request)
    services = services_of(request)
    wanted = query_of(request, AdminJobFilter)
    found = await services.store.admin_jobs(
        owner_id=wanted.owner,
        status=wanted.status.value if wanted.status else None,
        type=wanted.type,
        limit=wanted.limit,
    )
    return model_response(
        AdminJobList(
            jobs=[
                AdminJobOut(**(await job_view(services, j)).model_dump(), owner_id=str(j.owner_id))
                for j in found
            ]
        )
    )
