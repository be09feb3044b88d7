"""How a listener reads a NOTIFY on the fallback channel (schema.sql's ``jobcast_notice``
makes them): the event itself, as Redis would have brought it; or its ids alone, a hint."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from jobcast.bus import Hint, Live
from jobcast.bus.message import encode, heard, parse
from jobcast.model import Event, EventKind, dumps
from jobcast.store.rows import of_notice

# fixed, for the parameters below name the tests (each xdist worker must see the same names)
JOB = uuid.UUID("5b0c2a52-8d0e-4f6e-9d2b-1f7f0c3a9e01")
OWNER = uuid.UUID("0d9b6c1e-3a4f-4b8e-a5c7-2e6f8d1b4c02")
AT = datetime(2026, 12, 5, 5, 30, 1, 123456, tzinfo=UTC)


def event(kind: EventKind, data: dict[str, object], at: datetime = AT) -> Event:
    return Event(JOB, 7, kind, at, data, OWNER)


def said(made: Event) -> str:
    """The NOTIFY of an event as jobcast_notice says it: its ids, its time in UTC to the
    microsecond, and its payload's JSON (tests/integration/test_bus.py reads Postgres's)."""
    at = made.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return f"{JOB} {made.seq} {OWNER} {made.kind} {at} {dumps(made.data).decode()}"


@pytest.mark.parametrize(
    "made",
    [
        event(EventKind.PROGRESS, {"progress": 0.5, "message": 'é ✓ "quoted" a b'}),
        event(EventKind.STATUS, {"status": "completed", "result": {"rows": [1, None]}}),
        event(EventKind.STEP, {"step": "fetch", "state": "running"}, AT.replace(microsecond=0)),
    ],
    ids=["progress", "final", "whole-second"],
)
def test_a_notice_carries_the_event_as_redis_would_bring_it(made: Event) -> None:
    payload = said(made)
    live = heard(payload)
    notice = of_notice(payload)
    assert (notice.owner_id, notice.kind) == (str(OWNER), made.kind.value)
    assert live == parse(encode(made))  # the very message a subscriber gets over Redis
    assert isinstance(live, Live) and live.final == made.final
    assert datetime.fromisoformat(live.at) == made.at


def test_a_notice_of_ids_alone_is_a_hint() -> None:
    payload = f"{JOB} 7 {OWNER} metadata"
    assert heard(payload) == Hint(job_id=str(JOB), seq=7)
    notice = of_notice(payload)
    assert (notice.owner_id, notice.kind, notice.event) == (str(OWNER), "metadata", None)


@pytest.mark.parametrize(
    "payload",
    [
        "",
        f"{JOB} 7 {OWNER}",
        f"{JOB} seven {OWNER} progress",
        f"{JOB} 7 {OWNER} progress 2026-12-05T05:30:01.123456",
        f"{JOB} 7 {OWNER} progress 2026-12-05 {{}}",
        f"{JOB} 7 {OWNER} progress 2026-12-05T05:30:01.123456 {{not json",
        f"{JOB} 7 {OWNER} progress 2026-12-05T05:30:01.123456 [1, 2]",
        f"{JOB} 7 {OWNER} shouting 2026-12-05T05:30:01.123456 {{}}",
        f"not-a-uuid 7 {OWNER} progress 2026-12-05T05:30:01.123456 {{}}",
        f"{JOB} 7 {OWNER} status 2026-12-05T05:30:01.123456 {{}}",  # a status says which
    ],
)
def test_a_payload_that_is_no_notice_is_dropped_and_logged(
    payload: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert heard(payload) is None
    assert "dropped a malformed NOTIFY payload" in caplog.text
