"""Batches: ``POST /api/jobs/batch`` (up to 1,000 jobs at once) and ``GET /api/batches/{id}``.

A batch is checked whole before anything is stored: the first job at fault is named by
its index and field (``jobs.3.input.duration``), and nothing of the batch is kept. Then
every job is stored in one transaction and queued in one Redis round trip; where Redis
does not answer, the jobs are accepted all the same and the sweep queues them (the
outbox). An idempotency key works per job: a job its key made before is the batch's as
it stands.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from jobcast import metrics
from jobcast.concurrency import JobFacts, job_keys
from jobcast.errors import Forbidden, InvalidInput, NotFound, Refused
from jobcast.logs import name_job
from jobcast.model import JobStatus, SubmitRequest, dumps
from jobcast.queue import Queued, fair_group
from jobcast.store import BatchJob, BatchJobState
from jobcast.webhooks import check_target
from server.auth import Caller, owner_of
from server.job_access import check_about, check_access, check_submit_rate, timeout_of
from server.openapi import endpoint, error_responses
from server.params import posted, services_of, validation_details
from server.responses import model_response
from server.state import Services

log = logging.getLogger(__name__)

MAX_BATCH = 1000


class BatchRequest(BaseModel):
    """The body of ``POST /api/jobs/batch``: each job as ``POST /api/jobs`` takes it."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class BatchJobOut(BaseModel):
    id: str
    status: str
    status_url: str
    ws_url: str


class BatchAccepted(BaseModel):
    batch_id: str
    status_url: str
    ws_url: str
    jobs: list[BatchJobOut]


class BatchJobView(BaseModel):
    id: str
    type: str | None
    status: str | None = Field(description="null: the job was deleted since.")
    progress: float
    step: str | None
    message: str | None
    error: dict[str, Any] | None
    seq: int | None = Field(
        description="The job's last event: an event at or below it is counted here already."
    )


class BatchView(BaseModel):
    id: str
    size: int
    counts: dict[str, int] = Field(description="Jobs by status.")
    progress: float = Field(description="0-100: a finished job counts whole.")
    finished: bool
    jobs: list[BatchJobView]


def _at(index: int, exc: Refused) -> InvalidInput:
    """An error of one job of the batch, its fields named from the batch's body."""
    details = [{**d, "field": f"jobs.{index}.{d['field']}"} for d in (exc.details or [])] or [
        {"field": f"jobs.{index}", "message": exc.message}
    ]
    return InvalidInput(f"jobs.{index}: {exc.message}", details=details)


def _checked(services: Services, caller: Caller, index: int, raw: Any) -> BatchJob:
    settings = services.settings
    try:
        submit = SubmitRequest.model_validate(raw)
    except ValidationError as exc:
        details = validation_details(exc)
        raise _at(index, InvalidInput(details[0]["message"], details=details)) from None
    try:
        check_about(submit, caller, settings.metadata_max_bytes)
        if submit.draft:
            raise InvalidInput(
                "a batch's jobs are queued; submit drafts one at a time",
                details=[{"field": "draft", "message": "not in a batch"}],
            )
        job_type = services.registry.get(submit.type)
        check_access(job_type, caller)
        if submit.retry is not None:
            raise InvalidInput(
                "a batch's jobs take their type's retry policy; submit one at a time to change it",
                details=[{"field": "retry", "message": "not in a batch"}],
            )
        if submit.debounce is not None:
            raise InvalidInput(
                "a batch's jobs are not debounced; submit debounced jobs one at a time",
                details=[{"field": "debounce", "message": "not in a batch"}],
            )
        try:
            params = job_type.parse_input(submit.input)
        except InvalidInput as exc:  # its fields are the input's own
            fields = [{**d, "field": f"input.{d['field']}"} for d in exc.details or []]
            raise InvalidInput(exc.message, details=fields) from None
        if job_type.uploads(params):
            raise InvalidInput(
                "jobs with uploads are submitted one at a time",
                details=[{"field": "input", "message": "uploads are not taken in a batch"}],
            )
        timeout_s = timeout_of(job_type, submit)
        callback_url = str(submit.callback_url) if submit.callback_url else None
        if callback_url is not None:
            check_target(callback_url, settings.webhook_host_set)
        dumped = params.model_dump(mode="json")
        keys = job_keys(
            job_type.name,
            job_type.keys,
            JobFacts(submit.tenant, submit.subject, tuple(submit.tags), dumped),
            added=submit.concurrency,
            throttle=submit.throttle,
            submit_keys=job_type.submit_keys,
        )
    except InvalidInput as exc:
        raise _at(index, exc) from None
    except Forbidden as exc:
        raise Forbidden(f"jobs.{index}: {exc.message}") from None
    return BatchJob(
        job_type=job_type,
        params=dumped,
        priority=submit.priority,
        delay_s=submit.start_delay_s(),
        max_attempts=submit.max_attempts
        or (job_type.retry.max_attempts if job_type.retry else None)
        or job_type.max_attempts,
        timeout_s=timeout_s,
        idempotency_key=submit.idempotency_key,
        callback_url=callback_url,
        subject=submit.subject,
        tenant=submit.tenant,
        tags=submit.tags,
        metadata=submit.metadata,
        keys=keys,
    )


@endpoint(
    "Submit up to 1,000 jobs at once: all are stored, or none",
    body=BatchRequest,
    responses={202: BatchAccepted, **error_responses(400, 401, 403, 413, 422, 429, 503)},
    tags=("batches",),
)
async def submit_batch(request: Request) -> Response:
    services, owner_id, caller, asked = await posted(request, BatchRequest)
    settings = services.settings
    jobs = [_checked(services, caller, i, raw) for i, raw in enumerate(asked.jobs)]
    keys: dict[str, int] = {}
    for i, job in enumerate(jobs):
        if job.idempotency_key is not None and keys.setdefault(job.idempotency_key, i) != i:
            raise _at(
                i,
                InvalidInput(
                    f"idempotency_key: the same as jobs.{keys[job.idempotency_key]}'s",
                    details=[{"field": "idempotency_key", "message": "repeated in the batch"}],
                ),
            )
    await check_submit_rate(services, owner_id, caller.is_app)
    estimates: dict[str, float] = {}  # by type and input, the estimator reads history once
    for i, job in enumerate(jobs):
        key = f"{job.job_type.name}:{dumps(job.params).decode()}"
        if key not in estimates:
            estimates[key] = await services.estimator.total(job.job_type, job.params)
        jobs[i] = BatchJob(**{**job.__dict__, "estimated_s": estimates[key]})
    cap = settings.app_key_max_active if caller.is_app else settings.max_active_per_owner
    batch_id, made = await services.store.create_batch(
        owner_id, jobs, max_active=cap, fair_window=settings.fair_window
    )
    fresh = [  # a job made parked (its tenant's share of the queue full) is queued later
        Queued(
            c.job.id,
            spec.delay_s,
            spec.priority,
            owner_id,
            dumps(c.event.wire()),
            fair_group(c.job.tenant, owner_id) if settings.fair_window else None,
        )
        for c, spec in zip(made, jobs, strict=True)
        if c.event is not None and c.job.waiting_reason is None
    ]
    try:
        await services.queue.enqueue_many(fresh)
    except (RedisError, OSError) as exc:
        # the jobs are committed: the sweep queues them once Redis answers again
        log.warning("batch %s: %d jobs accepted but not queued yet (%s)", batch_id, len(fresh), exc)
    for created in made:
        if created.event is not None:
            metrics.JOBS_SUBMITTED.labels(created.job.type).inc()
    name_job(batch_id, "batch")
    accepted = BatchAccepted(
        batch_id=str(batch_id),
        status_url=f"/api/batches/{batch_id}",
        ws_url=f"/ws/batches/{batch_id}",
        jobs=[
            BatchJobOut(
                id=str(c.job.id),
                status=c.job.status.value,
                status_url=f"/api/jobs/{c.job.id}",
                ws_url=f"/ws/jobs/{c.job.id}",
            )
            for c in made
        ],
    )
    return model_response(accepted, 202, headers={"Location": accepted.status_url})


def batch_view(batch_id: UUID, states: list[BatchJobState]) -> BatchView:
    counts: dict[str, int] = {}
    done = 0.0
    for state in states:
        status = state.status or "deleted"
        counts[status] = counts.get(status, 0) + 1
        final = state.status is None or JobStatus(state.status).final
        done += 100.0 if final else state.progress
    return BatchView(
        id=str(batch_id),
        size=len(states),
        counts=counts,
        progress=round(done / len(states), 2),
        finished=all(s.status is None or JobStatus(s.status).final for s in states),
        jobs=[BatchJobView(**{**s.__dict__, "id": str(s.id)}) for s in states],
    )


async def batch_states(
    services: Services, raw_id: str, owner_id: UUID
) -> tuple[UUID, list[BatchJobState]]:
    """A batch's jobs as they stand; NotFound for another owner's batch, as for none."""
    try:
        batch_id = UUID(raw_id)
    except ValueError:
        raise NotFound("no such batch") from None
    states = await services.store.batch_jobs(batch_id, owner_id)
    if states is None:
        raise NotFound("no such batch")
    return batch_id, states


@endpoint(
    "A batch: its jobs by status, overall progress, and each job's state",
    responses={200: BatchView, **error_responses(401, 403, 404, 503)},
    tags=("batches",),
)
async def get_batch(request: Request) -> Response:
    services = services_of(request)
    owner_id = await owner_of(request)
    batch_id, states = await batch_states(services, request.path_params["batch_id"], owner_id)
    return model_response(batch_view(batch_id, states))
