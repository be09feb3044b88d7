"""The job, step and event types shared by the server, the workers and clients.

Event formats are defined here once: ``Event.wire()`` is what websockets, the
``/events`` endpoint and Redis pub/sub carry.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from jobcast.concurrency import MAX_KEYS_PER_JOB, KeyLimit, ThrottleLimit
from jobcast.retry import RetryPolicy

if TYPE_CHECKING:
    from jobcast.queue import Queued


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # a step waits for a person's answer: no worker slot, no arq job, no cap
    WAITING = "waiting"
    # stopped by its owner at a step boundary (or before it started); resumes from checkpoints
    PAUSED = "paused"
    # stored, its input still editable, not queued until started
    DRAFT = "draft"

    @property
    def final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
# not finished, and holding no worker: counted against no cap, never queued by the sweep
PARKED_STATUSES = frozenset({JobStatus.WAITING, JobStatus.PAUSED, JobStatus.DRAFT})


class StepState(enum.StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # open when its job was cancelled


class EventKind(enum.StrEnum):
    STATUS = "status"
    STEP = "step"
    PROGRESS = "progress"
    INPUT_REQUIRED = "input_required"  # a step asks a person: step, prompt, schema, expires_at
    INPUT = "input"  # the answer, and who gave it
    RESUMED = "resumed"  # an attempt resumed from checkpoints: the step it resumed at
    METADATA = "metadata"
    STREAM = "stream"


def dumps(value: Any) -> bytes:
    """JSON as jobcast writes it everywhere (UUIDs and datetimes included)."""
    return orjson.dumps(value, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Event:
    """One persisted change of a job. ``seq`` is gap-free per job, starting at 1."""

    job_id: UUID
    seq: int
    kind: EventKind
    at: datetime
    data: dict[str, Any]
    # whose job, and of what type: where status events go, and metrics labels
    # (not part of the event itself)
    owner_id: UUID | None = None
    job_type: str | None = None

    def wire(self) -> dict[str, Any]:
        return {
            "type": "event",
            **self.data,
            "job_id": str(self.job_id),
            "seq": self.seq,
            "kind": str(self.kind),
            "at": self.at.isoformat(),
        }

    @property
    def final(self) -> bool:
        return self.kind is EventKind.STATUS and JobStatus(self.data["status"]).final


@dataclass(frozen=True, slots=True)
class StepView:
    name: str
    title: str
    weight: float
    status: StepState
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    # times started over all the job's attempts
    attempts: int = 0
    # a step added at run time: the declared step it belongs to, its share of that step's
    # weight, its counters ({"done", "total"}), metadata, and its own error
    parent: str | None = None
    share: float | None = None
    counters: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def etag_of(job_id: UUID, seq: int) -> str:
    """A job view's ETag: it changes with every event of the job."""
    return f'W/"{job_id}-{seq}"'


@dataclass(frozen=True, slots=True)
class Job:
    """A job as the API shows it: the row of ``jobs`` with its steps."""

    id: UUID
    owner_id: UUID
    type: str
    input: dict[str, Any]
    status: JobStatus
    priority: int
    progress: float
    step: str | None
    message: str | None
    result: Any
    error: dict[str, Any] | None
    attempts: int
    max_attempts: int
    seq: int
    estimated_s: float | None
    timeout_s: float
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    parent_id: UUID | None = None
    callback_url: str | None = None
    result_expired_at: datetime | None = None
    retry_of: UUID | None = None
    # a running job on its way to paused (at its next step boundary)
    pause_requested: bool = False
    # while waiting: the open question (step, prompt, schema, expires_at, on_timeout)
    input_request: dict[str, Any] | None = None
    # the app's live key-value data about the job, set by its code
    metadata: dict[str, Any] = field(default_factory=dict)
    # read only where one job is shown: each stream's text so far
    streams: dict[str, str] | None = None
    # whom the job is for, in the app's words (given with an app key), and the app's tags
    subject: str | None = None
    tenant: str | None = None
    tags: tuple[str, ...] = ()
    # pending past its type's pending limit, reported (not failed): since when
    stuck_since: datetime | None = None
    # a pending job held back by a concurrency key or throttle: why it waits
    waiting_reason: str | None = None
    # the file names of the uploads it reads, by upload id, and their bytes together (None:
    # not read by the statement that read the job)
    upload_names: dict[str, str] | None = None
    upload_bytes: int | None = None
    steps: tuple[StepView, ...] = field(default=())
    # read only where one job is shown: its children and its webhook tries
    children: tuple[dict[str, Any], ...] | None = None
    deliveries: tuple[dict[str, Any], ...] | None = None

    @property
    def etag(self) -> str:
        return etag_of(self.id, self.seq)


@dataclass(frozen=True, slots=True)
class StepCheckpoint:
    """Where a step of a job stands when an attempt starts."""

    name: str
    completed: bool
    result: Any
    answered: bool
    answer: Any


@dataclass(frozen=True, slots=True)
class Claim:
    """A worker's hold on one attempt of a job: every later write is fenced by ``attempt``."""

    job: Job
    attempt: int
    event: Event
    # the parked job of its fairness group released in its place: the worker queues it
    released: Queued | None = None
    # the job's steps in order, as the attempt starts: where it resumes from
    checkpoints: tuple[StepCheckpoint, ...] = ()
    # whether the job's end may release parked jobs (a concurrency key, or its type's)
    may_release: bool = True


MAX_DELAY_S = 30 * 86_400


# a job's tags and the app's names for whom it is (subject and tenant): caps at submit,
# and in the scope of a browser token
MAX_TAGS = 10
MAX_TAG_CHARS = 100
MAX_NAME_CHARS = 200

Tag = Annotated[str, Field(min_length=1, max_length=MAX_TAG_CHARS)]


# a debounce key's length; its window and maximum wait are capped by JOBCAST_DEBOUNCE_MAX_S
MAX_DEBOUNCE_KEY_CHARS = 200
# a debounced job runs at most this many windows after its first submit, unless told
DEBOUNCE_WINDOWS = 10


class Debounce(BaseModel):
    """Submits with the same key (per owner and type) within ``seconds`` of each other make
    one job, which runs ``seconds`` after the last of them with its input (the window
    restarts at each submit), and at most ``max_seconds`` after the first."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(
        min_length=1,
        max_length=MAX_DEBOUNCE_KEY_CHARS,
        pattern=r"^[\x20-\x7e]+$",
        description="Submits with this key (for this owner and type) make one job.",
    )
    seconds: float = Field(gt=0, description="The window: the job runs this long after the last.")
    max_seconds: float | None = Field(
        None,
        gt=0,
        description=f"The latest it runs, from the first submit (default {DEBOUNCE_WINDOWS} "
        "windows).",
    )

    @field_validator("max_seconds")
    @classmethod
    def _no_shorter_than_the_window(cls, value: float | None, info: ValidationInfo) -> float | None:
        seconds = info.data.get("seconds")
        if value is not None and seconds is not None and value < seconds:
            raise ValueError(f"shorter than the window ({seconds:g} s)")
        return value

    def longest_s(self) -> float:
        """How long after its first submit the job may be held back."""
        if self.max_seconds is not None:
            return self.max_seconds
        return DEBOUNCE_WINDOWS * self.seconds


class SubmitRequest(BaseModel):
    """The body of ``POST /api/jobs``."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=100)
    input: dict[str, Any] = Field(default_factory=dict)
    priority: StrictInt = Field(0, ge=-10, le=10, description="Higher starts first.")
    delay_seconds: float = Field(0, ge=0, le=MAX_DELAY_S)
    run_at: AwareDatetime | None = Field(
        None, description="Start no earlier than this (instead of delay_seconds)."
    )
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=r"^[\x20-\x7e]+$",
        description="Resubmitting with the same key within 24 h returns the same job.",
    )
    max_attempts: StrictInt | None = Field(None, ge=1, le=20)
    retry: RetryPolicy | None = Field(
        None, description="The wait between attempts, within the type's bounds."
    )
    timeout_seconds: float | None = Field(None, gt=0, le=7 * 86_400)
    callback_url: HttpUrl | None = Field(
        None, description="POSTed the final job, signed, when the job ends."
    )
    draft: bool = Field(
        False, description="Store the job as a draft: not queued until POST /api/jobs/{id}/start."
    )
    debounce: Debounce | None = Field(
        None, description="Collapse submits with one key into one job, run after the last."
    )
    tags: list[Tag] = Field(
        default_factory=list, max_length=MAX_TAGS, description="The app's labels (org:42)."
    )
    metadata: dict[str, Any] | None = Field(
        None, description="The app's own data about the job (capped in size)."
    )
    subject: str | None = Field(
        None, min_length=1, max_length=MAX_NAME_CHARS, description="The app's user (app keys)."
    )
    tenant: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="The app's organisation (app keys).",
    )
    concurrency: list[KeyLimit] = Field(
        default_factory=list,
        max_length=MAX_KEYS_PER_JOB,
        description="Concurrency keys: the job starts only while each has room.",
    )
    throttle: ThrottleLimit | None = Field(
        None, description="At most `limit` starts of `key` per `period_s`."
    )

    @model_validator(mode="after")
    def _one_start_time(self) -> SubmitRequest:
        if self.run_at is not None and self.delay_seconds:
            raise ValueError("give run_at or delay_seconds, not both")
        if self.start_delay_s() > MAX_DELAY_S:
            raise ValueError("run_at is more than 30 days ahead")
        return self

    @field_validator("debounce")
    @classmethod
    def _debounce_alone(cls, value: Debounce | None, info: ValidationInfo) -> Debounce | None:
        if value is None:
            return None
        if info.data.get("draft"):
            raise ValueError("a draft is not debounced: give draft or debounce, not both")
        if info.data.get("run_at") is not None or info.data.get("delay_seconds"):
            raise ValueError("debounce sets when the job runs: give no run_at or delay_seconds")
        if info.data.get("idempotency_key") is not None:
            raise ValueError("give idempotency_key or debounce, not both")
        return value

    def start_delay_s(self) -> float:
        if self.run_at is None:
            return self.delay_seconds
        return max(0.0, (self.run_at - datetime.now(UTC)).total_seconds())


class AnswerRequest(BaseModel):
    """The body of ``POST /api/jobs/{id}/input``."""

    model_config = ConfigDict(extra="forbid")

    step: str | None = Field(
        None, min_length=1, max_length=200, description="The step asking (default: the one)."
    )
    answer: Any = Field(description="The answer: checked against the question's JSON Schema.")


class DraftEdit(BaseModel):
    """The body of ``PATCH /api/jobs/{id}``: a draft's new input."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any]
