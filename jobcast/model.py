"""The job, step and event types shared by the server, the workers and clients.

Event formats are defined here once: ``Event.wire()`` is what websockets, the
``/events`` endpoint and Redis pub/sub carry.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictInt


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class StepState(enum.StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class EventKind(enum.StrEnum):
    STATUS = "status"
    STEP = "step"
    PROGRESS = "progress"


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
    steps: tuple[StepView, ...] = field(default=())


    @property
    def etag(self) -> str:
        return f'W/"{self.id}-{self.seq}"'


@dataclass(frozen=True, slots=True)
class Claim:
    """A worker's hold on one attempt of a job: every later write is fenced by ``attempt``."""

    job: Job
    attempt: int
    event: Event


class SubmitRequest(BaseModel):
    """The body of ``POST /api/jobs``."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=100)
    input: dict[str, Any] = Field(default_factory=dict)
    priority: StrictInt = Field(0, ge=-10, le=10)
    delay_seconds: float = Field(0, ge=0, le=30 * 86_400)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    max_attempts: StrictInt | None = Field(None, ge=1, le=20)
    timeout_seconds: float | None = Field(None, gt=0, le=7 * 86_400)
