"""Rows of ``jobcast/queries.sql`` as the frozen types of ``jobcast/model.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from jobcast.model import Event, EventKind, Job, JobStatus, StepState, StepView


def job(row: asyncpg.Record) -> Job:
    """A job from a row of its columns (``job_columns``), with what else the row holds."""
    return Job(
        id=row["id"],
        owner_id=row["owner_id"],
        type=row["type"],
        input=row["input"],
        status=JobStatus(row["status"]),
        priority=row["priority"],
        progress=row["progress"],
        step=row["step"],
        message=row["message"],
        result=row["result"],
        error=row["error"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        seq=row["seq"],
        estimated_s=row["estimated_s"],
        timeout_s=row["timeout_s"],
        parent_id=row["parent_id"],
        callback_url=row["callback_url"],
        result_expired_at=row["result_expired_at"],
        retry_of=row["retry_of"],
        pause_requested=row["pause_requested"],
        input_request=row["input_request"] if "input_request" in row.keys() else None,
        metadata=row["metadata"] if "metadata" in row.keys() else {},
        streams=row["streams"] if "streams" in row.keys() else None,
        subject=row["subject"] if "subject" in row.keys() else None,
        tenant=row["tenant"] if "tenant" in row.keys() else None,
        tags=tuple(row["tags"] or ()) if "tags" in row.keys() else (),
        waiting_reason=row["waiting_reason"] if "waiting_reason" in row.keys() else None,
        run_at=row["run_at"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        steps=steps(row["steps"]) if "steps" in row.keys() else (),
        children=tuple(row["children"]) if "children" in row.keys() else None,
        deliveries=tuple(row["deliveries"]) if "deliveries" in row.keys() else None,
    )


def steps(raw: Any) -> tuple[StepView, ...]:
    """The steps of a job from ``steps_json``."""
    return tuple(
        StepView(
            name=s["name"],
            title=s["title"],
            weight=s["weight"],
            status=StepState(s["status"]),
            started_at=_timestamp(s["started_at"]),
            finished_at=_timestamp(s["finished_at"]),
            duration_ms=s["duration_ms"],
            attempts=s.get("attempts", 0),
            parent=s.get("parent"),
            share=s.get("share"),
            counters=s.get("counters"),
            metadata=s.get("metadata"),
            error=s.get("error"),
        )
        for s in raw or ()
    )


def _timestamp(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def event_of_change(row: asyncpg.Record) -> Event:
    """The event a state change made, from the change's answer row (``event_tail``)."""
    return Event(
        job_id=row["id"],
        seq=row["seq"],
        kind=EventKind(row["event_kind"]),
        at=row["event_at"],
        data=row["event_payload"],
        owner_id=row["owner_id"],
        job_type=row["type"],
    )


def event(row: asyncpg.Record) -> Event:
    """An event from a row of ``job_events``."""
    return Event(row["job_id"], row["seq"], EventKind(row["kind"]), row["at"], row["payload"])
