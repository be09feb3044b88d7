"""What a NOTIFY on the fallback channel says of an event, and how a listener reads it:
the event itself where it fits, as Redis would have brought it; its ids alone where not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from jobcast.bus import Hint, Live
from jobcast.bus.message import encode, heard, parse
from jobcast.model import Event, EventKind
from jobcast.store.rows import notice

# fixed, for the parameters below name the tests (each xdist worker must see the same names)
JOB = uuid.UUID("5b0c2a52-8d0e-4f6e-9d2b-1f7f0c3a9e01")
OWNER = uuid.UUID("0d9b6c1e-3a4f-4b8e-a5c7-2e6f8d1b4c02")
AT = datetime(2026, 12, 5, 5, 30, 1, 123456, tzinfo=UTC)


def event(kind: EventKind, data: dict[str, object], at: datetime = AT) -> Event:
    return Event(JOB, 7, kind, at, data, OWNER)


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
    got = heard(notice(made))
    assert got is not None
    live, owner_id, kind = got
    assert (owner_id, kind) == (str(OWNER), made.kind.value)
    assert live == parse(encode(made))  # the very message a subscriber gets over Redis
    assert isinstance(live, Live) and live.final == made.final


def test_a_notice_says_the_instant_whatever_the_events_zone() -> None:
    east = AT.astimezone(timezone(timedelta(hours=5, minutes=30)))
    got = heard(notice(event(EventKind.PROGRESS, {"progress": 1}, east)))
    assert got is not None and isinstance(got[0], Live)
    assert datetime.fromisoformat(got[0].at) == AT


def test_an_event_too_large_for_a_notify_is_announced_by_its_ids() -> None:
    big = event(EventKind.METADATA, {"blob": "é" * 4000})  # 8,000 bytes of UTF-8
    payload = notice(big)
    assert payload == f"{JOB} 7 {OWNER} metadata"
    assert heard(payload) == (Hint(job_id=str(JOB), seq=7), str(OWNER), "metadata")


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
