"""The one arq function: run one attempt of a jobcast job.

arq delivers at least once, so this is written to be run again safely: the
attempt is claimed in Postgres first (only a ``pending`` job can be claimed),
every write is fenced by that attempt, and a job that is already final is left
alone. The retry policy is jobcast's, not arq's: arq only carries the wait.

The job's code runs in a task of its own, which the heartbeat cancels when the
attempt is no longer this worker's (cancelled by its owner, or handed to another
worker). When the worker itself is stopping, the attempt is handed back: the
job is pending again and the attempt does not count.

An attempt starts from the job's checkpoints: the steps completed before are
skipped (a ``resumed`` event names the step it resumes at). It may also end
without failing or completing (``Suspended``): a step waits for a person's answer
(``waiting``) or the owner paused the job at a step boundary (``paused``); the
attempt is not counted and the arq job simply ends, so nothing holds a worker.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from arq.worker import Retry
from pydantic import BaseModel
from redis.exceptions import RedisError

from jobcast import metrics
from jobcast.errors import (
    InvalidInput,
    JobError,
    PermanentError,
    StorageUnavailable,
    TransientError,
)
from jobcast.logs import job_context
from jobcast.model import Claim, JobStatus
from jobcast.registry import JobType
from jobcast.store import Held
from jobcast.store.reports import JobEnd
from workers.checkpoints import Checkpoints
from workers.context import Reporter
from workers.persistence import AttemptLost
from workers.released import queue_in_place, queue_released
from workers.retries import next_try
from workers.state import WorkerContext, WorkerState
from workers.waiting import Suspended

log = logging.getLogger(__name__)

# How soon a job handed back by a worker that cannot reach Postgres is looked at again
# (by any worker: the others can start it).
_STORAGE_DOWN_RETRY_S = 0.5

# Exceptions from job code that are worth retrying, besides TransientError: timeouts and
# failures to reach a host (httpx's, the HTTP client jobcast ships: ``_http_client_class``).
_TRANSIENT = (TransientError, TimeoutError, ConnectionError, OSError)
_PERMANENT = (PermanentError, InvalidInput)
# Answers worth asking again: a timeout, a rate limit, a server error.
_TRANSIENT_STATUS = frozenset({408, 425, 429})


class JobTimeout(JobError):
    """The attempt ran past its time limit."""


def classify(exc: BaseException, job_type: JobType | None = None) -> str:
    """transient, permanent or unknown: decides whether a failure is retried.

    The job type's ``retry_on`` classes are transient whatever else they are.
    """
    if isinstance(exc, JobTimeout):
        return "transient" if job_type is not None and job_type.retry_on_timeout else "permanent"
    if job_type is not None and isinstance(exc, job_type.retry_on):
        return "transient"
    if isinstance(exc, _PERMANENT):
        return "permanent"
    if isinstance(exc, _TRANSIENT):
        return "transient"
    return _http_client_class(exc)


def _http_client_class(exc: BaseException) -> str:
    """An error of httpx: its timeouts, network and proxy errors and a connection the server
    dropped are transient, a URL it cannot use fails the same way on every try, an answer
    is transient when it is a server error, a timeout or a rate limit.

    httpx is not imported here: with its command line (click, rich, pygments) it is half a
    second of a worker's start, and job code that never imports it raises none of its errors.
    """
    httpx = sys.modules.get("httpx")
    if httpx is None:
        return "unknown"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return "permanent"
    if isinstance(
        exc,
        httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError | httpx.ProxyError,
    ):
        return "transient"
    if isinstance(exc, httpx.HTTPStatusError):  # from response.raise_for_status()
        code = exc.response.status_code
        return "transient" if code >= 500 or code in _TRANSIENT_STATUS else "unknown"
    return "unknown"


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with jitter in its upper half: about base * 2^(attempt-1)."""
    ceiling = min(max_s, base_s * 2.0 ** (attempt - 1))
    return float(ceiling / 2 + random.random() * ceiling / 2)


def describe_error(exc: BaseException, category: str) -> dict[str, Any]:
    message = str(exc) if isinstance(exc, JobError) else f"{type(exc).__name__}: {exc}"
    return {
        "type": type(exc).__name__,
        "category": category,
        "message": message or type(exc).__name__,
    }


async def _run_code(
    job_type: JobType, reporter: Reporter, raw_input: dict[str, Any], timeout_s: float
) -> Any:
    params = job_type.parse_input(raw_input)
    scope = asyncio.timeout(timeout_s)
    try:
        async with scope, reporter.streams:  # streams are flushed before the job ends
            return await job_type.run(reporter, params)
    except TimeoutError as exc:
        if scope.expired():  # ours, not a timeout inside the job's own code
            raise JobTimeout(f"the job ran past its time limit of {timeout_s:g} s") from exc
        raise


async def run_job(ctx: WorkerContext, job_id: str) -> None:
    state = ctx["jobcast"]
    this = asyncio.current_task()
    if this is not None:
        state.running.add(this)
        this.add_done_callback(state.running.discard)
    # A job not started yet is handed straight back to the queue while this worker's
    # Postgres does not answer (known from a beat or from this claim), for a worker that
    # reaches it: holding it would keep it from every worker until the sweep found it.
    if state.heartbeat.storage_down:
        log.info("job %s: postgres does not answer this worker; handed back", job_id)
        raise Retry(defer=_STORAGE_DOWN_RETRY_S)
    try:
        claim = await state.claims.claim(UUID(job_id))
    except StorageUnavailable as exc:
        state.heartbeat.storage_failed()
        log.info("job %s: could not claim it (%s); handed back", job_id, exc)
        raise Retry(defer=_STORAGE_DOWN_RETRY_S) from exc
    if claim is None:
        log.info("job %s: not pending, nothing to run", job_id)
        return
    if isinstance(claim, Held):
        # parked in Postgres by the claim itself: off the queue until a slot of its key
        # frees (the job holding it releases it as it ends) or the throttle's window passes
        log.info("job %s: held by %s; parked", job_id, claim.key)
        waiting = await state.store.note_waiting(UUID(job_id), claim.reason)
        if waiting is not None:
            await state.publisher.publish(waiting)
        if claim.released is not None:
            await queue_in_place(state.queue, UUID(job_id), claim.released)
        return
    with job_context(claim.job.id, claim.job.type, claim.attempt):
        await _run_claimed(state, claim, ctx["score"])


async def _take_off_queue(state: WorkerState, job_id: UUID) -> bool:
    """Take the claimed job off arq's queue, so that no worker's poll looks at it again
    while it runs (``Queue.taken``); whether it was. Left there if Redis fails meanwhile:
    arq's polls pass it by, as they did before."""
    try:
        await state.queue.taken(job_id)
    except (RedisError, OSError, TimeoutError) as exc:
        log.info("job %s: left on arq's queue while it runs (%s)", job_id, exc)
        return False
    return True


async def _put_back(state: WorkerState, job_id: UUID, score: int) -> None:
    try:
        await state.queue.put_back(job_id, score)
    except (RedisError, OSError, TimeoutError) as exc:  # the sweep queues it when it is due
        log.warning("job %s: not put back on arq's queue for its retry (%s)", job_id, exc)


async def _run_claimed(state: WorkerState, claim: Claim, score: int) -> None:
    """Run a claimed attempt to its end. Wherever the worker's stop finds it, from the
    claim on, the attempt is handed back: as it starts (here), or as its code runs
    (``_attempt``, which also stops the code)."""
    job, attempt = claim.job, claim.attempt
    log.debug("job %s: %s attempt %d of %d started", job.id, job.type, attempt, job.max_attempts)
    job_type = state.registry.get(job.type) if job.type in state.registry else None
    reporter = Reporter(
        job_id=job.id,
        owner_id=job.owner_id,
        attempt=attempt,
        priority=job.priority,
        job_type=job_type or JobType(job.type, job.type, BaseModel, _no_code),
        state=state,
    )
    taken = False
    try:
        try:
            await reporter.emit(claim.event)
            if claim.released is not None:  # its fairness group's next takes its place
                await queue_in_place(state.queue, job.id, claim.released)
            taken = await _take_off_queue(state, job.id)
            await _start(state, reporter, claim)
        except asyncio.CancelledError:
            await state.outlive_cancel(_hand_back(state, reporter))
            raise
        if job_type is None:
            unknown = PermanentError(f"this worker does not know job type {job.type!r}")
            await _finish_failed(state, reporter, unknown, "permanent", alone=claim.may_release)
            return
        await _attempt(state, reporter, job_type, claim)
    except Retry:
        if taken:  # arq moves a retried job on from where it was on the queue
            await _put_back(state, job.id, score)
        raise
    except AttemptLost:
        log.info("job %s: attempt %d is no longer ours; stopping", job.id, attempt)
    finally:
        reporter.progress_gate.close()  # every way out wrote its last report, or may not
        # a job of no concurrency key, whose type has no cap, limit or parked jobs, released
        # none (one parked on its type in a limit set while it ran: the outbox queues it)
        if claim.may_release:
            await queue_released(state.store, state.queue, job.id)


async def _start(state: WorkerState, reporter: Reporter, claim: Claim) -> None:
    """Where the attempt starts: after the steps that earlier attempts completed (the
    claim read them)."""
    reporter.start_from(Checkpoints(claim.checkpoints))
    if reporter.checkpoints.resumes:
        await _resumed(state, reporter, reporter.checkpoints)


async def _resumed(state: WorkerState, reporter: Reporter, checkpoints: Checkpoints) -> None:
    """The attempt resumes from checkpoints: say at which step, and start at their share."""
    step, skipped = checkpoints.resume_point(), checkpoints.completed
    progress = reporter.current_progress()
    await reporter.write(
        lambda: state.store.record_resumed(
            reporter.job_id, reporter.attempt, step=step, skipped=skipped, progress=progress
        )
    )
    log.info("job %s: attempt %d resumes at step %s", reporter.job_id, reporter.attempt, step)


async def _no_code(_job: Any, _params: Any) -> None:
    raise PermanentError("no code for this job type")


async def _attempt(state: WorkerState, reporter: Reporter, job_type: JobType, claim: Claim) -> None:
    job, attempt = claim.job, claim.attempt
    task: asyncio.Task[Any] = asyncio.create_task(
        _run_code(job_type, reporter, job.input, min(job.timeout_s, job_type.timeout_s)),
        name=f"job-{job.id}",
    )
    running = state.heartbeat.track(job.id, attempt, task)
    try:
        result = await task
    except Suspended as stop:  # waiting for input, or paused: written already, not a failure
        log.info("job %s: attempt %d stops: %s", job.id, attempt, stop)
        return
    except asyncio.CancelledError:
        if running.lost:
            log.info("job %s: attempt %d stopped: cancelled or taken over", job.id, attempt)
            return
        # the worker is stopping: give the attempt back so another worker starts it afresh
        task.cancel()
        state.outlives(task)  # the store stays open for the code's last write, if it makes one
        await state.outlive_cancel(_hand_back(state, reporter))
        raise
    except Exception as exc:
        if isinstance(exc, AttemptLost):
            raise
        await _failed(state, reporter, job_type, job.max_attempts, exc, alone=claim.may_release)
        return
    finally:
        state.heartbeat.untrack(job.id)
    message = f"Completed in {attempt} attempt{'s' if attempt > 1 else ''}"
    end = JobEnd(job.id, attempt, JobStatus.COMPLETED, result=result, message=message)
    await _end(state, reporter, end, alone=claim.may_release)
    metrics.JOBS_COMPLETED.labels(job.type).inc()
    if job.started_at is not None:
        metrics.JOB_DURATION.labels(job.type).observe(
            (datetime.now(UTC) - job.started_at).total_seconds()
        )
    log.info("job %s: completed on attempt %d", job.id, attempt)


async def _hand_back(state: WorkerState, reporter: Reporter) -> None:
    try:
        await reporter.write(
            lambda: state.store.hand_back(
                reporter.job_id,
                reporter.attempt,
                message="The worker stopped; the job will start again on another worker",
            )
        )
        log.info("job %s: attempt %d handed back", reporter.job_id, reporter.attempt)
    except (AttemptLost, Exception) as exc:  # the sweep recovers it from a stale heartbeat
        log.warning(
            "job %s: could not hand back attempt %d: %s", reporter.job_id, reporter.attempt, exc
        )


async def _failed(
    state: WorkerState,
    reporter: Reporter,
    job_type: JobType,
    max_attempts: int,
    exc: Exception,
    *,
    alone: bool,
) -> None:
    category = classify(exc, job_type)
    error = describe_error(exc, category)
    job_id, attempt = reporter.job_id, reporter.attempt
    plan = None
    if category != "permanent" and attempt < max_attempts:
        plan = await next_try(state, job_type, job_id, attempt, max_attempts, exc, error["message"])
    if plan is not None:
        delay_s, message = plan.delay_s, plan.message
        log.warning(
            "job %s: attempt %d failed (%s); retry in %.1f s", job_id, attempt, category, delay_s
        )
        await reporter.write(
            lambda: state.store.retry_later(
                job_id,
                attempt,
                delay_s=delay_s,
                message=message,
                error=error,
            )
        )
        metrics.JOBS_RETRIED.labels(job_type.name).inc()
        raise Retry(defer=delay_s) from exc
    if category == "unknown":
        log.error("job %s: attempt %d failed", job_id, attempt, exc_info=exc)
    await _finish_failed(state, reporter, exc, category, alone=alone)


async def _end(state: WorkerState, reporter: Reporter, end: JobEnd, *, alone: bool) -> None:
    """Write the attempt's end. With the ends of the worker's other jobs, in one statement
    (``ReportWrites``), unless it may release parked jobs (``Claim.may_release``): a release
    takes its key's lock to the commit, and a statement ending many such jobs would hold
    several keys' locks at once, which two workers' statements could each wait for in a
    circle. Such an end is its own statement, as it always was."""
    if alone:
        await reporter.write(lambda: state.store.record_end(end))
    else:
        await reporter.write(lambda: state.report_writes.write(end))


async def _finish_failed(
    state: WorkerState,
    reporter: Reporter,
    exc: BaseException,
    category: str,
    *,
    alone: bool,
) -> None:
    error = describe_error(exc, category)
    log.warning("job %s: failed (%s): %s", reporter.job_id, category, error["message"])
    end = JobEnd(
        reporter.job_id, reporter.attempt, JobStatus.FAILED, error=error, message=error["message"]
    )
    await _end(state, reporter, end, alone=alone)
    metrics.JOBS_FAILED.labels(reporter.job_type_name).inc()
