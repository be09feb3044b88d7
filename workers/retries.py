"""When a failed attempt is tried again: the job's retry policy, an upstream's wait, and
the error classes its type retries at most once.

``next_try`` answers the wait and the message the job shows, or None when the job is
to fail now (a once-only error class seen a second time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from jobcast.errors import StorageUnavailable, TransientError
from jobcast.registry import JobType
from jobcast.retry import MAX_WAIT_S, RetryPolicy, install_default
from workers.state import WorkerState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NextTry:
    delay_s: float
    message: str


def default_policy(state: WorkerState) -> RetryPolicy:
    """The install's policy, for types that declare none."""
    return install_default(state.settings.retry_base_s, state.settings.retry_max_s)


async def next_try(
    state: WorkerState,
    job_type: JobType,
    job_id: UUID,
    attempt: int,
    max_attempts: int,
    exc: BaseException,
    reason: str,
) -> NextTry | None:
    """The wait before attempt ``attempt + 1`` and what the job says about it; None: fail."""
    if isinstance(exc, job_type.retry_once) and await _spent(state, job_id, exc):
        log.info("job %s: %s was retried once already", job_id, type(exc).__name__)
        return None
    then = f"(attempt {attempt + 1} of {max_attempts}): {reason}"
    asked = exc.retry_after_s if isinstance(exc, TransientError) else None
    if asked is not None and asked >= 0:
        delay_s = min(float(asked), MAX_WAIT_S)
        at = datetime.now(UTC) + timedelta(seconds=delay_s)
        when = at.strftime("%H:%M:%S UTC") if delay_s < 86_400 else at.isoformat(timespec="seconds")
        return NextTry(delay_s, f"Retrying at {when}, the service asked us to wait {then}")
    try:
        stored = await state.store.retry_policy(job_id)
    except StorageUnavailable:  # the retry itself is written with persist's patience
        stored = None
    policy = stored or job_type.retry or default_policy(state)
    delay_s = policy.delay_s(attempt)
    return NextTry(delay_s, f"Retrying in {max(1, round(delay_s))} s {then}")


async def _spent(state: WorkerState, job_id: UUID, exc: BaseException) -> bool:
    try:
        return await state.store.spend_retry_once(job_id, type(exc).__name__)
    except StorageUnavailable:  # unknown: fail rather than retry a second time
        return True
