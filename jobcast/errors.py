"""The one family of jobcast errors; each says what to do about it.

API errors carry the HTTP status and the machine-readable code of the one error
shape, ``{"error": {"code": ..., "message": ...}}``. Job errors are raised by job
code to say whether a failure is worth retrying.
"""

from __future__ import annotations

from typing import Any


class JobcastError(Exception):
    """Base of every jobcast error."""


class ConfigError(JobcastError):
    """A setting is missing or wrong: fix the environment key the message names."""


class ServiceUnavailable(JobcastError):
    """Postgres or Redis does not answer at the URL named: start it or fix the URL."""


class ApiError(JobcastError):
    """An answer to a client other than success; rendered in the one error shape."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


class BadRequest(ApiError):
    """The request is malformed (not JSON, not an object, a bad parameter): fix the request."""


class Unauthorized(ApiError):
    """No valid owner token: create a session (POST /api/sessions) and send its token."""

    status = 401
    code = "unauthorized"


class Forbidden(ApiError):
    """The token is valid but may not do this."""

    status = 403
    code = "forbidden"


class NotFound(ApiError):
    """No such job for this owner (another owner's job looks exactly the same)."""

    status = 404
    code = "not_found"


class Conflict(ApiError):
    """The job is not in a state that allows this (already finished, failed, cancelled)."""

    status = 409
    code = "conflict"


class Gone(ApiError):
    """What was asked for existed but is no longer kept (an expired result)."""

    status = 410
    code = "gone"


class PayloadTooLarge(ApiError):
    """The body is over the size limit: send less."""

    status = 413
    code = "payload_too_large"


class InvalidInput(ApiError):
    """The body is JSON but does not fit the schema: the details name the fields."""

    status = 422
    code = "invalid_input"


class TooManyRequests(ApiError):
    """A limit was reached: wait for Retry-After seconds."""

    status = 429
    code = "too_many_requests"


class StorageUnavailable(ApiError):
    """Postgres does not answer: nothing was stored; try again shortly."""

    status = 503
    code = "storage_unavailable"


class JobError(JobcastError):
    """Raised by job code: the message is shown to the end user, so keep it readable."""

    retryable = True


class TransientError(JobError):
    """A failure that may go away (timeout, connection reset, rate limit): retried with backoff."""


class PermanentError(JobError):
    """A failure that will not go away by retrying (bad input, auth failure): fails at once."""

    retryable = False
