"""Creating jobs: ``POST /api/jobs`` and ``POST /api/jobs/{id}/retry``.

Both check the owner's submit rate, store the job in one statement and queue it in
one Redis call; where Redis does not answer, the job is still accepted and the sweep
queues it later (the outbox).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from jobcast import metrics
from jobcast.bus import publish_quietly
from jobcast.concurrency import JobFacts, JobKey, job_keys
from jobcast.errors import Conflict, InvalidInput, TooManyRequests
from jobcast.logs import name_job
from jobcast.model import Debounce, Event, Job, JobStatus, SubmitRequest, dumps
from jobcast.queue import fair_group
from jobcast.registry import JobType
from jobcast.retry import RetryPolicy, install_default
from jobcast.schemas import JobAccepted
from jobcast.store import NewJob
from jobcast.webhooks import check_target
from server.auth import caller_of
from server.job_access import (
    check_about,
    check_access,
    check_submit_rate,
    retry_policy_of,
    timeout_of,
)
from server.jobs import owned_job
from server.openapi import endpoint, error_responses
from server.params import posted
from server.responses import model_response
from server.state import Services

log = logging.getLogger(__name__)


@endpoint(
    "Submit a job: answered at once, the job runs in the background",
    body=SubmitRequest,
    responses={
        202: JobAccepted,
        200: JobAccepted,
        201: JobAccepted,
        **error_responses(400, 401, 403, 413, 422, 429, 503),
    },
)
async def submit_job(request: Request) -> Response:
    services, owner_id, caller, submit = await posted(request, SubmitRequest)
    settings = services.settings
    check_about(submit, caller, settings.metadata_max_bytes)
    job_type = services.registry.get(submit.type)
    check_access(job_type, caller)
    params = job_type.parse_input(submit.input)
    default_retry = install_default(settings.retry_base_s, settings.retry_max_s)
    retry = retry_policy_of(job_type, submit.retry, default_retry)
    timeout_s = timeout_of(job_type, submit)
    callback_url = str(submit.callback_url) if submit.callback_url else None
    if callback_url is not None:
        check_target(callback_url, settings.webhook_host_set)
    upload_ids = [_upload_id(raw) for raw in job_type.uploads(params)]
    debounce = _debounce_of(submit.debounce, settings.debounce_max_s, upload_ids)
    dumped = params.model_dump(mode="json")
    facts = JobFacts(submit.tenant, submit.subject, tuple(submit.tags), dumped)
    keys = job_keys(
        job_type.name,
        job_type.keys,
        facts,
        added=submit.concurrency,
        throttle=submit.throttle,
        submit_keys=job_type.submit_keys,
    )
    accepted, fresh = await _create(
        services,
        owner_id,
        job_type,
        dumped,
        priority=submit.priority,
        delay_s=submit.debounce.seconds if submit.debounce else submit.start_delay_s(),
        max_attempts=submit.max_attempts
        or (retry or job_type.retry or default_retry).max_attempts
        or job_type.max_attempts,
        timeout_s=timeout_s,
        upload_ids=upload_ids,
        retry=retry,
        idempotency_key=submit.idempotency_key,
        callback_url=callback_url,
        draft=submit.draft,
        about=About(submit.subject, submit.tenant, submit.tags, submit.metadata),
        app=caller.is_app,
        debounce=debounce,
        keys=keys,
    )
    if not fresh:
        # the same idempotency_key within 24 h: the job that key made, not a second one
        return model_response(accepted, 200, headers={"Location": accepted.status_url})
    # a draft is stored (201), not queued; any other job is accepted to run (202)
    status_code = 201 if submit.draft else 202
    return model_response(accepted, status_code, headers={"Location": accepted.status_url})


@endpoint(
    "Run a failed or cancelled job again: a new job with its type and input",
    responses={202: JobAccepted, **error_responses(401, 404, 409, 422, 429, 503)},
)
async def retry_job(request: Request) -> Response:
    services, owner_id, old = await owned_job(request)
    if old.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise Conflict(f"job {old.id} is {old.status}: only failed or cancelled jobs are retried")
    job_type = services.registry.get(old.type)
    caller = await caller_of(request)
    check_access(job_type, caller)
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
        about=About(old.subject, old.tenant, list(old.tags), None),
        app=caller.is_app,
        retry=await services.store.retry_policy(old.id),
        keys=await services.store.job_keys(old.id),
    )
    return model_response(accepted, 202, headers={"Location": accepted.status_url})


@dataclass(frozen=True)
class About:
    """Whom a job is for and the app's own data about it, as given at submit."""

    subject: str | None = None
    tenant: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None


def _upload_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise InvalidInput(
            f"input: {raw[:40]!r} is not an upload id",
            details=[{"field": "input", "message": "not an upload id"}],
        ) from None


def _debounce_of(
    wanted: Debounce | None, cap_s: float, upload_ids: list[UUID]
) -> tuple[str, float] | None:
    """A submit's debounce key and the longest its job may be held back, within the cap."""
    if wanted is None:
        return None
    for name, value in (("seconds", wanted.seconds), ("max_seconds", wanted.max_seconds)):
        if value is not None and value > cap_s:
            raise InvalidInput(
                f"debounce.{name}: at most {cap_s:g} s (JOBCAST_DEBOUNCE_MAX_S), got {value:g}",
                details=[{"field": f"debounce.{name}", "message": "over the debounce cap"}],
            )
    if upload_ids:
        raise InvalidInput(
            "a job with uploads is not debounced: each upload belongs to one submit",
            details=[{"field": "debounce", "message": "not with uploads"}],
        )
    return wanted.key, min(wanted.longest_s(), cap_s)


async def _joined(services: Services, job: Job, event: Event) -> None:
    """A debounced submit joined a job not started yet: its watchers hear of the new input
    and start time, and the queue holds it back until then."""
    await publish_quietly(services.redis, services.settings, services.store, event)
    # both times are Postgres's: this server's clock does not shift the start
    delay_s = max(0.0, (job.run_at - event.at).total_seconds())
    try:
        await services.queue.reschedule(job.id, delay_s=delay_s, priority=job.priority)
    except (RedisError, OSError) as exc:
        # it may start at its old time, with the input it has then; or the outbox queues it
        log.warning("job %s: its new start time not queued (%s)", job.id, exc)
    metrics.JOBS_DEBOUNCED.labels(job.type).inc()
    log.debug("job %s: a debounced submit joined it", job.id)


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
    draft: bool = False,
    about: About | None = None,
    app: bool = False,
    retry: RetryPolicy | None = None,
    debounce: tuple[str, float] | None = None,
    keys: list[JobKey] | None = None,
) -> tuple[JobAccepted, bool]:
    """Check the owner's rate, store a job (one statement, shared with the submits that
    came meanwhile: ``server/submits.py``) and queue it (one Redis call).

    False (with the job) when an idempotency key found the job it made before. An app
    key (``app``) submits for all its users: its cap on active jobs is its own, and its
    rate is not limited (the operator who made the key trusts the backend that holds it).
    """
    settings = services.settings
    about = about or About()
    await check_submit_rate(services, owner_id, app)
    max_active = settings.app_key_max_active if app else settings.max_active_per_owner
    new = NewJob(
        owner_id=owner_id,
        job_type=job_type,
        params=params,
        priority=priority,
        delay_s=delay_s,
        estimated_s=await services.estimator.total(job_type, params),
        max_attempts=max_attempts,
        timeout_s=timeout_s,
        max_active=max_active,
        upload_ids=upload_ids,
        idempotency_key=idempotency_key,
        callback_url=callback_url,
        retry_of=retry_of,
        draft=draft,
        subject=about.subject,
        tenant=about.tenant,
        tags=about.tags,
        metadata=about.metadata,
        debounce=debounce,
        keys=keys,
        fair_window=settings.fair_window,
    )
    created = await services.submits.create(new)
    if created is None:
        raise TooManyRequests(
            f"at most {max_active} active jobs per {'app key' if app else 'owner'}: "
            "wait for one to finish, or cancel one",
            retry_after_s=5,
        )
    job, event = created.job, created.event
    if retry is not None and event is not None and not created.joined:  # before it is queued
        await services.store.set_retry_policy(job.id, retry)
    accepted = JobAccepted(
        id=str(job.id),
        status=job.status.value,
        status_url=f"/api/jobs/{job.id}",
        ws_url=f"/ws/jobs/{job.id}",
        estimated_seconds=job.estimated_s,
    )
    if event is None:
        return accepted, False
    if created.joined:
        await _joined(services, job, event)
        return accepted, True
    if draft:  # stored and shown, not queued until started
        metrics.JOBS_SUBMITTED.labels(job.type).inc()
        name_job(job.id, job.type)
        return accepted, True
    try:
        if job.waiting_reason is not None:  # parked: its tenant's share of the queue is full
            await services.queue.announce(owner_id, dumps(event.wire()))
        else:
            await services.queue.enqueue(
                job.id,
                delay_s=delay_s,
                priority=priority,
                owner_id=owner_id,
                announce=dumps(event.wire()),
                group=fair_group(job.tenant, owner_id) if settings.fair_window else None,
            )
    except (RedisError, OSError) as exc:
        # the job is committed: the sweep queues it once Redis answers again
        log.warning("job %s: accepted but not queued yet (%s)", job.id, exc)
    metrics.JOBS_SUBMITTED.labels(job.type).inc()
    # the request's access line names the job; a line of its own would double the logging
    name_job(job.id, job.type)
    log.debug("job %s: %s submitted", job.id, job.type)
    return accepted, True
