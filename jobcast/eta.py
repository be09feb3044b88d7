"""How long a job will take: from the recent history of its type, step by step.

For each step, the median duration over the type's last completed jobs. Where the
type says how its work grows with its input (``JobType.scale``, e.g. the demo's
``duration``, or ``"upload_bytes"``: the bytes of the files the job reads), durations
are divided by each job's scale before the median and multiplied by the new job's scale
after it; a job whose scale is unknown gets none of it. With too little history for a step,
the step's declared ``estimate_s`` is used, else its weight's share of what the
declared steps leave of the type's ``estimate`` (or, when they leave nothing, the
declared steps' seconds per weight): a type's first job is estimated from its
steps' estimates, before any history. Each process keeps the medians for a short
while, so the submit path does not query history on every request.
"""

from __future__ import annotations

import statistics
import time
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from jobcast.model import Job, JobStatus, StepState
from jobcast.registry import JobType
from jobcast.store import Store

_MIN_SAMPLES = 3
_CACHE_S = 30.0


class Estimator:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[str, tuple[float, dict[str, float]]] = {}

    async def _per_unit(self, job_type: JobType) -> dict[str, float]:
        """Median seconds per unit of scale, per step, from recent history (cached)."""
        cached = self._cache.get(job_type.name)
        if cached is not None and time.monotonic() - cached[0] < _CACHE_S:
            return cached[1]
        samples: dict[str, list[float]] = {}
        for row in await self._store.step_history(job_type.name):
            scale = (
                float(row["upload_bytes"]) or None
                if job_type.scale == "upload_bytes"
                else _scale_of(job_type, row["input"])
            )
            if scale and row["duration_ms"] is not None:
                samples.setdefault(row["name"], []).append(row["duration_ms"] / 1000 / scale)
        medians = {
            name: statistics.median(values)
            for name, values in samples.items()
            if len(values) >= _MIN_SAMPLES
        }
        self._cache[job_type.name] = (time.monotonic(), medians)
        return medians

    async def steps(
        self, job_type: JobType, job_input: Any, *, upload_bytes: int | None = None
    ) -> dict[str, float]:
        """Expected seconds for each step of a job with this input (and, when known, the
        bytes of its uploads: they are read from the store otherwise)."""
        scale = await self._scale(job_type, job_input, upload_bytes)
        # with no scale to multiply it by (an input past its type), history says nothing
        per_unit = await self._per_unit(job_type) if scale is not None else {}
        fallback = _undeclared_rate(job_type, _declared(job_type, job_input))
        return {
            s.name: (
                per_unit[s.name] * (scale or 1.0)
                if s.name in per_unit
                else s.estimate_s
                if s.estimate_s is not None
                else fallback * s.weight
            )
            for s in job_type.steps
        }

    async def total(self, job_type: JobType, job_input: Any) -> float:
        if not job_type.steps:
            return _declared(job_type, job_input)
        return round(sum((await self.steps(job_type, job_input)).values()), 2)

    async def remaining(self, job_type: JobType, job: Job) -> tuple[float | None, dict[str, float]]:
        """Seconds left (None once final) and each step's expected seconds."""
        steps = (
            await self.steps(job_type, job.input, upload_bytes=job.upload_bytes)
            if job_type.steps
            else {}
        )
        if job.status.final:
            return None, steps
        if not steps:
            total = _declared(job_type, job.input)
            return round(total * (1 - job.progress / 100), 2), steps
        # the job's own steps, as they were when it was submitted: its type may have renamed,
        # added or dropped steps since, and its progress was weighted by these
        total_weight = sum(s.weight for s in job.steps) or 1.0
        done_weight = sum(s.weight for s in job.steps if s.status is StepState.COMPLETED)
        declared_total = _declared(job_type, job.input)
        left = 0.0
        for view in job.steps:
            if view.name not in steps:  # a step the type no longer declares: its weight's share
                steps[view.name] = declared_total * view.weight / total_weight
            expected = steps[view.name]
            if view.status is StepState.COMPLETED:
                continue
            if view.status is StepState.RUNNING and job.status is JobStatus.RUNNING:
                done_here = job.progress / 100 * total_weight - done_weight
                step_share = done_here / view.weight if view.weight > 0 else 0.0
                left += expected * (1 - min(max(step_share, 0.0), 1.0))
            else:
                left += expected
        return round(left, 2), steps

    async def _scale(
        self, job_type: JobType, job_input: Any, upload_bytes: int | None
    ) -> float | None:
        if job_type.scale != "upload_bytes":
            return _scale_of(job_type, job_input)
        if upload_bytes is not None:
            return float(upload_bytes) or None
        try:
            params = job_type.input_model.model_validate(job_input)
            ids = [UUID(str(i)) for i in job_type.uploads(params)]
        except (ValidationError, ValueError):
            return None
        return float(await self._store.upload_bytes(ids)) or None


def _undeclared_rate(job_type: JobType, declared_total: float) -> float:
    """Seconds per unit of weight for a step with neither history nor ``estimate_s``.

    The type's estimate is the whole job: such steps share what the declared steps'
    estimates leave of it, by weight. When they leave nothing (the type kept its default
    estimate of a second, its steps declare more), they go at the declared steps' pace.
    """
    declared = [s for s in job_type.steps if s.estimate_s is not None]
    others = sum(s.weight for s in job_type.steps if s.estimate_s is None)
    if not declared:
        return declared_total / (others or 1.0)
    declared_s = sum(s.estimate_s or 0.0 for s in declared)
    if declared_total > declared_s and others:
        return (declared_total - declared_s) / others
    return declared_s / sum(s.weight for s in declared)


def _scale_of(job_type: JobType, job_input: Any) -> float | None:
    if job_type.scale is None or job_type.scale == "upload_bytes":
        return 1.0
    try:
        params = job_type.input_model.model_validate(job_input)
    except ValidationError:
        return None
    value = job_type.scale(params)
    return value if value > 0 else None


def _declared(job_type: JobType, job_input: Any) -> float:
    try:
        return job_type.estimate(job_type.input_model.model_validate(job_input))
    except ValidationError:
        return 0.0
