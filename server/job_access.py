"""What a caller may ask of a job type: whether it may submit it (``access``), and the
retry policy a submit's ``retry`` makes of the type's, within the type's bounds.

``access="app"`` marks a type for app keys only (a cleanup, a re-index): an owner token
or a browser token that submits it gets a 403 that says why, and ``GET /api/job-types``
does not list it for them.
"""

from __future__ import annotations

from jobcast.errors import Forbidden
from jobcast.registry import JobType
from jobcast.retry import RetryPolicy
from server.auth import Caller


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
