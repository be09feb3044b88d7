"""What a running job reports, stored many jobs to a statement (the ``reports`` statement),
and how its attempt ends (the ``finishes`` statement).

A progress report, or a step that starts, completes or fails: each is one event of its
job, written with the job's row in the statement ``Attempts.record_reports`` runs. An
attempt's end (completed, or failed for good) is its job's last event, written with the
row and its open steps' ends by ``Attempts.record_ends``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson

from jobcast.model import JobStatus, StepState


@dataclass(frozen=True, slots=True)
class ProgressReport:
    """A running job's overall progress, the step it was made in, and a message."""

    job_id: UUID
    attempt: int
    progress: float
    step: str | None
    message: str | None

    def row(self) -> tuple[Any, ...]:
        payload = {"progress": self.progress, "step": self.step, "message": self.message}
        return (
            self.job_id,
            self.attempt,
            "progress",
            self.progress,
            self.step,
            None,
            None,
            self.message,
            payload,
            None,
        )


@dataclass(frozen=True, slots=True)
class StepReport:
    """A step of a running job starts (``message`` then replaces the last step's),
    completes (``result``, its checkpoint, stored with its event) or fails."""

    job_id: UUID
    attempt: int
    step: str
    state: StepState
    duration_ms: int | None
    progress: float
    message: str | None = None
    result: Any = None

    def row(self) -> tuple[Any, ...]:
        payload: dict[str, Any] = {
            "step": self.step,
            "state": str(self.state),
            "progress": self.progress,
        }
        if self.duration_ms is not None:
            payload["duration_ms"] = self.duration_ms
        message = None
        if self.state is StepState.RUNNING:
            payload["message"] = message = self.message
        return (
            self.job_id,
            self.attempt,
            "step",
            self.progress,
            self.step,
            str(self.state),
            self.duration_ms,
            message,
            payload,
            self.result,
        )


Report = ProgressReport | StepReport


@dataclass(frozen=True, slots=True)
class JobEnd:
    """A running attempt's end: its job's final status, with the result (completed) or the
    error (failed), and the message."""

    job_id: UUID
    attempt: int
    status: JobStatus
    result: Any = None
    error: dict[str, Any] | None = None
    message: str | None = None

    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "status": str(self.status),
            "attempt": self.attempt,
            "message": self.message,
        }
        if self.status is JobStatus.COMPLETED:
            payload.update(result=self.result, progress=100)
        if self.error is not None:
            payload["error"] = self.error
        return payload


def end_columns(ends: Sequence[JobEnd]) -> list[list[Any]]:
    """The ``finishes`` statement's seven arrays, the ends in the order of their jobs' ids;
    results, errors and payloads as JSON text."""
    ordered = sorted(ends, key=lambda e: e.job_id)
    return [
        [e.job_id for e in ordered],
        [e.attempt for e in ordered],
        [str(e.status) for e in ordered],
        [None if e.result is None else _json(e.result) for e in ordered],
        [None if e.error is None else _json(e.error) for e in ordered],
        [e.message for e in ordered],
        [_json(e.payload()) for e in ordered],
    ]


def columns(reports: Sequence[Report]) -> list[list[Any]]:
    """The statement's ten arrays, the reports in the order of their jobs' ids; payloads
    and results as JSON text (a result that is a list would otherwise be taken for a
    dimension of the array)."""
    ordered = sorted(reports, key=lambda r: r.job_id)
    arrays = [list(column) for column in zip(*(r.row() for r in ordered), strict=True)]
    arrays[8] = [_json(payload) for payload in arrays[8]]
    arrays[9] = [None if result is None else _json(result) for result in arrays[9]]
    return arrays


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
