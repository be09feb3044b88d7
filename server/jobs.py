"""Reading and cancelling jobs: the job types, one job, its events and result, the list.

Every route here answers for the caller's own jobs only: another owner's job, a
missing one and a malformed id all look the same, a plain 404. Submitting and
retrying are in ``server.submit``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from jobcast import metrics
from jobcast.bus import publish_quietly
from jobcast.errors import Conflict, Gone, NotFound
from jobcast.model import Job, JobStatus, etag_of
from jobcast.registry import JobType
from jobcast.schemas import (
    Cancelled,
    EventList,
    EventOut,
    JobList,
    JobOut,
    JobTypeOut,
    JobTypes,
    NotFinished,
    ResultOut,
)
from server.auth import caller_of, owner_of
from server.job_access import may_submit
from server.lists import list_query
from server.openapi import endpoint, error_responses
from server.params import EventWindow, JobListQuery, parse_job_id, query_of, services_of
from server.responses import model_response
from server.state import Services

log = logging.getLogger(__name__)


async def owned_job(request: Request) -> tuple[Services, UUID, Job]:
    """The job of the path, if the caller owns it: a plain 404 otherwise, as if none."""
    services = services_of(request)
    owner_id = await owner_of(request)
    job = await services.store.get_job(parse_job_id(request.path_params["job_id"]), owner_id)
    if job is None:
        raise NotFound("no such job")
    return services, owner_id, job


async def job_view(services: Services, job: Job) -> JobOut:
    """The job as the API shows it, with its ETA from the type's history."""
    if job.type not in services.registry:
        return JobOut.of(job)
    job_type = services.registry.get(job.type)
    eta_s, steps = await services.estimator.remaining(job_type, job)
    return JobOut.of(job, eta_s=eta_s, step_estimates=steps, label=job_label(job_type, job))


def job_label(job_type: JobType, job: Job) -> str | None:
    """What tells the job apart from others of its type: its ``label_field``'s value, else
    the name of the first file it reads (``+2`` after it for two more)."""
    if job_type.label_field is not None:
        value = job.input.get(job_type.label_field)
        return str(value) if isinstance(value, str | int | float) and str(value) else None
    names = job.upload_names or {}
    if not names:  # no file of its own to name it by
        return None
    try:
        ids = [str(i) for i in job_type.uploads(job_type.input_model.model_validate(job.input))]
    except ValidationError:
        return None
    files = [names[i] for i in ids if i in names]
    if not files:
        return None
    return files[0] if len(files) == 1 else f"{files[0]} +{len(files) - 1}"


@endpoint(
    "The job types this install runs, with their steps and input schemas",
    responses={200: JobTypes, **error_responses(401, 503)},
    tags=("job types",),
)
async def job_types(request: Request) -> Response:
    await owner_of(request)
    caller = await caller_of(request)
    allowed = [t for t in services_of(request).registry if may_submit(t, caller)]
    return model_response(
        JobTypes(job_types=[JobTypeOut.model_validate(t.describe()) for t in allowed])
    )


@endpoint(
    "A job as it stands; answers 304 to a matching If-None-Match",
    responses={200: JobOut, 304: None, **error_responses(401, 404, 503)},
)
async def get_job(request: Request) -> Response:
    known = request.headers.get("if-none-match")
    if known is not None:  # a poll: look at the job's seq alone before reading it whole
        services = services_of(request)
        owner_id = await owner_of(request)
        job_id = parse_job_id(request.path_params["job_id"])
        seq = await services.store.job_seq(job_id, owner_id)
        if seq is None:
            raise NotFound("no such job")
        if known == etag_of(job_id, seq):
            return Response(status_code=304, headers=_no_cache(known))
    services, _, job = await owned_job(request)
    return model_response(await job_view(services, job), headers=_no_cache(job.etag))


def _no_cache(etag: str) -> dict[str, str]:
    return {"ETag": etag, "Cache-Control": "no-cache"}


@endpoint(
    "A job's events after a seq, in order",
    responses={200: EventList, **error_responses(400, 401, 404, 503)},
    query=EventWindow,
)
async def job_events(request: Request) -> Response:
    services, _, job = await owned_job(request)
    window = query_of(request, EventWindow)
    events = await services.store.events_after(job.id, window.after, window.limit)
    return model_response(EventList(events=[EventOut.model_validate(e.wire()) for e in events]))


@endpoint(
    "A job's result: 200 when completed, 202 while not finished",
    responses={200: ResultOut, 202: NotFinished, **error_responses(401, 404, 409, 410, 503)},
)
async def job_result(request: Request) -> Response:
    services, _, job = await owned_job(request)
    if job.status is JobStatus.COMPLETED:
        job_type = services.registry.get(job.type) if job.type in services.registry else None
        ttl_s = job_type.result_ttl_s if job_type else None
        expired = job.result_expired_at is not None or (
            ttl_s is not None
            and job.finished_at is not None
            and (datetime.now(UTC) - job.finished_at).total_seconds() > ttl_s
        )
        if expired:
            raise Gone(
                f"the result of job {job.id} has expired: results of {job.type} jobs are kept "
                f"{_duration(ttl_s)} after they finish; submit the job again for a new one"
            )
        return model_response(ResultOut(id=str(job.id), status="completed", result=job.result))
    if job.status.final:
        reason = (job.error or {}).get("message") or str(job.status)
        raise Conflict(f"job {job.id} has no result: it {job.status}: {reason}")
    return model_response(
        NotFinished(
            id=str(job.id),
            progress=job.progress,
            status=job.status.value,  # type: ignore[arg-type]  # not final here
        ),
        202,
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "for a limited time"
    for unit, size in (("days", 86_400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} seconds"


@endpoint(
    "Cancel a pending or running job",
    responses={202: Cancelled, **error_responses(401, 404, 409, 503)},
)
async def cancel_job(request: Request) -> Response:
    services = services_of(request)
    owner_id = await owner_of(request)
    job_id = parse_job_id(request.path_params["job_id"])
    events = await services.store.cancel(job_id, owner_id)
    if events is None:
        job = await services.store.get_job(job_id, owner_id)
        if job is None:
            raise NotFound("no such job")
        raise Conflict(f"job {job_id} is already {job.status}")
    for event in events:
        await publish_quietly(services.redis, services.settings, services.store, event)
        metrics.JOBS_CANCELLED.labels(event.job_type or "unknown").inc()
    log.info("job %s: cancelled by its owner, with %d children", job_id, len(events) - 1)
    return model_response(Cancelled(id=str(job_id), status="cancelled"), 202)


@endpoint(
    "The caller's jobs (an app key's; a browser token's scope), newest first, by page",
    responses={200: JobList, **error_responses(400, 401, 403, 422, 503)},
    query=JobListQuery,
)
async def list_jobs(request: Request) -> Response:
    services = services_of(request)
    owner_id = await owner_of(request)
    asked = query_of(request, JobListQuery)
    jobs, after = await services.store.find_jobs(
        owner_id, list_query(asked, (await caller_of(request)).scope)
    )
    return model_response(
        JobList(
            jobs=[await job_view(services, j) for j in jobs],
            next_cursor=after.encode() if after else None,
        )
    )
