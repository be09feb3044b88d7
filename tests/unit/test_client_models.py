"""The client's models and error mapping, without a server."""

from __future__ import annotations

import pytest

from jobcast.client import (
    ApiError,
    BadRequest,
    Event,
    Job,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    api_error,
    backoff_s,
    calls,
)

JOB = {
    "id": "6a0e8f5e-0000-4000-8000-000000000001",
    "type": "demo",
    "status": "failed",
    "progress": 40.0,
    "step": "analyze",
    "message": "boom",
    "steps": [
        {
            "name": "validate",
            "title": "Validate input",
            "weight": 1,
            "status": "completed",
            "started_at": "2030-01-01T00:00:00+00:00",
            "finished_at": "2030-01-01T00:00:01+00:00",
            "duration_ms": 1000,
        }
    ],
    "result": None,
    "error": {"type": "PermanentError", "category": "permanent", "message": "boom"},
    "attempts": 1,
    "max_attempts": 3,
    "seq": 9,
    "priority": 0,
    "input": {"duration": 1},
    "estimated_seconds": 1.0,
    "timeout_seconds": 3600.0,
    "run_at": "2030-01-01T00:00:00+00:00",
    "created_at": "2030-01-01T00:00:00+00:00",
    "started_at": None,
    "finished_at": None,
}


def test_job_keeps_fields_a_newer_server_adds() -> None:
    job = Job.model_validate({**JOB, "owner_label": "ops"})
    assert job.final and job.error is not None and job.error.category == "permanent"
    assert job.model_extra == {"owner_label": "ops"}
    with pytest.raises(ValueError, match="frozen"):
        job.status = "completed"  # type: ignore[misc]


def test_only_a_final_status_event_is_final() -> None:
    base = {"type": "event", "job_id": JOB["id"], "at": "2030-01-01T00:00:00+00:00"}
    progress = Event.model_validate(
        {
            **base,
            "seq": 4,
            "kind": "progress",
            "progress": 50.0,
            "step": "fetch",
            "message": "half",
            "new_field": 1,
        }
    )
    retry = Event.model_validate(
        {
            **base,
            "seq": 5,
            "kind": "status",
            "status": "pending",
            "error": {"message": "reset"},
            "retry_in_s": 0.5,
        }
    )
    done = Event.model_validate(
        {
            **base,
            "seq": 6,
            "kind": "status",
            "status": "completed",
            "result": {"ok": True},
            "progress": 100,
        }
    )
    assert (
        not progress.final
        and progress.progress == 50.0
        and progress.model_extra == {"new_field": 1}
    )
    assert not retry.final and retry.error is not None and retry.error.category == "unknown"
    assert done.final and done.result == {"ok": True}


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (422, BadRequest),
        (401, Unauthorized),
        (403, Unauthorized),
        (404, NotFound),
        (429, TooManyRequests),
        (503, Unavailable),
        (502, Unavailable),
        (418, ApiError),
    ],
)
def test_error_answers_map_to_their_class(status: int, cls: type[ApiError]) -> None:
    body = {
        "error": {
            "code": "some_code",
            "message": "what went wrong",
            "details": [{"field": "input.duration", "message": "not a number"}],
        }
    }
    error = api_error(status, body)
    assert type(error) is cls
    assert (error.status, error.code, str(error)) == (status, "some_code", "what went wrong")
    assert error.details == body["error"]["details"]


def test_an_answer_without_the_error_shape_still_says_what_happened() -> None:
    error = api_error(502, "<html>bad gateway</html>", "HTTP 502 Bad Gateway")
    assert isinstance(error, Unavailable)
    assert (error.code, error.message) == ("http_502", "HTTP 502 Bad Gateway")


def test_backoff_grows_stays_under_its_cap_and_is_jittered() -> None:
    delays = [backoff_s(n, 0.25, 5.0) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(5.0, 0.25 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert len({backoff_s(3, 0.25, 5.0) for _ in range(20)}) > 1


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws/jobs/abc?after=7"),
        ("https://jobs.example.com/jobcast/", "wss://jobs.example.com/jobcast/ws/jobs/abc?after=7"),
    ],
)
def test_the_websocket_url_follows_the_base_url(base_url: str, expected: str) -> None:
    assert calls.ws_url(base_url, "abc", 7) == expected


def test_a_submit_sends_only_the_options_given() -> None:
    call = calls.submit("demo", None, {"priority": 2, "delay_seconds": None})
    assert (call.method, call.path) == ("POST", "/api/jobs")
    assert call.json == {"type": "demo", "input": {}, "priority": 2}
    assert calls.get("a/b").path == "/api/jobs/a%2Fb"  # an id is one path segment


def test_a_websocket_refusal_raises_the_error_it_names() -> None:
    with pytest.raises(NotFound, match="no such job"):
        calls.read_message(b'{"error": {"code": "not_found", "message": "no such job"}}')
    assert calls.read_message(b'{"type": "ping"}') is None
