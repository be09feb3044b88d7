"""Every call of the API in one place: the request it sends, and how its answer is read.

The clients only do I/O: they send a ``Call`` and hand its answer to ``read``. The
websocket's messages are read here too, and the URL a watch connects to.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypedDict, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import orjson

from jobcast import schemas
from jobcast.client.errors import STATUS_OF_CODE, NotFinished, api_error
from jobcast.client.models import Batch, BatchSubmitted, Event, Job, JobId, JobType, Submitted

T = TypeVar("T")


class SubmitOptions(TypedDict, total=False):
    """What a submit may set beside type and input; unset options take the type's defaults."""

    priority: int | None
    delay_seconds: float | None
    max_attempts: int | None
    timeout_seconds: float | None
    idempotency_key: str | None
    # stored and shown, not queued until ``start``
    draft: bool | None
    # {"key", "seconds", "max_seconds"?}: submits with one key make one job, run after the last
    debounce: dict[str, Any] | None
    # concurrency keys: [{"key": "tenant:42", "limit": 5}], or {"tenant:42": 5}
    concurrency: list[dict[str, Any]] | dict[str, int] | None
    # a throttle: {"key": "api:geo", "limit": 10, "period_s": 60}
    throttle: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One HTTP call: what to send, and ``read`` for its success answer."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None


def create_session() -> Call[str]:
    def read(response: httpx.Response) -> str:
        return schemas.SessionCreated.model_validate(response.json()).token

    return Call("POST", "/api/sessions", read)


def job_types() -> Call[list[JobType]]:
    def read(response: httpx.Response) -> list[JobType]:
        return [JobType.model_validate(t) for t in response.json()["job_types"]]

    return Call("GET", "/api/job-types", read)


def submit(type: str, input: dict[str, Any] | None, options: SubmitOptions) -> Call[Submitted]:
    body: dict[str, Any] = {"type": type, "input": input or {}}
    body.update({k: v for k, v in options.items() if v is not None})
    if isinstance(body.get("concurrency"), dict):
        body["concurrency"] = [{"key": k, "limit": n} for k, n in body["concurrency"].items()]
    return Call("POST", "/api/jobs", lambda r: Submitted.model_validate(r.json()), json=body)


def submit_batch(jobs: list[dict[str, Any]]) -> Call[BatchSubmitted]:
    """Up to 1,000 jobs, each as a submit's body: all stored, or none (422 naming the job)."""
    return Call(
        "POST",
        "/api/jobs/batch",
        lambda r: BatchSubmitted.model_validate(r.json()),
        json={"jobs": jobs},
    )


def batch(batch_id: str) -> Call[Batch]:
    return Call("GET", f"/api/batches/{quoted(batch_id)}", lambda r: Batch.model_validate(r.json()))


def get(job_id: JobId) -> Call[Job]:
    return Call("GET", f"/api/jobs/{quoted(job_id)}", lambda r: Job.model_validate(r.json()))


def events(job_id: JobId, after: int) -> Call[list[Event]]:
    def read(response: httpx.Response) -> list[Event]:
        return [Event.model_validate(e) for e in response.json()["events"]]

    return Call("GET", f"/api/jobs/{quoted(job_id)}/events", read, params={"after": after})


def result(job_id: JobId) -> Call[Any]:
    """A completed job's result; NotFinished for the 202 of a job still to end.

    A job that ended otherwise answers 409: ``errors.ended_otherwise`` says why.
    """

    def read(response: httpx.Response) -> Any:
        body = response.json()
        if response.status_code == 202:
            raise NotFinished(str(job_id), body.get("status", "?"), body.get("progress", 0.0))
        return body.get("result")

    return Call("GET", f"/api/jobs/{quoted(job_id)}/result", read)


def cancel(job_id: JobId) -> Call[None]:
    return Call("POST", f"/api/jobs/{quoted(job_id)}/cancel", lambda _response: None)


def answer(job_id: JobId, answer: Any, step: str | None) -> Call[dict[str, Any]]:
    """Answer a waiting job's question: 409 when it does not wait (or it was answered),
    422 when the answer does not fit the question's schema (``details`` name the field)."""
    body: dict[str, Any] = {"answer": answer}
    if step is not None:
        body["step"] = step
    return Call("POST", f"/api/jobs/{quoted(job_id)}/input", _body, json=body)


def pause(job_id: JobId) -> Call[dict[str, Any]]:
    return Call("POST", f"/api/jobs/{quoted(job_id)}/pause", _body)


def resume(job_id: JobId) -> Call[dict[str, Any]]:
    return Call("POST", f"/api/jobs/{quoted(job_id)}/resume", _body)


def start(job_id: JobId) -> Call[dict[str, Any]]:
    return Call("POST", f"/api/jobs/{quoted(job_id)}/start", _body)


def update_draft(job_id: JobId, input: dict[str, Any]) -> Call[Job]:
    return Call(
        "PATCH",
        f"/api/jobs/{quoted(job_id)}",
        lambda r: Job.model_validate(r.json()),
        json={"input": input},
    )


def _body(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    return body


def list_jobs(status: str | None, type: str | None, limit: int | None) -> Call[list[Job]]:
    def read(response: httpx.Response) -> list[Job]:
        return [Job.model_validate(j) for j in response.json()["jobs"]]

    filters = {"status": status, "type": type, "limit": limit}
    params = {k: v for k, v in filters.items() if v is not None}
    return Call("GET", "/api/jobs", read, params=params)


def stats() -> Call[dict[str, Any]]:
    def read(response: httpx.Response) -> dict[str, Any]:
        body: dict[str, Any] = response.json()
        return body

    return Call("GET", "/api/admin/stats", read)


def browser_token(job_ids: list[str], can: list[str], expires_in_s: float) -> Call[str]:
    body = {"jobs": job_ids, "can": can, "expires_in": expires_in_s}
    return Call("POST", "/api/tokens", lambda r: str(r.json()["token"]), json=body)


def ws_url(base_url: str, job_id: JobId, after: int) -> str:
    """Where a watch of the job connects: ``WS /ws/jobs/{id}?after=N`` under the base URL."""
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = f"{parts.path.rstrip('/')}/ws/jobs/{quoted(job_id)}"
    return urlunsplit((scheme, parts.netloc, path, f"after={after}", ""))


def read_message(raw: str | bytes) -> Job | Event | None:
    """One websocket message: the snapshot's job, an event, or None for a kind to skip.

    The server's refusal (no such job, bad cursor), sent before it closes, raises.
    """
    message = orjson.loads(raw)
    kind = message.get("type")
    if kind == "snapshot":
        return Job.model_validate(message["job"])
    if kind == "event":
        return Event.model_validate(message)
    error = message.get("error")
    if kind is None and isinstance(error, dict):
        raise api_error(STATUS_OF_CODE.get(str(error.get("code")), 400), message)
    return None


def backoff_s(failures: int, base_s: float, cap_s: float) -> float:
    """Exponential backoff with jitter, so many clients dropped together do not return together."""
    ceiling: float = min(cap_s, base_s * 2 ** max(0, failures - 1))
    return ceiling * random.uniform(0.5, 1.0)


def quoted(job_id: JobId) -> str:
    return quote(str(job_id), safe="")
