"""A Python client for the jobcast API: typed answers, and a watch that never misses an event.

``AsyncClient`` (async_client.py) speaks HTTP (httpx) and websockets; ``Client``
(sync_client.py) runs the same coroutines on a private event loop, so the two
cannot drift apart. Every call's request and the reading of its answer live in
calls.py; the answers are the lenient models of models.py, the exceptions those
of errors.py.
"""

from jobcast.client.async_client import AsyncClient
from jobcast.client.calls import SubmitOptions, backoff_s
from jobcast.client.errors import (
    ApiError,
    BadRequest,
    ClientError,
    Conflict,
    JobCancelled,
    JobFailed,
    NotFinished,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    Unreachable,
    api_error,
)
from jobcast.client.models import (
    Batch,
    BatchSubmitted,
    Event,
    Job,
    JobError,
    JobId,
    JobType,
    Step,
    Submitted,
)
from jobcast.client.sync_client import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "Batch",
    "BatchSubmitted",
    "Client",
    "ClientError",
    "Conflict",
    "Event",
    "Job",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "JobId",
    "JobType",
    "NotFinished",
    "NotFound",
    "Step",
    "SubmitOptions",
    "Submitted",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "Unreachable",
    "api_error",
    "backoff_s",
]
