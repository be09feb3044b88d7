"""Checkpoints: where an attempt starts, and the results of the steps it skips.

A step's result is stored in the same statement as its ``completed`` event, so a step
either completed with its checkpoint or did not complete at all: a worker killed in
between runs that step again on the next attempt, and never an earlier one. The claim
keeps completed steps as they are; the attempt loads them once (``Checkpoints.load``)
and skips each: ``job.step(name)`` then writes nothing and gives ``done=True`` with the
stored result, ``job.run_step(name, fn)`` returns the result without calling ``fn``.
The answers people gave to questions of the job's steps come in the same read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from jobcast.errors import InvalidInput, PermanentError
from jobcast.store import StepCheckpoint
from workers.persistence import AttemptLost

if TYPE_CHECKING:
    from workers.context import Reporter

log = logging.getLogger(__name__)
T = TypeVar("T")

# first pause between two tries of a step within one attempt (doubled each try, at most 30 s)
STEP_RETRY_BASE_S = 0.5
_STEP_RETRY_MAX_S = 30.0


class Checkpoints:
    """The completed steps of a job (with their results) and the answers it was given."""

    def __init__(self, steps: Iterable[StepCheckpoint] = ()) -> None:
        self._order: list[str] = []
        self._results: dict[str, Any] = {}
        self._answers: dict[str, Any] = {}
        for step in steps:
            self._order.append(step.name)
            if step.completed:
                self._results[step.name] = step.result
            if step.answered:
                self._answers[step.name] = step.answer

    def done(self, name: str) -> bool:
        return name in self._results

    def result(self, name: str) -> Any:
        """A completed step's stored result; LookupError when it has not completed."""
        try:
            return self._results[name]
        except KeyError:
            raise LookupError(f"step {name!r} has not completed: it has no checkpoint") from None

    def keep(self, name: str, result: Any) -> None:
        """A step of this attempt completed (its checkpoint is committed)."""
        self._results[name] = result

    def answered(self, step: str) -> bool:
        return step in self._answers

    def answer(self, step: str) -> Any:
        return self._answers[step]

    @property
    def completed(self) -> list[str]:
        return [name for name in self._order if name in self._results]

    def resume_point(self) -> str | None:
        """The first step that did not complete (None: all did, or none is declared)."""
        return next((name for name in self._order if name not in self._results), None)

    @property
    def resumes(self) -> bool:
        """Whether an attempt starting here resumes (some step completed, or was answered)."""
        return bool(self._results) or bool(self._answers)


def _permanent(exc: BaseException) -> bool:
    return isinstance(exc, PermanentError | InvalidInput)


async def run_step(
    reporter: Reporter,
    name: str,
    fn: Callable[[], Awaitable[T]],
    *,
    max_attempts: int | None,
    retry_base_s: float = STEP_RETRY_BASE_S,
) -> T | Any:
    """The step's checkpoint if it completed before; else ``fn`` run as the step, tried up
    to ``max_attempts`` times on errors that are not permanent, its result stored."""
    if reporter.checkpoints.done(name):
        return reporter.checkpoints.result(name)
    tries = max(1, max_attempts or 1)
    for attempt in range(1, tries + 1):
        try:
            async with reporter.step(name) as step:
                step.result = await fn()
            return step.result
        except Exception as exc:
            if attempt >= tries or _permanent(exc) or isinstance(exc, AttemptLost):
                raise
            delay_s = min(_STEP_RETRY_MAX_S, retry_base_s * 2 ** (attempt - 1))
            log.warning(
                "job %s: step %s failed on try %d of %d (%s); again in %.1f s",
                reporter.job_id,
                name,
                attempt,
                tries,
                exc,
                delay_s,
            )
            await asyncio.sleep(delay_s)
    raise AssertionError("unreachable")  # pragma: no cover
