"""The HTTP API: sessions, job types, jobs, their events and results, and admin views."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from jobcast import metrics
from jobcast.bus import publish_quietly
from jobcast.errors import (
    BadRequest,
    Conflict,
    Gone,
    InvalidInput,
    NotFound,
    TooManyRequests,
)
from jobcast.logs import name_job
from jobcast.model import Job, JobStatus, SubmitRequest, dumps, etag_of
from jobcast.registry import JobType
from jobcast.schemas import (
    Cancelled,
    EventList,
    EventOut,
    JobAccepted,
    JobList,
    JobOut,
    JobTypeOut,
    JobTypes,
    NotFinished,
    ResultOut,
    SessionCreated,
)
from jobcast.webhooks import check_target
from server.auth import COOKIE_NAME, owner_of
from server.openapi import Query, endpoint, error_responses
from server.responses import JSONResponse
from server.state import Services

log = logging.getLogger(__name__)

_SESSION_MAX_AGE_S = 365 * 86_400
STATUS_QUERY = Query("status", {"type": "string", "enum": [s.value for s in JobStatus]})
TYPE_QUERY = Query("type", {"type": "string"})
LIMIT_QUERY = Query("limit", {"type": "integer", "minimum": 1, "maximum": 200})


def services_of(request: Request) -> Services:
    services: Services = request.state.services
    return services


def model_response(
    model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status_code, headers=headers)


def parse_job_id(raw: str) -> UUID:
    """A job id from the path; a malformed one is a plain 404, like a missing job."""
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound("no such job") from None


async def owned_job(request: Request) -> tuple[Services, UUID, Job]:
    """The job of the path, if the caller owns it: a plain 404 otherwise, as if none."""
    services = services_of(request)
    owner_id = await owner_of(request)
    job = await services.store.get_job(parse_job_id(request.path_params["job_id"]), owner_id)
    if job is None:
        raise NotFound("no such job")
    return services, owner_id, job


def int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(
            f"query parameter {name} must be a whole number, got {raw[:40]!r}"
        ) from None
    if not lo <= value <= hi:
        raise BadRequest(f"query parameter {name} must be between {lo} and {hi}, got {value}")
    return value


def status_param(request: Request) -> str | None:
    status = request.query_params.get("status") or None
    if status is not None and status not in JobStatus.__members__.values():
        raise BadRequest(
            f"query parameter status must be one of {', '.join(JobStatus)}, got {status[:40]!r}"
        )
    return status


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(body).__name__}")
    return body


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "for a limited time"
    for unit, size in (("days", 86_400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} seconds"


def _upload_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise InvalidInput(
            f"input: {raw[:40]!r} is not an upload id",
            details=[{"field": "input", "message": "not an upload id"}],
        ) from None


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors()
    ]


@endpoint(
    "Create an anonymous owner: a token, also set as a cookie",
    responses={201: SessionCreated, **error_responses(429, 503)},
    auth=None,
    tags=("sessions",),
)
async def create_session(request: Request) -> Response:
    services = services_of(request)
    settings = services.settings
    address = request.client.host if request.client else "unknown"
    await services.limiter.check(
        "session",
        address,
        per_min=settings.session_rate_per_min,
        burst=settings.session_burst,
        what="new sessions",
    )
    token = secrets.token_urlsafe(32)
    owner_id = await services.store.create_owner(token)
    secret = await services.store.webhook_secret(owner_id)
    response = model_response(SessionCreated(token=token, webhook_secret=secret), 201)
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=_SESSION_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@endpoint(
    "The job types this install runs, with their steps and input schemas",
    responses={200: JobTypes, **error_responses(401, 503)},
    tags=("job types",),
)
async def job_types(request: Request) -> Response:
    await owner_of(request)
    registry = services_of(request).registry
    return model_response(
        JobTypes(job_types=[JobTypeOut.model_validate(t.describe()) for t in registry])
    )


@endpoint(
    "Submit a job: answered at once, the job runs in the background",
    body=SubmitRequest,
    responses={202: JobAccepted, 200: JobAccepted, **error_responses(400, 401, 413, 422, 429, 503)},
)
async def submit_job(request: Request) -> Response:
    services = services_of(request)
    settings = services.settings
    owner_id = await owner_of(request)
    body = await json_body(request)
    try:
        submit = SubmitRequest.model_validate(body)
    except ValidationError as exc:
        details = validation_details(exc)
        raise InvalidInput(
            f"{details[0]['field']}: {details[0]['message']}", details=details
        ) from None
    job_type = services.registry.get(submit.type)
    params = job_type.parse_input(submit.input)
    timeout_s = submit.timeout_seconds or job_type.timeout_s
    if timeout_s > job_type.timeout_s:
        raise InvalidInput(
            f"timeout_seconds: at most {job_type.timeout_s:g} for {job_type.name} jobs, "
            f"got {timeout_s:g}",
            details=[{"field": "timeout_seconds", "message": "over the type's time limit"}],
        )
    callback_url = str(submit.callback_url) if submit.callback_url else None
    if callback_url is not None:
        check_target(callback_url, settings.webhook_host_set)
    upload_ids = [_upload_id(raw) for raw in job_type.uploads(params)]
    accepted, fresh = await _create(
        services,
        owner_id,
        job_type,
        params.model_dump(mode="json"),
        priority=submit.priority,
        delay_s=submit.start_delay_s(),
        max_attempts=submit.max_attempts or job_type.max_attempts,
        timeout_s=timeout_s,
        upload_ids=upload_ids,
        idempotency_key=submit.idempotency_key,
        callback_url=callback_url,
    )
    if not fresh:
        # the same idempotency_key within 24 h: the job that key made, not a second one
        return model_response(accepted, 200, headers={"Location": accepted.status_url})
    return model_response(accepted, 202, headers={"Location": accepted.status_url})


async def _create(
    services: Services,
    owner_id: UUID,
    job_type: JobType,
    params: dict[str, Any],
    *,
    priority: int,
    delay_s: float,
    max_attempts: int,
    timeout_s: float,
    upload_ids: list[UUID] | None = None,
    idempotency_key: str | None = None,
    callback_url: str | None = None,
    retry_of: UUID | None = None,
) -> tuple[JobAccepted, bool]:
    """Check the owner's rate, store a job (one statement) and queue it (one Redis call).

    False (with the job) when an idempotency key found the job it made before.
    """
    settings = services.settings
    await services.limiter.check(
        "submit",
        str(owner_id),
        per_min=settings.submit_rate_per_min,
        burst=settings.submit_burst,
        what="submits",
    )
    created = await services.store.create_job(
        owner_id=owner_id,
        job_type=job_type,
        params=params,
        priority=priority,
        delay_s=delay_s,
        estimated_s=await services.estimator.total(job_type, params),
        max_attempts=max_attempts,
        timeout_s=timeout_s,
        max_active=settings.max_active_per_owner,
        upload_ids=upload_ids,
        idempotency_key=idempotency_key,
        callback_url=callback_url,
        retry_of=retry_of,
    )
    if created is None:
        raise TooManyRequests(
            f"at most {settings.max_active_per_owner} active jobs per owner: "
            "wait for one to finish, or cancel one",
            headers={"Retry-After": "5"},
        )
    job, event = created.job, created.event
    accepted = JobAccepted(
        id=str(job.id),
        status=job.status.value,
        status_url=f"/api/jobs/{job.id}",
        ws_url=f"/ws/jobs/{job.id}",
        estimated_seconds=job.estimated_s,
    )
    if event is None:
        return accepted, False
    try:
        await services.queue.enqueue(
            job.id,
            delay_s=delay_s,
            priority=priority,
            owner_id=owner_id,
            announce=dumps(event.wire()),
        )
    except (RedisError, OSError) as exc:
        # the job is committed: the sweep queues it once Redis answers again
        log.warning("job %s: accepted but not queued yet (%s)", job.id, exc)
    metrics.JOBS_SUBMITTED.labels(job.type).inc()
    # the request's access line names the job; a line of its own would double the logging
    name_job(job.id, job.type)
    log.debug("job %s: %s submitted", job.id, job.type)
    return accepted, True


async def job_view(services: Services, job: Job) -> JobOut:
    """The job as the API shows it, with its ETA from the type's history."""
    if job.type not in services.registry:
        return JobOut.of(job)
    eta_s, steps = await services.estimator.remaining(services.registry.get(job.type), job)
    return JobOut.of(job, eta_s=eta_s, step_estimates=steps)


@endpoint(
    "Run a failed or cancelled job again: a new job with its type and input",
    responses={202: JobAccepted, **error_responses(401, 404, 409, 422, 429, 503)},
)
async def retry_job(request: Request) -> Response:
    services, owner_id, old = await owned_job(request)
    if old.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise Conflict(f"job {old.id} is {old.status}: only failed or cancelled jobs are retried")
    job_type = services.registry.get(old.type)
    params = job_type.parse_input(old.input)
    accepted, _ = await _create(
        services,
        owner_id,
        job_type,
        params.model_dump(mode="json"),
        priority=old.priority,
        delay_s=0,
        max_attempts=old.max_attempts,
        timeout_s=old.timeout_s,
        callback_url=old.callback_url,
        retry_of=old.id,
    )
    return model_response(accepted, 202, headers={"Location": accepted.status_url})


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
    query=(
        Query("after", {"type": "integer", "minimum": 0}),
        Query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
    ),
)
async def job_events(request: Request) -> Response:
    services, _, job = await owned_job(request)
    after = int_param(request, "after", 0, 0, 2**62)
    limit = int_param(request, "limit", 1000, 1, 1000)
    events = await services.store.events_after(job.id, after, limit)
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
            status="running" if job.status is JobStatus.RUNNING else "pending",
        ),
        202,
    )


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
    "The owner's jobs, newest first",
    responses={200: JobList, **error_responses(400, 401, 503)},
    query=(STATUS_QUERY, TYPE_QUERY, LIMIT_QUERY),
)
async def list_jobs(request: Request) -> Response:
    services = services_of(request)
    owner_id = await owner_of(request)
    status = status_param(request)
    job_type = request.query_params.get("type") or None
    limit = int_param(request, "limit", 50, 1, 200)
    jobs = await services.store.list_jobs(owner_id, status=status, type=job_type, limit=limit)
    return model_response(JobList(jobs=[await job_view(services, j) for j in jobs]))
