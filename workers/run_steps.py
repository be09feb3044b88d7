"""Steps a job's code adds while it runs (one per item found), beside its type's steps.

A step added at run time belongs to a declared step, its parent (the step running when it
was added), and takes a ``share`` of the parent's weight: a fraction, reserved when the
step is added. ``add_steps`` splits what is left of the parent among several at once, the
usual case (the items are known together); ``add_step`` takes ``share`` or, without it,
all that is left. The parent's progress is the sum of its run-time steps' shares times
their progress (a step's counters ``done / total`` while it runs, 1 once it completed or
failed): as shares are reserved, never given back, and overall progress is never lowered
within an attempt, the bar only moves forward.

A run-time step fails on its own: ``fail(error)`` (or an error leaving ``async with
step``) stores its error and the job goes on, unless the code lets the error through.
Run-time steps are not checkpoints: a later attempt that adds the same name starts it
afresh.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from jobcast.errors import LimitExceeded
from jobcast.model import StepState
from jobcast.store import RunStepChange

if TYPE_CHECKING:
    from workers.context import Reporter

_TITLE_MAX = 200
_MESSAGE_MAX = 1000


class RunStep:
    """A step added at run time: ``async with step:`` runs it, or call its verbs."""

    def __init__(self, steps: RunSteps, *, name: str, title: str, parent: str | None, share: float):
        self._steps = steps
        self.name = name
        self.title = title
        self.parent = parent
        self.share = share
        self.state = StepState.WAITING
        self.counters: dict[str, int] | None = None
        self._started = 0.0

    def fraction(self) -> float:
        """How far along it is, 0 to 1."""
        if self.state in (StepState.COMPLETED, StepState.FAILED):
            return 1.0
        if self.state is StepState.RUNNING and self.counters and self.counters.get("total"):
            return min(self.counters.get("done", 0) / self.counters["total"], 1.0)
        return 0.0

    async def start(self) -> None:
        self._started = time.monotonic()
        await self._steps.change(self, RunStepChange(state=StepState.RUNNING))

    async def count(self, done: int, total: int | None = None) -> None:
        """Its counters: ``done`` of ``total`` (total kept from before when not given)."""
        if done < 0 or (total is not None and total < 0):
            raise ValueError(f"counters are not negative: done={done}, total={total}")
        counters = {
            "done": done,
            "total": total if total is not None else (self.counters or {}).get("total"),
        }
        await self._steps.change(self, RunStepChange(counters=counters))

    async def set_metadata(self, keys: dict[str, Any] | None = None, /, **more: Any) -> None:
        """Merge keys into this step's own metadata."""
        await self._steps.change(self, RunStepChange(metadata={**(keys or {}), **more}))

    async def complete(self) -> None:
        await self._steps.change(
            self, RunStepChange(state=StepState.COMPLETED, duration_ms=self._ms())
        )

    async def fail(self, error: BaseException | str) -> None:
        """Mark it failed with its own error (shown as a job's is); the job goes on."""
        if isinstance(error, BaseException):
            # late: the runner imports the context, which imports this module
            from workers.runner import classify, describe_error

            shown = describe_error(error, classify(error))
        else:
            shown = {"type": "StepError", "category": "unknown", "message": error}
        shown["message"] = str(shown["message"])[:_MESSAGE_MAX]
        change = RunStepChange(state=StepState.FAILED, error=shown, duration_ms=self._ms())
        await self._steps.change(self, change)

    def _ms(self) -> int | None:
        return int((time.monotonic() - self._started) * 1000) if self._started else None

    async def __aenter__(self) -> RunStep:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.complete()
        elif isinstance(exc, Exception):
            await self.fail(exc)


class RunSteps:
    """The steps one attempt added at run time, and their share of the progress."""

    def __init__(self, reporter: Reporter, weights: dict[str, float]) -> None:
        self._reporter = reporter
        self._weights = weights
        self._steps: dict[str, RunStep] = {}
        self._reserved: dict[str | None, float] = {}

    async def add_many(
        self,
        titles: Iterable[str],
        *,
        shares: list[float] | None = None,
        counters: dict[str, int] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[RunStep]:
        titles = list(titles)
        parent = self._reporter.current_step
        left = max(0.0, 1.0 - self._reserved.get(parent, 0.0))
        if shares is None:
            shares = [left / len(titles)] * len(titles) if titles else []
        if len(self._steps) + len(titles) > self._reporter.settings.run_steps_max:
            raise LimitExceeded(
                f"{len(self._steps) + len(titles)} steps added at run time is over the limit "
                f"of {self._reporter.settings.run_steps_max} (JOBCAST_RUN_STEPS_MAX)"
            )
        added = []
        for title, share in zip(titles, shares, strict=True):
            added.append(await self._add(parent, title, share, counters, metadata))
        return added

    async def _add(
        self,
        parent: str | None,
        title: str,
        share: float,
        counters: dict[str, int] | None,
        metadata: dict[str, Any] | None,
    ) -> RunStep:
        if not title or len(title) > _TITLE_MAX:
            raise ValueError(f"a step's title is 1 to {_TITLE_MAX} characters: {title[:40]!r}")
        left = max(0.0, 1.0 - self._reserved.get(parent, 0.0))
        if not 0 <= share <= left + 1e-9:
            raise ValueError(f"share {share:g} is not within what is left of the step: {left:g}")
        self._reserved[parent] = self._reserved.get(parent, 0.0) + share
        name = (
            f"{parent or 'job'}.{len([s for s in self._steps.values() if s.parent == parent]) + 1}"
        )
        step = RunStep(self, name=name, title=title, parent=parent, share=share)
        step.counters = counters
        self._steps[name] = step
        weight = self._weights.get(parent or "", 1.0) * share
        payload = self._payload(
            step,
            state=StepState.WAITING,
            title=title,
            share=share,
            counters=counters,
            metadata=metadata,
        )
        reporter = self._reporter
        await reporter.write(
            lambda: reporter.store.add_run_step(
                reporter.job_id,
                reporter.attempt,
                name=name,
                title=title,
                parent=parent,
                share=share,
                weight=weight,
                counters=counters,
                metadata=metadata,
                payload=payload,
            )
        )
        return step

    async def change(self, step: RunStep, change: RunStepChange) -> None:
        if change.state is not None:
            step.state = change.state
        if change.counters is not None:
            step.counters = change.counters
        progress = self._reporter.lift_step_percent(100 * self.fraction(step.parent))
        payload = self._payload(
            step,
            # only a change of state says one: a count is not a new start
            state=change.state,
            counters=change.counters,
            metadata=change.metadata,
            error=change.error,
            duration_ms=change.duration_ms,
        )
        payload["progress"] = progress
        reporter = self._reporter
        await reporter.write(
            lambda: reporter.store.update_run_step(
                reporter.job_id,
                reporter.attempt,
                step.name,
                change,
                progress=progress,
                payload=payload,
            )
        )

    def fraction(self, parent: str | None) -> float:
        """How far the parent is along, from its run-time steps alone."""
        return sum(s.share * s.fraction() for s in self._steps.values() if s.parent == parent)

    def _payload(self, step: RunStep, *, state: StepState | None, **fields: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "step": step.name,
            "parent": step.parent,
            "progress": self._reporter.overall,
        }
        if state is not None:
            payload["state"] = str(state)
        payload.update({k: v for k, v in fields.items() if v is not None})
        return payload
