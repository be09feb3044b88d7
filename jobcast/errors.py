"""The one family of jobcast errors; each says what to do about it.

These are domain errors: they say what went wrong and carry a readable message
(quoting the offending value), field details where a value is at fault, and how
long to wait where waiting helps. They know nothing of HTTP: the web process maps
each class to a status and an error code at its edge (``server/errors.py``), as
Starlette and httpx keep their exception trees apart from the answers they give.
Job errors are raised by job code to say whether a failure is worth retrying.
"""

from __future__ import annotations


class JobcastError(Exception):
    """Base of every jobcast error."""


class ConfigError(JobcastError):
    """A setting is missing or wrong: fix the environment key the message names."""


class OtherInstall(ConfigError):
    """The database belongs to another install (another ``JOBCAST_REDIS_PREFIX``): give
    each install its own database, or this process the prefix of the install it is part
    of; an install that moved to a new prefix says so once with
    ``jobcast migrate --redis-prefix-moved``."""


class ServiceUnavailable(JobcastError):
    """Postgres or Redis does not answer at the URL named: start it or fix the URL."""


class Refused(JobcastError):
    """The service will not do what was asked; the message says why, for the caller to read.

    ``details`` names the fields at fault (``[{"field", "message"}]``) where a value is;
    ``retry_after_s`` says how long to wait where waiting helps.
    """

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, str]] | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.retry_after_s = retry_after_s


# the older name of Refused, still caught in a few places
ApiError = Refused


class BadRequest(Refused):
    """The request is malformed (not JSON, not an object, a bad parameter): fix the request."""


class Unauthorized(Refused):
    """No valid owner token: create a session (POST /api/sessions) and send its token."""


class TokenExpired(Unauthorized):
    """The browser token's ``exp`` has passed: mint a new one from the app key and reconnect."""


class Forbidden(Refused):
    """The token is valid but may not do this: use a token that may (the admin token)."""


class NotFound(Refused):
    """No such job for this owner (another owner's job looks exactly the same): check the id."""


class Conflict(Refused):
    """The job is not in a state that allows this (already finished, failed, cancelled)."""


class Gone(Refused):
    """What was asked for existed but is no longer kept (an expired result): submit again."""


class PayloadTooLarge(Refused):
    """The body is over the size limit: send less."""


class InvalidInput(Refused):
    """A value does not fit (the schema, a known job type, what can be stored): fix the fields
    the details name."""


class TooManyRequests(Refused):
    """A limit was reached: wait ``retry_after_s`` seconds, or finish or cancel a job first."""


class StorageUnavailable(Refused):
    """Postgres does not answer: nothing was stored; try again shortly."""


class JobError(JobcastError):
    """Raised by job code: the message is shown to the end user, so keep it readable."""


class TransientError(JobError):
    """A failure that may go away (timeout, connection reset, rate limit): retried with backoff.

    ``retry_after_s``: the next attempt starts no earlier than this many seconds from now
    (an upstream's 429 or 503 said ``Retry-After``), instead of the type's backoff.
    """

    def __init__(self, *args: object, retry_after_s: float | None = None) -> None:
        super().__init__(*args)
        self.retry_after_s = retry_after_s


class RetryAfter(TransientError):
    """The service asked us to wait ``seconds`` (``Retry-After``): try again then."""

    def __init__(self, seconds: float, message: str = "") -> None:
        super().__init__(
            message or f"the service asked us to wait {seconds:g} s", retry_after_s=seconds
        )


class PermanentError(JobError):
    """A failure that will not go away by retrying (bad input, auth failure): fails at once."""


class LimitExceeded(PermanentError):
    """Job code wrote more than a limit allows (metadata over its cap, a stream chunk or a
    stream over its size, too many steps added at run time): write less, or raise the
    setting the message names. Uncaught, it fails the job, never the worker."""


__all__ = [
    "ApiError",
    "BadRequest",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "Gone",
    "InvalidInput",
    "JobError",
    "JobcastError",
    "LimitExceeded",
    "NotFound",
    "PayloadTooLarge",
    "PermanentError",
    "Refused",
    "RetryAfter",
    "ServiceUnavailable",
    "StorageUnavailable",
    "TooManyRequests",
    "TransientError",
    "Unauthorized",
]
