"""The two built-in job types every install has: ``noop`` and ``demo``.

Tests and benchmarks rely on them: ``noop`` completes at once (or after ``sleep_s``,
without a single progress event: a bare job, as arq alone would run it); ``demo`` walks
through four steps in about ``duration`` seconds and can be told to fail, (``ask``)
to have its analyze step ask its owner for approval, (``items``) to have its fetch step
add a step per item found at run time, or (``stream``) to stream its report word by word.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobcast.errors import PermanentError, TransientError
from jobcast.registry import JobContext, JobType, Step


class NoopInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sleep_s: float = Field(0.0, ge=0, le=60, description="Seconds to wait before completing.")


async def run_noop(job: JobContext, params: NoopInput) -> dict[str, Any]:
    if params.sleep_s:
        await asyncio.sleep(params.sleep_s)
    return {"ok": True}


DemoStep = Literal["validate", "fetch", "analyze", "report"]


class DemoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration: float = Field(3.0, ge=0, le=3600, description="Seconds the whole job takes.")
    fail_step: DemoStep | None = Field(None, description="Fail permanently at this step.")
    flaky: int = Field(0, ge=0, le=100, description="Fail transiently this many attempts first.")
    ask: bool = Field(
        False,
        description="The analyze step asks {approve, note} and fails when not approved.",
    )
    ask_timeout_s: float | None = Field(
        None, gt=0, le=30 * 86_400, description="How long the question waits for an answer."
    )
    ask_on_timeout: Literal["fail", "approve", "reject"] = Field(
        "fail", description="When the time passes: fail, or go on as if approved or rejected."
    )
    stream: bool = Field(False, description="The report step streams its text word by word.")
    items: int = Field(
        0,
        ge=0,
        le=100,
        description="The fetch step finds this many items and adds a step for each at run time.",
    )


APPROVAL_SCHEMA = {
    "type": "object",
    "properties": {
        "approve": {"type": "boolean", "title": "Approve the analysis"},
        "note": {"type": "string", "title": "Note", "maxLength": 1000},
    },
    "required": ["approve"],
    "additionalProperties": False,
}


DEMO_STEPS = (
    Step("validate", "Validate input", 1),
    Step("fetch", "Fetch data", 3),
    Step("analyze", "Analyze", 4),
    Step("report", "Write report", 2),
)
_TICKS_PER_STEP = 5


async def run_demo(job: JobContext, params: DemoInput) -> dict[str, Any]:
    total_weight = sum(s.weight for s in DEMO_STEPS)
    for step in DEMO_STEPS:
        async with job.step(step.name) as done:
            if done.done:  # completed in an earlier attempt: its checkpoint stands
                continue
            if step.name == "analyze" and params.ask:
                await _approval(job, params)
            if step.name == params.fail_step:
                raise PermanentError(f"the {step.title.lower()} step failed, as asked")
            if step.name == "fetch" and job.attempt <= params.flaky:
                raise TransientError(
                    f"connection reset while fetching (attempt {job.attempt} of a flaky run)"
                )
            step_s = params.duration * step.weight / total_weight
            if step.name == "fetch" and params.items:
                await _fetch_items(job, params.items, step_s)
                continue
            if step.name == "report" and params.stream:
                await _stream_report(job, step_s)
                continue
            tick_s = step_s / _TICKS_PER_STEP
            for tick in range(1, _TICKS_PER_STEP + 1):
                await asyncio.sleep(tick_s)
                # the step's title says what it does: a tick count is no message to a person
                await job.progress(100 * tick / _TICKS_PER_STEP)
    return {"summary": f"Demo finished its {len(DEMO_STEPS)} steps", "duration": params.duration}


REPORT_TEXT = (
    "The demo fetched its data, analyzed it and found nothing out of the ordinary. "
    "Every step ran in turn, each reported its progress, and this report was written "
    "word by word while you watched."
)


async def _fetch_items(job: JobContext, count: int, step_s: float) -> None:
    """One step per item found, each counting its pages; the job's metadata counts them."""
    await job.set_metadata(items_found=count, items_done=0)
    items = await job.add_steps([f"Fetch item {i}" for i in range(1, count + 1)])
    pages = 2
    for done, item in enumerate(items, start=1):
        async with item:
            for page in range(1, pages + 1):
                await asyncio.sleep(step_s / count / pages)
                await item.count(page, pages)
        await job.set_metadata(items_done=done)


async def _stream_report(job: JobContext, step_s: float) -> None:
    words = REPORT_TEXT.split(" ")
    out = job.stream("report")
    for i, word in enumerate(words):
        await asyncio.sleep(step_s / len(words))
        await out.write(word if i == 0 else f" {word}")


async def _approval(job: JobContext, params: DemoInput) -> None:
    on_timeout = "fail" if params.ask_on_timeout == "fail" else "default"
    answer = await job.ask(
        "Approve the analysis?",
        APPROVAL_SCHEMA,
        timeout_s=params.ask_timeout_s,
        on_timeout=on_timeout,
        default={"approve": params.ask_on_timeout == "approve", "note": "no answer in time"},
    )
    if not answer.get("approve"):
        note = answer.get("note")
        raise PermanentError(f"the analysis was not approved{f': {note}' if note else ''}")


JOB_TYPES = (
    JobType(
        name="noop",
        title="No-op",
        input_model=NoopInput,
        run=run_noop,
        estimate=lambda params: float(params.sleep_s),
    ),
    JobType(
        name="demo",
        title="Demo",
        input_model=DemoInput,
        run=run_demo,
        steps=DEMO_STEPS,
        estimate=lambda params: float(params.duration),
        scale=lambda params: float(params.duration),
    ),
)
