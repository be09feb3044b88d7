"""Rows of ``jobcast/queries.sql`` as the frozen types of ``jobcast/model.py``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from jobcast.model import Event, EventKind, Job, JobStatus, StepCheckpoint, StepState, StepView

# the columns of job_columns a Job takes as they are
_AS_THEY_ARE = (
    "id", "owner_id", "type", "input", "priority", "progress", "step", "message", "result",
    "error", "attempts", "max_attempts", "seq", "estimated_s", "timeout_s", "parent_id",
    "callback_url", "result_expired_at", "retry_of", "pause_requested", "run_at",
    "created_at", "started_at", "finished_at"
)  # fmt: skip
# columns a statement may leave out: None in the Job then
_IF_READ = (
    "input_request", "streams", "subject", "tenant", "waiting_reason", "upload_names",
    "upload_bytes",
)  # fmt: skip


def job(row: asyncpg.Record) -> Job:
    """A job from a row of its columns (``job_columns``), with what else the row holds."""
    given: dict[str, Any] = {name: row[name] for name in _AS_THEY_ARE}
    given.update((name, row.get(name)) for name in _IF_READ)
    children, deliveries = row.get("children"), row.get("deliveries")
    return Job(
        **given,
        status=JobStatus(row["status"]),
        metadata=row["metadata"] if "metadata" in row.keys() else {},
        stuck_since=_stuck_since(row),
        tags=tuple(row.get("tags") or ()),
        steps=steps(row.get("steps")),
        children=None if children is None else tuple(children),
        deliveries=None if deliveries is None else tuple(deliveries),
    )


def _stuck_since(row: asyncpg.Record) -> datetime | None:
    """When the sweep found the job stuck in its current wait: a mark from an earlier wait
    (before a retry, a resume or an answer moved run_at on) no longer counts."""
    since: datetime | None = row["stuck_since"] if "stuck_since" in row.keys() else None
    if since is None or row["status"] != "pending" or since < row["run_at"]:
        return None
    return since


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


# an event's time in a NOTIFY: UTC, to the microsecond (as schema.sql's jobcast_notice makes it)
_NOTICE_AT = "%Y-%m-%dT%H:%M:%S.%f"


@dataclass(frozen=True, slots=True)
class Notice:
    """A NOTIFY's payload read (schema.sql, ``jobcast_notice``): the event's ids and kind,
    and the event when it carries it."""

    job_id: str
    seq: int
    owner_id: str
    kind: str
    event: Event | None


def of_notice(payload: str) -> Notice:
    """A NOTIFY's payload; ValueError when it is not one."""
    job_id, seq, owner_id, kind, *rest = payload.split(" ", 5)
    if not rest:
        return Notice(job_id, int(seq), owner_id, kind, None)
    at, data = rest
    body = orjson.loads(data)
    if not isinstance(body, dict):
        raise ValueError(f"an event's payload is an object, not {type(body).__name__}")
    carried = Event(
        job_id=UUID(job_id),
        seq=int(seq),
        kind=EventKind(kind),
        at=datetime.strptime(at, _NOTICE_AT).replace(tzinfo=UTC),
        data=body,
    )
    return Notice(job_id, carried.seq, owner_id, kind, carried)


def replayed(job_id: UUID, raw: tuple[int, str, str, datetime]) -> Event:
    """An event of a job as the snapshot's ``replay`` reads it: seq, kind, payload, at."""
    seq, kind, payload, at = raw
    return Event(job_id, seq, EventKind(kind), at, orjson.loads(payload))


def checkpoints(raw: Any) -> tuple[StepCheckpoint, ...]:
    """The steps of a job in order, as the claim reads them: completed (with the stored
    result) or not, and the answer a person gave to its question, if any."""
    return tuple(
        StepCheckpoint(s["name"], s["completed"], s["result"], s["answered"], s["answer"])
        for s in raw or ()
    )
