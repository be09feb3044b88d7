"""The HTTP API: sessions, job types, jobs, their events and results."""

from __future__ import annotations

import logging
import secrets
from typing import Any
from uuid import UUID

import orjson
from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from jobcast.bus import publish
from jobcast.errors import BadRequest, Conflict, InvalidInput, NotFound
from jobcast.model import JobStatus, SubmitRequest, dumps
from server.auth import COOKIE_NAME, owner_of
from server.responses import JSONResponse
from server.state import Services

log = logging.getLogger(__name__)

_SESSION_MAX_AGE_S = 365 * 86_400


def services_of(request: Request) -> Services:
    services: Services = request.state.services
    return services


def parse_job_id(raw: str) -> UUID:
    """A job id from the path; a malformed one is a plain 404, like a missing job."""
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound(f"no job {raw[:80]!r}") from None


def int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name} must be a whole number, got {raw[:40]!r}") from None
    if not lo <= value <= hi:
        raise BadRequest(f"query parameter {name} must be between {lo} and {hi}, got {value}")
    return value


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(body).__name__}")
    return body


def validation_details(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors()
    ]


async def create_session(request: Request) -> Response:
    services = services_of(request)
    token = secrets.token_urlsafe(32)
    await services.store.create_owner(token)
    response = JSONResponse({"token": token}, status_code=201)
    response.set_cookie(
        COOKIE_NAME, token, max_age=_SESSION_MAX_AGE_S, httponly=True, samesite="lax",
        secure=request.url.scheme == "https", path="/",
    )
    return response


async def job_types(request: Request) -> Response:
    await owner_of(request)
    registry = services_of(request).registry
    return JSONResponse({"job_types": [t.describe() for t in registry]})


async def submit_job(request: Request) -> Response:
    services = services_of(request)
    owner_id = await owner_of(request)
    body = await json_body(request)
    try:
        submit = SubmitRequest.model_validate(body)
    except ValidationError as exc:
        details = validation_details(exc)
        raise InvalidInput(f"{details[0]['field']}: {details[0]['message']}", details=details) from None
    job_type = services.registry.get(submit.type)
    params = job_type.parse_input(submit.input)
    timeout_s = submit.timeout_seconds or job_type.timeout_s
    if timeout_s > job_type.timeout_s:
        raise InvalidInput(
            f"timeout_seconds: at most {job_type.timeout_s:g} for {job_type.name} jobs, "
            f"got {timeout_s:g}",
            details=[{"field": "timeout_seconds", "message": "over the type's time limit"}],
        )
    job, event = await services.store.create_job(
        owner_id=owner_id, job_type=job_type, params=params.model_dump(mode="json"),
        priority=submit.priority, delay_s=submit.delay_seconds,
        estimated_s=job_type.estimate(params),
        max_attempts=submit.max_attempts or job_type.max_attempts, timeout_s=timeout_s,
    )
    try:
        await services.queue.enqueue(
            job.id, delay_s=submit.delay_seconds, owner_id=owner_id,
            announce=dumps(event.wire()),
        )
    except (RedisError, OSError) as exc:
        # the job is committed: the dispatcher queues it once Redis answers again
        log.warning("job %s: accepted but not queued yet (%s)", job.id, exc)
    log.info("job %s: %s submitted", job.id, job.type)
    return JSONResponse(
        {
            "id": str(job.id),
            "status": str(job.status),
            "status_url": f"/api/jobs/{job.id}",
            "ws_url": f"/ws/jobs/{job.id}",
            "estimated_seconds": job.estimated_s,
        },
        status_code=202,
        headers={"Location": f"/api/jobs/{job.id}"},
    )


async def get_job(request: Request) -> Response:
    services = services_of(request)
    owner_id = await owner_of(request)
    job_id = parse_job_id(request.path_params["job_id"])
    job = await services.store.get_job(job_id, owner_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    headers = {"ETag": job.etag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == job.etag:
        return Response(status_code=304, headers=headers)
    return JSONResponse(job.wire(), headers=headers)


async def job_events(request: Request) -> Response:
    services = services_of(request)
    owner_id = await owner_of(request)
    job_id = parse_job_id(request.path_params["job_id"])
    after = int_param(request, "after", 0, 0, 2**62)
    limit = int_param(request, "limit", 1000, 1, 1000)
    if await services.store.get_job(job_id, owner_id) is None:
        raise NotFound(f"no job {job_id}")
    events = await services.store.events_after(job_id, after, limit)
    return JSONResponse({"events": [e.wire() for e in events]})


async def job_result(request: Request) -> Response:
    services = services_of(request)
    owner_id = await owner_of(request)
    job_id = parse_job_id(request.path_params["job_id"])
    job = await services.store.get_job(job_id, owner_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.status is JobStatus.COMPLETED:
        return JSONResponse({"id": str(job.id), "status": str(job.status), "result": job.result})
    if job.status.final:
        reason = (job.error or {}).get("message") or str(job.status)
        raise Conflict(f"job {job.id} has no result: it {job.status}: {reason}")
    return JSONResponse(
        {"id": str(job.id), "status": str(job.status), "progress": job.progress},
        status_code=202,
    )


async def cancel_job(request: Request) -> Response:
    """Cancel a pending or running job: it ends ``cancelled`` and emits nothing after."""
    services = services_of(request)
    owner_id = await owner_of(request)
    job_id = parse_job_id(request.path_params["job_id"])
    event = await services.store.cancel(job_id, owner_id)
    if event is None:
        job = await services.store.get_job(job_id, owner_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        raise Conflict(f"job {job_id} is already {job.status}")
    try:
        await publish(services.redis, services.settings, event, owner_id)
    except (RedisError, OSError) as exc:
        log.warning("job %s: cancel event not published (%s); NOTIFY carries it", job_id, exc)
    log.info("job %s: cancelled by its owner", job_id)
    return JSONResponse({"id": str(job_id), "status": "cancelled"}, status_code=202)


async def list_jobs(request: Request) -> Response:
    services = services_of(request)
    owner_id = await owner_of(request)
    status = request.query_params.get("status") or None
    if status is not None and status not in JobStatus.__members__.values():
        raise BadRequest(
            f"query parameter status must be one of {', '.join(JobStatus)}, got {status[:40]!r}"
        )
    job_type = request.query_params.get("type") or None
    limit = int_param(request, "limit", 50, 1, 200)
    jobs = await services.store.list_jobs(owner_id, status=status, type=job_type, limit=limit)
    return JSONResponse({"jobs": [j.wire() for j in jobs]})
