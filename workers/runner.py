"""The one arq function: run one attempt of a jobcast job.

arq delivers at least once, so this is written to be run again safely: the
attempt is claimed in Postgres first (only a ``pending`` job can be claimed),
every write is fenced by that attempt, and a job that is already final is left
alone. The retry policy is jobcast's, not arq's: arq only carries the wait.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any
from uuid import UUID

from arq.worker import Retry

from jobcast.errors import InvalidInput, JobError, PermanentError, TransientError
from jobcast.model import JobStatus
from workers.context import AttemptLost, Reporter
from workers.state import WorkerState

log = logging.getLogger(__name__)

# Exceptions from job code that are worth retrying, besides TransientError.
_TRANSIENT = (TransientError, TimeoutError, ConnectionError, OSError)


def classify(exc: BaseException) -> str:
    """transient, permanent or unknown: decides whether a failure is retried."""
    if isinstance(exc, PermanentError | InvalidInput):
        return "permanent"
    if isinstance(exc, _TRANSIENT):
        return "transient"
    return "unknown"


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with full jitter in its upper half: base * 2^(attempt-1)."""
    ceiling = min(max_s, base_s * 2 ** (attempt - 1))
    return ceiling / 2 + random.random() * ceiling / 2


def describe_error(exc: BaseException, category: str) -> dict[str, Any]:
    message = str(exc) if isinstance(exc, JobError) else f"{type(exc).__name__}: {exc}"
    return {"type": type(exc).__name__, "category": category, "message": message or type(exc).__name__}


async def run_job(ctx: dict[str, Any], job_id: str) -> None:
    state: WorkerState = ctx["jobcast"]
    claim = await state.store.claim(UUID(job_id))
    if claim is None:
        log.info("job %s: not pending, nothing to run", job_id)
        return
    job, attempt = claim.job, claim.attempt
    log.info("job %s: %s attempt %d of %d started", job.id, job.type, attempt, job.max_attempts)
    if job.type not in state.registry:
        await state.store.finish(job.id, attempt, status=JobStatus.FAILED, error={
            "type": "UnknownJobType", "category": "permanent",
            "message": f"this worker does not know job type {job.type!r}",
        })
        return
    job_type = state.registry.get(job.type)
    reporter = Reporter(
        job_id=job.id, owner_id=job.owner_id, attempt=attempt, job_type=job_type,
        store=state.store, redis=ctx["redis"], settings=state.settings,
    )
    await reporter.emit(claim.event)
    try:
        params = job_type.parse_input(job.input)
        result = await asyncio.wait_for(job_type.run(reporter, params), job_type.timeout_s)
    except AttemptLost:
        log.info("job %s: attempt %d lost its claim; stopping", job.id, attempt)
        return
    except Exception as exc:
        await _failed(state, reporter, job.max_attempts, exc)
        return
    await reporter.emit(await state.store.finish(
        job.id, attempt, status=JobStatus.COMPLETED, result=result,
        message=f"Completed in {attempt} attempt{'s' if attempt > 1 else ''}",
    ))
    log.info("job %s: completed on attempt %d", job.id, attempt)


async def _failed(state: WorkerState, reporter: Reporter, max_attempts: int, exc: Exception) -> None:
    category = classify(exc)
    error = describe_error(exc, category)
    job_id, attempt = reporter.job_id, reporter.attempt
    if category != "permanent" and attempt < max_attempts:
        delay_s = backoff_s(attempt, state.settings.retry_base_s, state.settings.retry_max_s)
        message = (
            f"Retrying in {delay_s:.0f} s (attempt {attempt + 1} of {max_attempts}): "
            f"{error['message']}"
        )
        log.warning("job %s: attempt %d failed (%s); retry in %.1f s", job_id, attempt, category, delay_s)
        try:
            await reporter.emit(await state.store.retry_later(
                job_id, attempt, delay_s=delay_s, message=message, error=error,
            ))
        except AttemptLost:
            return
        raise Retry(defer=delay_s) from exc
    if category == "unknown":
        log.exception("job %s: attempt %d failed", job_id, attempt, exc_info=exc)
    else:
        log.warning("job %s: attempt %d failed (%s): %s", job_id, attempt, category, error["message"])
    try:
        await reporter.emit(await state.store.finish(
            job_id, attempt, status=JobStatus.FAILED, error=error, message=error["message"],
        ))
    except AttemptLost:
        pass
