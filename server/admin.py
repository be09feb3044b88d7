"""Admin endpoints: every owner's jobs, the numbers an operator watches, and actions.

Reading needs the admin or the read-only operator token; acting (bulk retry, cancel,
delete; pausing a type's queue) needs the admin token (``server/admin_access.py``).
The actions themselves run in ``server/admin_actions.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from jobcast.errors import NotFound
from jobcast.schemas import EventOut, JobOut, Model
from jobcast.store import AdminQuery
from server import admin_actions
from server.admin_access import require_actor, require_admin_role
from server.admin_filters import (
    AdminFilter,
    AdminJobSearch,
    BulkAction,
    decode_cursor,
    encode_cursor,
    parse_bulk,
    parse_model,
    parse_search,
)
from server.jobs import job_view
from server.openapi import endpoint, error_responses
from server.params import json_body, parse_job_id, services_of
from server.responses import model_response
from server.state import Services


class AdminJobOut(JobOut):
    owner_id: str


class AdminJobList(Model):
    jobs: list[AdminJobOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null: none.")


class ClaimOut(Model):
    attempt: int
    worker: str = Field(description="The worker process (host:pid) that claimed the attempt.")
    claimed_at: datetime


class CheckpointOut(Model):
    step: str
    title: str
    result: Any = Field(description="The value the step stored; later attempts skip the step.")
    finished_at: datetime | None
    duration_ms: int | None
    attempts: int = Field(description="Times the step was started, over all attempts.")


class AdminJobDetail(Model):
    job: AdminJobOut
    events: list[EventOut]
    claims: list[ClaimOut] = Field(description="Each attempt's claim, oldest first.")
    checkpoints: list[CheckpointOut]


class TypeWindow(Model):
    finished: int
    failed: int
    failure_rate: float = Field(ge=0, le=1)
    p50_s: float | None
    p95_s: float | None


class QueueStats(Model):
    depth: int | None = Field(
        description="Jobs waiting on the Redis queue (not yet taken by a worker), "
        "scheduled ones included."
    )
    due: int | None = Field(description="Jobs waiting on the queue whose time has come.")


class PausedOut(Model):
    type: str
    paused_at: datetime
    paused_by: str


class AdminStats(Model):
    by_status: dict[str, int]
    by_type: dict[str, dict[str, int]]
    queue: QueueStats
    oldest_pending_s: float
    stuck_running: int = Field(description="Running jobs whose worker stopped beating.")
    stuck_pending: dict[str, int] = Field(
        default_factory=dict,
        description="Per type: pending jobs that waited for a worker slot past the type's "
        "pending limit (types that report rather than fail them).",
    )
    last_hour: dict[str, TypeWindow]
    last_day: dict[str, TypeWindow]
    paused: list[PausedOut] = Field(default_factory=list)
    role: str = Field("admin", description="The caller's role: admin, or operator (read-only).")
    titles: dict[str, str] = Field(
        default_factory=dict, description="Each job type's title, by its name."
    )


class Accepted(Model):
    matched: int
    action_id: str | None = None


async def _view(request: Request, job: Any) -> AdminJobOut:
    shown = await job_view(services_of(request), job)
    return AdminJobOut(**shown.model_dump(), owner_id=str(job.owner_id))


class StatsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    counts: Literal["all", "live"] = Field(
        "all",
        description="What `by_status` and `by_type` count: `all` the jobs kept, or `live` "
        "the jobs not finished alone (pending, running, waiting, paused, draft), read "
        "without a pass over the finished ones retention keeps. The console asks for `live`.",
    )


@endpoint(
    "Counts, queue depth, oldest wait, failure rate and durations per type",
    responses={200: AdminStats, **error_responses(400, 401, 403, 422, 503)},
    query=StatsQuery,
    auth="admin",
    tags=("admin",),
)
async def stats(request: Request) -> Response:
    role = await require_admin_role(request)
    wanted = parse_model(StatsQuery, dict(request.query_params), "query parameter ")
    shown = await current_stats(services_of(request), role.value, live=wanted.counts == "live")
    return model_response(shown)


async def current_stats(services: Services, role: str, *, live: bool = False) -> AdminStats:
    """The numbers of the stats endpoint (``live``: counting the jobs not finished alone),
    also the admin feed's snapshot."""
    numbers: dict[str, Any] = await services.store.stats(services.settings.stale_after_s, live=live)
    paused = await services.store.paused_types()
    depth: int | None
    due: int | None
    try:
        depth, due = await services.queue.depth()
    except (RedisError, OSError):
        depth = due = None
    return AdminStats(
        **numbers,
        queue=QueueStats(depth=depth, due=due),
        paused=[
            PausedOut(type=p.type, paused_at=p.paused_at, paused_by=p.paused_by) for p in paused
        ],
        role=role,
        titles={t.name: t.title for t in services.registry},
    )


@endpoint(
    "Every owner's jobs a filter matches, newest first, a page at a time",
    responses={200: AdminJobList, **error_responses(400, 401, 403, 422, 503)},
    query=AdminJobSearch,
    auth="admin",
    tags=("admin",),
)
async def jobs(request: Request) -> Response:
    await require_admin_role(request)
    services = services_of(request)
    raw = {k: v for k, v in request.query_params.items() if v != ""}
    wanted = parse_search(raw)
    after = decode_cursor(wanted.cursor) if wanted.cursor else None
    found = await services.store.admin_jobs(wanted.query(), after=after, limit=wanted.limit)
    last = found[-1] if len(found) == wanted.limit else None
    return model_response(
        AdminJobList(
            jobs=[await _view(request, j) for j in found],
            next_cursor=encode_cursor(last.created_at, last.id) if last else None,
        )
    )


@endpoint(
    "Any owner's job with every event, for the operator's job page",
    responses={200: AdminJobDetail, **error_responses(401, 403, 404, 503)},
    auth="admin",
    tags=("admin",),
)
async def job(request: Request) -> Response:
    await require_admin_role(request)
    services = services_of(request)
    job_id = parse_job_id(request.path_params["job_id"])
    found = await services.store.get_job(job_id, None)
    if found is None:
        raise NotFound("no such job")
    events = await services.store.events_after(job_id, 0, 1000)
    claims, checkpoints = await services.store.job_history(job_id)
    return model_response(
        AdminJobDetail(
            job=await _view(request, found),
            events=[EventOut.model_validate(e.wire()) for e in events],
            claims=[ClaimOut.model_validate(dict(c)) for c in claims],
            checkpoints=[
                CheckpointOut(step=c["name"], **{k: c[k] for k in CHECKPOINT_COLUMNS})
                for c in checkpoints
            ],
        )
    )


CHECKPOINT_COLUMNS = ("title", "result", "finished_at", "duration_ms", "attempts")


@endpoint(
    "Retry, cancel or delete the jobs given by id or matched by a filter, in the background",
    responses={202: Accepted, **error_responses(400, 401, 403, 404, 422, 503)},
    body=BulkAction,
    auth="admin",
    tags=("admin",),
)
async def bulk(request: Request) -> Response:
    action = request.path_params["action"]
    if action not in admin_actions.ACTIONS:
        raise NotFound(
            f"no admin action {action[:40]!r}; there are {', '.join(admin_actions.ACTIONS)}"
        )
    actor = await require_actor(request)
    body = await json_body(request)
    wanted = parse_bulk(body)
    services = services_of(request)
    query = None
    if wanted.filter == "all":
        query = AdminQuery()
    elif wanted.filter is not None:
        query = wanted.filter.query()
    started = await admin_actions.start_bulk(
        request, services, action, actor, wanted.ids, query, body
    )
    return model_response(Accepted(matched=started.matched, action_id=str(started.id)), 202)


@endpoint(
    "Pause a job type's queue: workers take none of its jobs; running ones finish",
    responses={202: None, **error_responses(401, 403, 404, 503)},
    auth="admin",
    tags=("admin",),
)
async def pause_type(request: Request) -> Response:
    actor = await require_actor(request)
    await admin_actions.pause(services_of(request), request.path_params["type"], actor)
    return model_response(Accepted(matched=0), 202)


@endpoint(
    "Resume a paused job type's queue; its pending jobs are queued again",
    responses={202: Accepted, **error_responses(401, 403, 404, 503)},
    auth="admin",
    tags=("admin",),
)
async def resume_type(request: Request) -> Response:
    actor = await require_actor(request)
    queued = await admin_actions.resume(services_of(request), request.path_params["type"], actor)
    return model_response(Accepted(matched=queued), 202)


@endpoint(
    "How many jobs a bulk action on this filter would touch now (the console's confirm)",
    responses={200: Accepted, **error_responses(400, 401, 403, 404, 422, 503)},
    query=AdminFilter,
    auth="admin",
    tags=("admin",),
)
async def count(request: Request) -> Response:
    await require_admin_role(request)
    raw = {k: v for k, v in request.query_params.items() if v != ""}
    action = raw.pop("action", "")
    if action not in admin_actions.ACTIONS:
        raise NotFound(
            f"no admin action {action[:40]!r}; there are {', '.join(admin_actions.ACTIONS)}"
        )
    wanted = parse_model(AdminFilter, raw, "query parameter ")
    matched = await services_of(request).store.admin_count(wanted.query(), action)
    return model_response(Accepted(matched=matched))
