"""What a caller may ask of a job type: whether it may submit it (``access``), the
retry policy a submit's ``retry`` makes of the type's, within the type's bounds, and the
checks a submit and each job of a batch pass alike (who may name a subject, the size of
metadata, the time limit, the owner's submit rate).

``access="app"`` marks a type for app keys only (a cleanup, a re-index): an owner token
or a browser token that submits it gets a 403 that says why, and ``GET /api/job-types``
does not list it for them.
"""

from __future__ import annotations

from uuid import UUID

from jobcast.errors import Forbidden, InvalidInput
from jobcast.model import SubmitRequest, dumps
from jobcast.registry import JobType
from jobcast.retry import RetryPolicy
from server.auth import Caller
from server.state import Services


def may_submit(job_type: JobType, caller: Caller) -> bool:
    return job_type.access == "anyone" or caller.is_app


def check_access(job_type: JobType, caller: Caller) -> None:
    """Forbidden, saying why, when the caller may not submit jobs of this type."""
    if not may_submit(job_type, caller):
        raise Forbidden(
            f"job type {job_type.name!r} is submitted with an app key only "
            "(it is restricted to the app's backend, not its users)"
        )


def retry_policy_of(
    job_type: JobType, given: RetryPolicy | None, default: RetryPolicy
) -> RetryPolicy | None:
    """The policy to store with the job: the type's changed by ``given`` (None when no
    ``retry`` was given: the type's own applies); InvalidInput outside the type's bounds.
    ``default``: the install's policy, for a type that declares none."""
    if given is None:
        return None
    base = job_type.retry or default
    policy = base.merged(given)
    job_type.retry_bounds.check(policy)
    return policy


def check_about(submit: SubmitRequest, caller: Caller, max_metadata_bytes: int) -> None:
    """Forbidden when a caller other than an app key names a subject or tenant;
    InvalidInput when the metadata is over its size as JSON."""
    if (submit.subject is not None or submit.tenant is not None) and not caller.is_app:
        raise Forbidden("subject and tenant are given with an app key, not an owner token")
    if submit.metadata is not None and len(dumps(submit.metadata)) > max_metadata_bytes:
        raise InvalidInput(
            f"metadata: at most {max_metadata_bytes} bytes as JSON",
            details=[{"field": "metadata", "message": "too large"}],
        )


def timeout_of(job_type: JobType, submit: SubmitRequest) -> float:
    """The job's time limit: the one asked, else the type's; InvalidInput over the type's."""
    timeout_s = submit.timeout_seconds or job_type.timeout_s
    if timeout_s > job_type.timeout_s:
        raise InvalidInput(
            f"timeout_seconds: at most {job_type.timeout_s:g} for {job_type.name} jobs, "
            f"got {timeout_s:g}",
            details=[{"field": "timeout_seconds", "message": "over the type's time limit"}],
        )
    return timeout_s


async def check_submit_rate(services: Services, owner_id: UUID, caller_is_app: bool) -> None:
    """TooManyRequests past the owner's submit rate; an app key's rate is not limited (the
    operator who made the key trusts the backend that holds it)."""
    if caller_is_app:
        return
    settings = services.settings
    await services.limiter.check(
        "submit",
        str(owner_id),
        per_min=settings.submit_rate_per_min,
        burst=settings.submit_burst,
        what="submits",
    )
