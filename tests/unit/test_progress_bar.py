"""The CLI's progress bar ends where the job ended: its final progress and step."""

from __future__ import annotations

from typing import Any

from jobcast.cli.progress import changes, final_changes
from jobcast.client import Event, Job

_AT = "2026-12-01T10:00:00+00:00"


def _step(name: str, status: str) -> dict[str, Any]:
    return {
        "name": name,
        "title": name.title(),
        "weight": 1.0,
        "status": status,
        "started_at": None,
        "finished_at": None,
        "duration_ms": None,
    }


def _job(status: str, progress: float, step: str | None, steps: dict[str, str]) -> Job:
    return Job.model_validate(
        {
            "id": "j1",
            "type": "demo",
            "status": status,
            "progress": progress,
            "step": step,
            "message": None,
            "steps": [_step(n, s) for n, s in steps.items()],
            "error": None,
            "attempts": 1,
            "max_attempts": 3,
            "seq": 9,
            "priority": 0,
            "input": {},
            "estimated_seconds": 3,
            "timeout_seconds": 60,
            "run_at": _AT,
            "created_at": _AT,
            "started_at": _AT,
            "finished_at": _AT,
        }
    )


def test_a_completed_status_fills_the_bar_without_a_progress_field() -> None:
    event = Event.model_validate(
        {
            "type": "event",
            "job_id": "j1",
            "seq": 9,
            "kind": "status",
            "at": _AT,
            "status": "completed",
        }
    )
    assert changes(event) == {"message": "completed", "completed": 100}


def test_the_bar_ends_on_a_completed_jobs_last_step_at_100() -> None:
    job = _job("completed", 98.5, None, {"fetch": "completed", "report": "completed"})
    assert final_changes(job) == {"completed": 100, "step": "report", "message": "completed"}


def test_the_bar_ends_on_a_failed_jobs_progress_and_failed_step() -> None:
    steps = {
        "validate": "completed",
        "fetch": "completed",
        "analyze": "failed",
        "report": "waiting",
    }
    job = _job("failed", 62.5, "analyze", steps)
    assert final_changes(job) == {"completed": 62.5, "step": "analyze", "message": "failed"}
    job = _job("failed", 62.5, None, steps)
    assert final_changes(job)["step"] == "analyze"
