"""Job types the retry-policy and access tests load through JOBCAST_JOB_MODULES."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobcast.errors import RetryAfter, TransientError
from jobcast.registry import JobContext, JobType
from jobcast.retry import RetryBounds, RetryPolicy


class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WaitInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(1.5, ge=0, le=30)


class ParseError(Exception):
    """A reply that could not be parsed: worth one more try, not more."""


async def always_fails(job: JobContext, _params: Empty) -> None:
    raise TransientError(f"the upstream timed out (attempt {job.attempt})")


async def rate_limited(job: JobContext, params: WaitInput) -> dict[str, Any]:
    if job.attempt == 1:
        raise RetryAfter(params.seconds, "the upstream answered 429")
    return {"attempt": job.attempt}


async def parse_fails(job: JobContext, _params: Empty) -> None:
    raise ParseError(f"the reply of attempt {job.attempt} is not JSON")


async def noop(_job: JobContext, _params: Empty) -> dict[str, Any]:
    return {}


JOB_TYPES = (
    JobType(
        "always_fails",
        "Fails every time, waiting linearly",
        Empty,
        always_fails,
        max_attempts=4,
        retry=RetryPolicy.model_validate(
            {"backoff": "linear", "base_s": 0.4, "max_s": 5, "jitter": 0}
        ),
        retry_bounds=RetryBounds(
            backoffs=("fixed", "linear", "exponential"),
            min_base_s=0.2,
            max_base_s=2,
            max_max_s=10,
            max_attempts=5,
        ),
    ),
    JobType(
        "rate_limited",
        "Asked to wait on its first try",
        WaitInput,
        rate_limited,
        retry=RetryPolicy.model_validate({"backoff": "fixed", "base_s": 0.2, "jitter": 0}),
    ),
    JobType(
        "parse_fails",
        "A parse error, retried once",
        Empty,
        parse_fails,
        max_attempts=5,
        retry_once=(ParseError,),
        retry=RetryPolicy.model_validate({"backoff": "fixed", "base_s": 0.2, "jitter": 0}),
    ),
    JobType(
        "two_tries",
        "Its policy gives it two attempts",
        Empty,
        always_fails,
        retry=RetryPolicy.model_validate(
            {"backoff": "fixed", "base_s": 0.2, "jitter": 0, "max_attempts": 2}
        ),
    ),
    JobType("reindex", "Re-index (app keys only)", Empty, noop, access="app"),
)
