"""What a running job reports through: steps and progress, persisted then published.

Every report is written to Postgres first (fenced by attempt) and only then
published on Redis, so a browser can always recover from ``job_events`` what
pub/sub missed. While Postgres is down a report is kept and written again, with
backoff, rather than dropped: the job's code waits at that report. Overall
progress is the weighted sum of step progress and never goes backwards within
an attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from jobcast import metrics
from jobcast.model import Event, StepState
from jobcast.registry import JobType, StepHandle, Upload
from jobcast.store.reports import ProgressReport, StepReport
from workers import family, metadata, waiting
from workers.checkpoints import Checkpoints, run_step
from workers.persistence import AttemptLost, persist, persist_event
from workers.progress import ProgressGate, Report
from workers.run_steps import RunStep, RunSteps
from workers.streams import Stream, Streams

if TYPE_CHECKING:
    from jobcast.settings import Settings
    from jobcast.store import Store
    from workers.state import WorkerState

log = logging.getLogger(__name__)
T = TypeVar("T")


class Reporter:
    """The ``JobContext`` a job's code gets: one per attempt."""

    def __init__(
        self,
        *,
        job_id: UUID,
        owner_id: UUID,
        attempt: int,
        priority: int,
        job_type: JobType,
        state: WorkerState,
    ) -> None:
        self.job_id = job_id
        self.owner_id = owner_id
        self.attempt = attempt
        self.priority = priority
        self._job_type = job_type
        self._state = state
        self._store = state.store
        self._settings = state.settings
        self.job_type_name = job_type.name
        self._weights = {s.name: s.weight for s in job_type.steps}
        self._titles = {s.name: s.title for s in job_type.steps}
        self._total_weight = sum(self._weights.values()) or 1.0
        self.start_from(Checkpoints())  # until the attempt has read its own
        self._step: str | None = None
        self._step_percent = 0.0
        self.overall = 0.0
        self._seq = 0  # the job's last event this attempt knows of
        # progress reports, at most one stored per window (workers.progress)
        self.progress_gate = ProgressGate(
            self._settings.progress_window_ms / 1000, self._write_progress
        )
        # live data: the streams it writes, the steps it adds at run time
        self.streams = Streams(self)
        self.run_steps = RunSteps(self, self._weights)

    def start_from(self, checkpoints: Checkpoints) -> None:
        """The steps completed in earlier attempts: skipped, their share already done."""
        self.checkpoints = checkpoints
        self._done_weight = sum(self._weights.get(n, 0.0) for n in checkpoints.completed)

    @property
    def store(self) -> Store:
        return self._store

    @property
    def state(self) -> WorkerState:
        return self._state

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def current_step(self) -> str | None:
        return self._step

    async def persist(self, call: Callable[[], Awaitable[T]]) -> T:
        """A Postgres call, retried while Postgres is away (``persist``)."""
        return await persist(
            call, deadline_s=self._settings.persist_deadline_s, what=f"job {self.job_id}"
        )

    async def publish(self, event: Event) -> None:
        """Publish a persisted event of another job (a parent's metadata)."""
        await self._state.publisher.publish(event)

    def lift_step_percent(self, percent: float) -> float:
        """The current step is at least ``percent`` done; overall progress now."""
        self._step_percent = max(self._step_percent, min(float(percent), 100.0))
        return self._advance()

    async def write(
        self, call: Callable[[], Awaitable[Event | None]], *, last: bool = False
    ) -> None:
        """Persist an event (fenced by attempt), then publish it."""
        if not await self.write_if(call, last=last):
            raise AttemptLost(f"job {self.job_id} attempt {self.attempt} is no longer running")

    async def write_if(
        self, call: Callable[[], Awaitable[Event | None]], *, last: bool = False
    ) -> bool:
        """``write`` for a change that may rightly not apply (None): whether it did. A
        progress report kept back (``workers.progress``) is written first. ``last``: the
        change moves the job out of running (it waits for input, or pauses), so the
        attempt's heartbeat may stop the attempt while the write is on its way; it runs to
        its end all the same, or the change would be stored and its event, with none after
        it, never reach the job's watchers."""
        async with self.progress_gate.held():
            if last:
                return await self._state.outlive_cancel(self._write_now(call))
            return await self._write_now(call)

    async def _write_now(self, call: Callable[[], Awaitable[Event | None]]) -> bool:
        event = await persist_event(
            self._store,
            self.job_id,
            self._seq,
            call,
            deadline_s=self._settings.persist_deadline_s,
            what=f"job {self.job_id}",
        )
        if event is None:
            return False
        if event.owner_id is None:  # read back: say whose it is
            event = replace(event, owner_id=self.owner_id, job_type=self.job_type_name)
        await self.emit(event)
        return True

    async def emit(self, event: Event | None) -> None:
        """Publish a persisted event; None means the write was fenced off."""
        if event is None:
            raise AttemptLost(f"job {self.job_id} attempt {self.attempt} is no longer running")
        self._seq = max(self._seq, event.seq)
        await self._state.publisher.publish(event)

    def current_progress(self) -> float:
        """Overall progress now (never below what this attempt reported)."""
        return self._advance()

    def _advance(self) -> float:
        if self._weights:
            current = self._weights.get(self._step or "", 0.0) * self._step_percent / 100
            computed = 100 * (self._done_weight + current) / self._total_weight
        else:
            computed = self._step_percent
        self.overall = round(max(self.overall, min(computed, 100.0)), 2)
        return self.overall

    async def _step_event(
        self, name: str, state: StepState, duration_ms: int | None, result: Any = None
    ) -> None:
        progress = self._advance()
        message = f"{self._titles[name]}…" if state is StepState.RUNNING else None
        report = StepReport(
            self.job_id, self.attempt, name, state, duration_ms, progress, message, result
        )
        await self.write(lambda: self._state.report_writes.write(report))

    @asynccontextmanager
    async def step(self, name: str) -> AsyncIterator[StepHandle]:
        if name not in self._weights:
            raise ValueError(f"job type {self._job_type.name!r} has no step {name!r}")
        if self.checkpoints.done(name):  # completed in an earlier attempt: nothing to write
            yield StepHandle(name, done=True, result=self.checkpoints.result(name))
            return
        await self.streams.flush()  # a pause here would fence off a later flush
        handle = StepHandle(name)
        self._step, self._step_percent = name, 0.0
        started = time.monotonic()
        try:
            await self._step_event(name, StepState.RUNNING, None)
        except AttemptLost:  # a step boundary: the start is refused while a pause is asked
            await waiting.pause_if_asked(self)
            raise
        try:
            yield handle
        except (Exception, asyncio.CancelledError) as exc:
            if not isinstance(exc, AttemptLost | asyncio.CancelledError):
                duration_ms = int((time.monotonic() - started) * 1000)
                try:
                    await self._step_event(name, StepState.FAILED, duration_ms)
                except AttemptLost:
                    pass
            raise
        duration_ms = int((time.monotonic() - started) * 1000)
        metrics.STEP_DURATION.labels(self._job_type.name, name).observe(duration_ms / 1000)
        await self.streams.flush()  # what the step wrote comes before its end
        self._done_weight += self._weights[name]
        self._step, self._step_percent = None, 0.0
        await self._step_event(name, StepState.COMPLETED, duration_ms, handle.result)
        self.checkpoints.keep(name, handle.result)

    async def run_step(
        self, name: str, fn: Callable[[], Awaitable[Any]], *, max_attempts: int | None = None
    ) -> Any:
        declared = next((s for s in self._job_type.steps if s.name == name), None)
        tries = max_attempts or (declared.max_attempts if declared else None)
        return await run_step(self, name, fn, max_attempts=tries)

    def checkpoint(self, name: str) -> Any:
        return self.checkpoints.result(name)

    async def ask(
        self,
        prompt: str,
        schema: dict[str, Any],
        *,
        timeout_s: float | None = None,
        on_timeout: str = "fail",
        default: Any = None,
    ) -> Any:
        await self.streams.flush()  # once it waits, the attempt may write nothing more
        return await waiting.ask(
            self, prompt, schema, timeout_s=timeout_s, on_timeout=on_timeout, default=default
        )

    def stream(self, name: str = "output") -> Stream:
        return self.streams.get(name)

    async def add_step(
        self,
        title: str,
        *,
        share: float | None = None,
        counters: dict[str, int] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> RunStep:
        shares = None if share is None else [share]
        steps = await self.run_steps.add_many(
            [title], shares=shares, counters=counters, metadata=metadata
        )
        return steps[0]

    async def add_steps(
        self, titles: list[str], *, counters: dict[str, int] | None = None
    ) -> list[RunStep]:
        return await self.run_steps.add_many(titles, counters=counters)

    async def set_metadata(
        self, keys: dict[str, Any] | None = None, /, *, parent: bool = False, **more: Any
    ) -> None:
        await metadata.set_metadata(self, {**(keys or {}), **more}, parent=parent)

    async def progress(self, percent: float, message: str | None = None) -> None:
        self._step_percent = max(0.0, min(float(percent), 100.0))
        await self.progress_gate.report(Report(self._advance(), self._step, message))

    async def _write_progress(self, report: Report) -> None:
        """Store a progress report the gate lets through, then publish it."""
        written = await self._write_now(
            lambda: self._state.report_writes.write(
                ProgressReport(
                    self.job_id, self.attempt, report.progress, report.step, report.message
                )
            )
        )
        if not written:
            raise AttemptLost(f"job {self.job_id} attempt {self.attempt} is no longer running")

    async def read_upload(self, upload_id: str) -> Upload:
        return await family.read_upload(self, upload_id)

    async def spawn(self, job_type: str, job_input: dict[str, Any]) -> str:
        """Start a child job; it inherits this job's owner and priority."""
        return await family.spawn(self, job_type, job_input)

    async def wait_children(self, child_ids: list[str]) -> list[dict[str, Any]]:
        """Wait until these children end; this step's progress follows theirs."""
        return await family.wait_children(self, child_ids)
