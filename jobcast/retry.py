"""Retry policies: how long a failed attempt waits before the next one.

A job type declares its policy (``JobType(retry=RetryPolicy(...))``) and the bounds
within which a submit may change it (``retry_bounds=RetryBounds(...)``); a submit
gives ``"retry": {...}`` with any of the policy's fields, checked by pydantic for its
shape and by ``RetryBounds.check`` against the type's bounds (InvalidInput naming the
field). The policy a job runs with is stored with it at submit, so that changing the
type's declaration later does not change the retries of jobs already queued.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from jobcast.errors import InvalidInput

Backoff = Literal["fixed", "linear", "exponential"]
# the longest wait a policy may ask for between attempts
MAX_WAIT_S = 86_400.0


class RetryPolicy(BaseModel):
    """``fixed``: base_s each time; ``linear``: base_s * n; ``exponential``: base_s * 2^(n-1)
    (n: the attempt that failed), capped at ``max_s``; then up to ``jitter`` of it (a
    fraction, 0-1) is taken off at random, so retries of many jobs do not line up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backoff: Backoff = "exponential"
    base_s: float = Field(1.0, gt=0, le=MAX_WAIT_S)
    max_s: float = Field(300.0, gt=0, le=MAX_WAIT_S)
    jitter: float = Field(0.5, ge=0, le=1)
    max_attempts: StrictInt | None = Field(None, ge=1, le=20)

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> RetryPolicy:
        if self.max_s < self.base_s:
            raise ValueError("max_s is below base_s")
        return self

    def delay_s(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after attempt ``attempt`` (1-based) failed."""
        n = max(1, attempt)
        if self.backoff == "fixed":
            raw = self.base_s
        elif self.backoff == "linear":
            raw = self.base_s * n
        else:
            raw = self.base_s * 2.0 ** min(n - 1, 60)
        ceiling = min(self.max_s, raw)
        return float(ceiling * (1 - self.jitter * rand()))

    def merged(self, override: RetryPolicy | None) -> RetryPolicy:
        """This policy with the fields ``override`` was given with."""
        if override is None:
            return self
        given = override.model_dump(include=override.model_fields_set)
        return RetryPolicy.model_validate({**self.model_dump(), **given})


@dataclass(frozen=True, slots=True)
class RetryBounds:
    """What a submit may ask of a type's retries (``retry`` at submit)."""

    backoffs: tuple[Backoff, ...] = ("fixed", "linear", "exponential")
    min_base_s: float = 0.1
    max_base_s: float = 3600.0
    max_max_s: float = MAX_WAIT_S
    max_attempts: int = 20

    def check(self, policy: RetryPolicy) -> None:
        """InvalidInput naming the first field of ``policy`` outside these bounds."""
        problems = []
        if policy.backoff not in self.backoffs:
            problems.append(("backoff", f"one of {', '.join(self.backoffs)} for this type"))
        if not self.min_base_s <= policy.base_s <= self.max_base_s:
            problems.append(
                ("base_s", f"between {self.min_base_s:g} and {self.max_base_s:g} for this type")
            )
        if policy.max_s > self.max_max_s:
            problems.append(("max_s", f"at most {self.max_max_s:g} for this type"))
        if policy.max_attempts is not None and policy.max_attempts > self.max_attempts:
            problems.append(("max_attempts", f"at most {self.max_attempts} for this type"))
        if problems:
            details = [{"field": f"retry.{name}", "message": m} for name, m in problems]
            first = details[0]
            raise InvalidInput(f"{first['field']}: {first['message']}", details=details)


def install_default(base_s: float, max_s: float) -> RetryPolicy:
    """The install's policy (JOBCAST_RETRY_BASE_S, JOBCAST_RETRY_MAX_S), for types that
    declare none: exponential with jitter in its upper half."""
    return RetryPolicy.model_validate(
        {"backoff": "exponential", "base_s": base_s, "max_s": max(max_s, base_s), "jitter": 0.5}
    )


def policy_of(stored: Any) -> RetryPolicy | None:
    """A stored policy (JSON from the job's row), or None when there is none."""
    return None if stored is None else RetryPolicy.model_validate(stored)


__all__ = ["MAX_WAIT_S", "Backoff", "RetryBounds", "RetryPolicy", "install_default", "policy_of"]
