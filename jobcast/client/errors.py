"""The errors the client raises, and the one place that reads an error answer into one."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from websockets.exceptions import InvalidStatus

from jobcast.client.models import Job
from jobcast.errors import JobcastError


class ClientError(JobcastError):
    """Base of the errors this client raises."""


class Unreachable(ClientError):
    """The server does not answer at the base URL: check the URL, or start the server."""


class NotFinished(ClientError):
    """The job has no result yet: wait for it (``wait``) and ask again."""

    def __init__(self, job_id: str, status: str, progress: float) -> None:
        super().__init__(f"job {job_id} is not finished: {status}, {progress:g}% done")
        self.job_id = job_id
        self.status = status
        self.progress = progress


class ApiError(ClientError):
    """An answer in the API's error shape, ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.code!r}, {self.message!r})"


class BadRequest(ApiError):
    """400 or 422: the request or the job's input is wrong; ``details`` names the fields."""


class Unauthorized(ApiError):
    """401 or 403: no valid token for this call; create a session or use the right token."""


class NotFound(ApiError):
    """404: no such job for this owner (another owner's job looks the same)."""


class Conflict(ApiError):
    """409: the job is not in a state that allows this (it has already finished)."""


class TooManyRequests(ApiError):
    """429: a limit was reached; ``retry_after_s`` says when to try again."""

    retry_after_s: float | None = None


class Unavailable(ApiError):
    """5xx: the server or its storage is down; nothing was stored, try again shortly."""


class JobFailed(Conflict):
    """The job ended ``failed``: ``job.error`` says why."""

    def __init__(self, job: Job, status: int = 409, code: str = "conflict") -> None:
        reason = job.error.message if job.error else "no reason given"
        super().__init__(status, code, f"job {job.id} failed: {reason}")
        self.job = job
        self.error = job.error


class JobCancelled(Conflict):
    """The job was cancelled before it finished: it has no result."""

    def __init__(self, job: Job, status: int = 409, code: str = "conflict") -> None:
        super().__init__(status, code, f"job {job.id} was cancelled")
        self.job = job
        self.error = job.error


_ERROR_CLASSES: dict[int, type[ApiError]] = {
    400: BadRequest,
    422: BadRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    429: TooManyRequests,
}

# a websocket refusal carries only the code: the status it stands for
STATUS_OF_CODE = {
    "bad_request": 400,
    "invalid_input": 422,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
}


def api_error(status: int, body: Any, fallback: str = "") -> ApiError:
    """The exception for an error answer, from its body when it has the one error shape."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or f"http_{status}")
        message = str(error.get("message") or fallback)
        details = error.get("details")
    else:
        code, message, details = f"http_{status}", fallback or f"HTTP {status}", None
    cls = _ERROR_CLASSES.get(status) or (Unavailable if status >= 500 else ApiError)
    return cls(status, code, message, details)


def error_of(response: httpx.Response) -> ApiError:
    """The exception for an HTTP error answer, with ``Retry-After`` on a 429."""
    try:
        body = response.json()
    except ValueError:
        body = None
    fallback = f"HTTP {response.status_code} {response.reason_phrase}: {response.text[:200]}"
    error = api_error(response.status_code, body, fallback.strip().rstrip(":"))
    if isinstance(error, TooManyRequests):
        retry_after = response.headers.get("retry-after", "")
        error.retry_after_s = float(retry_after) if retry_after.isdigit() else None
    return error


def handshake_error(exc: InvalidStatus) -> ApiError:
    """The exception for a websocket handshake the server refused with an HTTP answer."""
    status = exc.response.status_code
    try:
        body = orjson.loads(exc.response.body or b"")
    except orjson.JSONDecodeError:
        body = None
    return api_error(status, body, f"the websocket was refused with HTTP {status}")


def ended_otherwise(job: Job, conflict: Conflict) -> ApiError:
    """Why a job has no result, told by the 409 its result answered: failed or cancelled."""
    if job.status == "failed":
        return JobFailed(job, conflict.status, conflict.code)
    if job.status == "cancelled":
        return JobCancelled(job, conflict.status, conflict.code)
    return conflict
