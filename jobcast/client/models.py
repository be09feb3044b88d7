"""The answers of the API as the client hands them out: frozen, and lenient.

They are the models of ``jobcast.schemas`` (the bodies the server builds its
answers from), made lenient: fields a newer server adds are kept
(``model_extra``), not refused.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from jobcast import schemas

JobId = str | UUID

FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})

_LENIENT = ConfigDict(frozen=True, extra="allow")

# a job's step: name, title, weight, status, started_at, finished_at, duration_ms
Step = schemas.StepOut


class JobError(schemas.JobErrorOut):
    """Why a job failed: a readable ``message``, its ``type`` and ``category``."""

    model_config = _LENIENT
    type: str = "Error"
    category: str = "unknown"


class Job(schemas.JobOut):
    """A job as ``GET /api/jobs/{id}`` shows it."""

    model_config = _LENIENT
    error: JobError | None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


class Event(schemas.EventOut):
    """One change of a job. Which optional fields are set depends on ``kind``."""

    model_config = _LENIENT
    status: str | None = None
    attempt: int | None = None
    message: str | None = None
    result: Any = None
    error: JobError | None = None
    progress: float | None = None
    step: str | None = None
    state: str | None = None
    duration_ms: int | None = None
    retry_in_s: float | None = None
    # input_required: the question (its schema: ``question_schema``); input: the answer
    prompt: str | None = None
    expires_at: str | None = None
    on_timeout: str | None = None
    answer: Any = None
    answered_by: str | None = None
    # resumed: the completed steps the attempt skips
    skipped: list[str] | None = None
    # metadata: the keys that changed
    metadata: dict[str, Any] | None = None
    # stream: its name, the offset of the text's first character, the text
    name: str | None = None
    offset: int | None = None
    text: str | None = None
    # step, of a step added at run time
    parent: str | None = None
    title: str | None = None
    counters: dict[str, Any] | None = None

    @property
    def final(self) -> bool:
        """The job's last event: a status event with a final status."""
        return self.kind == "status" and self.status in FINAL_STATUSES

    @property
    def question_schema(self) -> dict[str, Any] | None:
        """An input_required event's JSON Schema of the answer (sent as ``schema``)."""
        extra = self.model_extra or {}
        value = extra.get("schema")
        return value if isinstance(value, dict) else None


class Submitted(schemas.JobAccepted):
    """The 202 answer to a submit: where to follow the job."""

    model_config = _LENIENT


class JobType(schemas.JobTypeOut):
    """A job type the server runs: its steps and the input it takes."""

    model_config = _LENIENT


class BatchJobSubmitted(BaseModel):
    """One job of a batch's 202: its id and where to follow it."""

    model_config = _LENIENT

    id: str
    status: str
    status_url: str
    ws_url: str


class BatchSubmitted(BaseModel):
    """The 202 answer to a batch: its id, and each job's, in the order given."""

    model_config = _LENIENT

    batch_id: str
    status_url: str
    ws_url: str
    jobs: list[BatchJobSubmitted]


class BatchJobState(BaseModel):
    """A batch's job as it stands (``status`` None: deleted since)."""

    model_config = _LENIENT

    id: str
    type: str | None
    status: str | None
    progress: float
    step: str | None
    message: str | None
    error: dict[str, Any] | None
    seq: int | None = None  # the job's last event's


class Batch(BaseModel):
    """A batch: its jobs by status, overall progress (a finished job counts whole)."""

    model_config = _LENIENT

    id: str
    size: int
    counts: dict[str, int]
    progress: float
    finished: bool
    jobs: list[BatchJobState]
