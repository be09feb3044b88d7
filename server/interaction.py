"""A person in the loop, pause and drafts: the calls that move a job that holds no worker.

``POST /api/jobs/{id}/input`` answers a waiting job's question (checked against its
JSON Schema: a 422 names the field at fault); ``/pause`` and ``/resume`` stop a job at
a step boundary and queue it again; ``PATCH /api/jobs/{id}`` and ``/start`` edit and
start a draft. Each is one statement with its event; whatever makes a job pending
queues it in one Redis call, and where Redis does not answer the sweep queues it later.
Another owner's job is a plain 404, as everywhere.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from jobcast.bus import publish_quietly
from jobcast.errors import Conflict, InvalidInput, NotFound, TooManyRequests
from jobcast.model import AnswerRequest, DraftEdit, Event, Job, JobStatus
from jobcast.questions import answer_problems
from jobcast.schemas import JobOut, StatusChanged
from server.jobs import job_view, owned_job
from server.openapi import endpoint, error_responses
from server.params import body_model, json_body
from server.responses import model_response
from server.state import Services

log = logging.getLogger(__name__)


def _body_of(raw: dict[str, Any], model: type[AnswerRequest] | type[DraftEdit]) -> Any:
    return body_model(model, raw)


async def _announce(services: Services, event: Event) -> None:
    await publish_quietly(services.redis, services.settings, services.store, event)


async def _queue(services: Services, job: Job, event: Event) -> None:
    """Announce the event of a job that became pending, and queue it (the sweep does, if
    Redis does not answer)."""
    await _announce(services, event)
    try:
        await services.queue.requeue(job.id, priority=job.priority)
    except (RedisError, OSError) as exc:
        log.warning("job %s: pending again but not queued yet (%s); the sweep will", job.id, exc)


def _accepted(job_id: UUID, status: JobStatus, **extra: Any) -> Response:
    return model_response(StatusChanged(id=str(job_id), status=status.value, **extra), 202)


@endpoint(
    "Answer the question a waiting job's step asks: it goes on at that step",
    body=AnswerRequest,
    responses={202: StatusChanged, **error_responses(400, 401, 404, 409, 413, 422, 503)},
)
async def answer_input(request: Request) -> Response:
    services, owner_id, job = await owned_job(request)
    body = _body_of(await json_body(request), AnswerRequest)
    if job.status is not JobStatus.WAITING or job.input_request is None:
        raise Conflict(f"job {job.id} is {job.status}: it is not waiting for input")
    question = job.input_request
    if body.step is not None and body.step != question["step"]:
        raise Conflict(
            f"job {job.id} waits for an answer to step {question['step']!r}, "
            f"not {body.step!r} (answered already, or it asks nothing)"
        )
    problems = answer_problems(question["schema"], body.answer)
    if problems:
        first = problems[0]
        raise InvalidInput(f"{first['field']}: {first['message']}", details=problems)
    event = await services.store.answer_input(
        job.id, owner_id, step=question["step"], answer=body.answer
    )
    if event is None:  # answered, cancelled or expired since it was read
        raise Conflict(f"job {job.id}: the question of step {question['step']!r} is closed")
    await _queue(services, job, event)
    log.info("job %s: step %s answered by its owner", job.id, question["step"])
    return _accepted(job.id, JobStatus.PENDING, step=question["step"])


@endpoint(
    "Pause a job: at once if it has not started, else at its next step boundary",
    responses={202: StatusChanged, **error_responses(401, 404, 409, 503)},
)
async def pause_job(request: Request) -> Response:
    services, owner_id, job = await owned_job(request)
    paused = await services.store.pause(job.id, owner_id)
    if isinstance(paused, Event):
        await _announce(services, paused)
        log.info("job %s: paused before it started", job.id)
        return _accepted(job.id, JobStatus.PAUSED)
    if not paused:
        raise Conflict(f"job {job.id} is {job.status}: only pending or running jobs pause")
    log.info("job %s: pause asked for; it stops at its next step boundary", job.id)
    return _accepted(job.id, JobStatus.RUNNING, pause_requested=True)


@endpoint(
    "Resume a paused job from its checkpoint (or withdraw a pause not yet reached)",
    responses={202: StatusChanged, **error_responses(401, 404, 409, 503)},
)
async def resume_job(request: Request) -> Response:
    services, owner_id, job = await owned_job(request)
    resumed = await services.store.resume(job.id, owner_id)
    if isinstance(resumed, Event):
        await _queue(services, job, resumed)
        log.info("job %s: resumed by its owner", job.id)
        return _accepted(job.id, JobStatus.PENDING)
    if not resumed:
        raise Conflict(f"job {job.id} is {job.status}: only a paused job resumes")
    return _accepted(job.id, JobStatus.RUNNING)


@endpoint(
    "Replace a draft's input (checked by its type)",
    body=DraftEdit,
    responses={200: JobOut, **error_responses(400, 401, 404, 409, 413, 422, 503)},
)
async def edit_draft(request: Request) -> Response:
    services, owner_id, job = await owned_job(request)
    body = _body_of(await json_body(request), DraftEdit)
    if job.status is not JobStatus.DRAFT:
        raise Conflict(f"job {job.id} is {job.status}: only a draft's input can be changed")
    job_type = services.registry.get(job.type)
    params = job_type.parse_input(body.input).model_dump(mode="json")
    estimated_s = await services.estimator.total(job_type, params)
    event = await services.store.edit_draft(
        job.id, owner_id, params=params, estimated_s=estimated_s
    )
    if event is None:
        raise Conflict(f"job {job.id} is no longer a draft")
    await _announce(services, event)
    edited = await services.store.get_job(job.id, owner_id)
    if edited is None:
        raise NotFound("no such job")
    return model_response(await job_view(services, edited))


@endpoint(
    "Start a draft: it is queued",
    responses={202: StatusChanged, **error_responses(401, 404, 409, 429, 503)},
)
async def start_draft(request: Request) -> Response:
    services, owner_id, job = await owned_job(request)
    if job.status is not JobStatus.DRAFT:
        raise Conflict(f"job {job.id} is {job.status}: only a draft is started")
    cap = services.settings.max_active_per_owner
    event = await services.store.start_draft(job.id, owner_id, cap=cap)
    if event is None:
        now = await services.store.get_job(job.id, owner_id)
        if now is None:
            raise NotFound("no such job")
        if now.status is not JobStatus.DRAFT:
            raise Conflict(f"job {job.id} is {now.status}: only a draft is started")
        raise TooManyRequests(
            f"at most {cap} active jobs per owner: wait for one to finish, or cancel one",
            retry_after_s=5,
        )
    await _queue(services, job, event)
    log.info("job %s: draft started", job.id)
    return _accepted(job.id, JobStatus.PENDING)
