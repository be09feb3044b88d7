"""The bodies of the HTTP API, as pydantic models.

The handlers build their answers from these models and the OpenAPI document is
generated from them, so the contract is written once. The client reads the same
models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobcast.model import Job

JobStatusName = Literal[
    "pending", "running", "completed", "failed", "cancelled", "waiting", "paused", "draft"
]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class ErrorDetail(Model):
    field: str = Field(description="The field at fault, dotted: input.duration, jobs.2.type.")
    message: str


class ErrorInfo(Model):
    code: str = Field(description="Machine-readable: bad_request, unauthorized, not_found, ...")
    message: str = Field(description="Readable; quotes the offending value or field.")
    details: list[ErrorDetail] | None = Field(None, description="The fields at fault (a 422).")


class ErrorBody(Model):
    error: ErrorInfo


class SessionCreated(Model):
    token: str = Field(description="The owner token; also set as an HttpOnly cookie.")
    webhook_secret: str = Field(description="Signs this owner's completion webhooks.")


class StepOut(Model):
    name: str = Field(description="As the job type declares it (run-time steps: parent.n).")
    title: str = Field(description="What people see.")
    weight: float = Field(description="Its share of the job's progress, relative to the others.")
    status: Literal["waiting", "running", "completed", "failed", "cancelled"] = Field(
        description="A step still open when its job ends is closed with it (cancelled, failed)."
    )
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None = Field(description="Once it ended: how long it ran.")
    estimate_s: float | None = Field(None, description="Expected seconds for the whole step.")
    attempts: int = Field(0, description="Times the step was started, over all attempts.")
    checkpointed: bool = Field(
        False, description="It completed and its result is stored: later attempts skip it."
    )
    parent: str | None = Field(
        None, description="Added at run time: the declared step it belongs to (else null)."
    )
    share: float | None = Field(
        None, description="Added at run time: its share (0-1) of its parent step's weight."
    )
    counters: dict[str, Any] | None = Field(
        None, description='Added at run time: {"done": n, "total": m} as its code counts.'
    )
    metadata: dict[str, Any] | None = Field(None, description="The step's own metadata.")
    error: dict[str, Any] | None = Field(
        None, description="Its own error (type, message) when it failed while the job went on."
    )


class JobErrorOut(Model):
    """Why a job failed (or why its last attempt did): readable, never a traceback."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str = Field(description="The exception's class name, e.g. ConnectError.")
    category: str = Field(description="transient, permanent or unknown: whether it is retried.")
    message: str = Field(description="Readable; says where and what went wrong.")


class ChildOut(Model):
    id: str
    type: str
    status: JobStatusName
    progress: float


class DeliveryOut(Model):
    attempt: int
    status: Literal["pending", "delivered", "retrying", "failed"]
    status_code: int | None
    error: str | None
    at: datetime
    tried_at: datetime | None = Field(None, description="When this try was sent; null: not yet.")
    next_at: datetime | None = Field(
        None, description="When the next try is due, after this one failed; null: none."
    )


class WebhookOut(Model):
    url: str
    deliveries: list[DeliveryOut]


class JobOut(Model):
    """A job as it stands: ``GET /api/jobs/{id}``, lists, and the websocket's snapshot."""

    id: str
    type: str = Field(description="Its job type.")
    status: JobStatusName
    progress: float = Field(
        ge=0, le=100, description="Percent, the weighted sum of its steps'; never goes back."
    )
    step: str | None = Field(description="The step running now, or the last one.")
    message: str | None = Field(description="The last message its code gave.")
    steps: list[StepOut]
    result: Any = Field(None, description="Once completed: what its code returned.")
    error: JobErrorOut | None = Field(description="Once failed, or while waiting for a retry.")
    attempts: int = Field(description="Attempts started so far.")
    max_attempts: int = Field(description="Attempts before it fails.")
    seq: int = Field(description="The seq of the job's last event.")
    priority: int = Field(description="-10 to 10; higher runs first.")
    input: dict[str, Any] = Field(description="As submitted, checked by its type.")
    estimated_seconds: float | None = Field(description="At submit: the seconds it should take.")
    timeout_seconds: float = Field(description="Seconds one attempt may take.")
    run_at: datetime = Field(description="When it runs (or ran) at the earliest.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None = Field(description="Null until completed, failed or cancelled.")
    parent_id: str | None = Field(None, description="The job whose code spawned this one.")
    children: list[ChildOut] | None = Field(
        None, description="Jobs this one spawned (in the view of one job; null in lists)."
    )
    result_expired_at: datetime | None = Field(
        None, description="When its result was dropped (the type's result_ttl_s passed)."
    )
    webhook: WebhookOut | None = Field(
        None, description="With a callback_url: the URL and each delivery's attempt and outcome."
    )
    retry_of: str | None = Field(
        None, description="The job this one retries (POST /api/jobs/{id}/retry), else null."
    )
    eta_seconds: float | None = Field(
        None,
        description="Seconds left, from this type's history (before any, its steps' "
        "declared estimates); null once final.",
    )
    input_request: dict[str, Any] | None = Field(
        None,
        description="While waiting: the question a step asks its owner: step, prompt, "
        "schema (JSON Schema of the answer), expires_at, on_timeout (fail|default).",
    )
    pause_requested: bool = Field(
        False, description="A running job on its way to paused, at its next step boundary."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="The job's live metadata, as its code set it."
    )
    streams: dict[str, str] | None = Field(
        None,
        description="Each named stream's text so far (in the view of one job; null in lists).",
    )
    subject: str | None = Field(None, description="The app's user the job is for (app keys).")
    tenant: str | None = Field(None, description="The app's organisation (app keys).")
    tags: list[str] = Field(default_factory=list, description="The app's labels of the job.")
    stuck_since: datetime | None = Field(
        None,
        description="A pending job past its type's pending limit (a type that reports rather "
        "than fails): since when it is reported stuck; null otherwise.",
    )
    waiting_reason: str | None = Field(
        None, description="A pending job held back by a concurrency key or throttle: why."
    )
    label: str | None = Field(default=None, description="What tells it apart (a site, a file).")

    @classmethod
    def of(
        cls,
        job: Job,
        *,
        eta_s: float | None = None,
        step_estimates: dict[str, float] | None = None,
        label: str | None = None,
    ) -> JobOut:
        estimates = step_estimates or {}
        return cls(
            id=str(job.id),
            type=job.type,
            status=job.status.value,
            progress=round(job.progress, 2),
            step=job.step,
            message=job.message,
            steps=[
                StepOut(
                    name=s.name,
                    title=s.title,
                    weight=s.weight,
                    status=s.status.value,
                    started_at=s.started_at,
                    finished_at=s.finished_at,
                    duration_ms=s.duration_ms,
                    estimate_s=estimates.get(s.name),
                    attempts=s.attempts,
                    checkpointed=s.status.value == "completed" and s.parent is None,
                    parent=s.parent,
                    share=s.share,
                    counters=s.counters,
                    metadata=s.metadata,
                    error=s.error,
                )
                for s in job.steps
            ],
            result=job.result,
            error=JobErrorOut.model_validate(job.error) if job.error else None,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            seq=job.seq,
            priority=job.priority,
            input=job.input,
            estimated_seconds=job.estimated_s,
            timeout_seconds=job.timeout_s,
            run_at=job.run_at,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            parent_id=str(job.parent_id) if job.parent_id else None,
            children=None
            if job.children is None
            else [
                ChildOut(
                    id=str(c["id"]), type=c["type"], status=c["status"], progress=c["progress"]
                )
                for c in job.children
            ],
            result_expired_at=job.result_expired_at,
            retry_of=str(job.retry_of) if job.retry_of else None,
            eta_seconds=eta_s,
            input_request=job.input_request,
            pause_requested=job.pause_requested,
            metadata=job.metadata,
            streams=job.streams,
            subject=job.subject,
            tenant=job.tenant,
            tags=list(job.tags),
            label=label,
            stuck_since=job.stuck_since,
            waiting_reason=job.waiting_reason,
            webhook=None
            if job.callback_url is None
            else WebhookOut(
                url=job.callback_url,
                deliveries=[DeliveryOut.model_validate(d) for d in job.deliveries or ()],
            ),
        )


class StatusChanged(Model):
    """The answer to an input, a pause, a resume or a start: the job's status now."""

    id: str
    status: JobStatusName
    step: str | None = Field(None, description="The step an answer was given to.")
    pause_requested: bool = False


class JobList(Model):
    jobs: list[JobOut]
    next_cursor: str | None = Field(
        None, description="Give it as cursor= for the next page; null on the last."
    )


class JobAccepted(Model):
    """The answer to a submit (and to a retry): where to follow the job."""

    id: str
    status: JobStatusName = Field(description="pending; draft for a draft.")
    status_url: str = Field(description="Its GET /api/jobs/{id}, also the Location header.")
    ws_url: str = Field(description="Its websocket: the snapshot, then every event.")
    estimated_seconds: float | None = Field(description="From its type's history, or null.")


class EventOut(Model):
    """One event; the fields beside these depend on ``kind`` (see docs/api.md)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: Literal["event"]
    job_id: str
    seq: int = Field(ge=1)
    kind: Literal[
        "status", "step", "progress", "input_required", "input", "resumed", "metadata", "stream"
    ]
    # kept as the text the event was sent with, so every channel carries the same bytes
    at: str = Field(json_schema_extra={"format": "date-time"})


class EventList(Model):
    events: list[EventOut]


class ResultOut(Model):
    id: str
    status: Literal["completed"]
    result: Any = None


class NotFinished(Model):
    id: str
    status: Literal["pending", "running", "waiting", "paused", "draft"]
    progress: float


class Cancelled(Model):
    id: str
    status: Literal["cancelled"]


class StepDescription(Model):
    name: str
    title: str
    weight: float
    estimate_s: float | None = None
    max_attempts: int | None = None


class JobTypeOut(Model):
    type: str
    title: str
    steps: list[StepDescription]
    input_schema: dict[str, Any]
    max_attempts: int
    timeout_s: float
    concurrency: int | None = Field(None, description="At most this many run at once.")
    keys: list[dict[str, Any]] = Field(
        default_factory=list, description="Its concurrency keys and throttles (key, limit)."
    )
    submit_keys: bool = Field(True, description="Whether a submit may add keys.")
    result_ttl_s: float = Field(description="How long a result is kept.")
    access: Literal["anyone", "app"] = Field(
        "anyone", description="Who may submit it: anyone, or app keys only."
    )
    retry: dict[str, Any] | None = Field(
        None, description="The wait between attempts (null: the install's default)."
    )
    pending_limit_s: float | None = Field(
        None, description="How long a due job may wait for a worker slot (null: no limit)."
    )
    on_pending_limit: Literal["fail", "report"] = Field(
        "fail", description="Past that limit: fail the job, or report it as stuck."
    )
    label_field: str | None = Field(
        None, description="The input field that tells its jobs apart (null: none declared)."
    )


class JobTypes(Model):
    job_types: list[JobTypeOut]


class Health(Model):
    status: Literal["ok"]


class Readiness(Model):
    status: Literal["ready", "not ready"]
    checks: dict[str, str]
    # each background task's state: running, restarting (it failed; 503 until it runs again)
    tasks: dict[str, str] = {}
