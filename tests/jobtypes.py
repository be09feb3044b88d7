"""Job types the tests load through JOBCAST_JOB_MODULES, to exercise queue features."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobcast.registry import JobContext, JobType, Step


class SleepInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(0.5, ge=0, le=30)


async def sleep(job: JobContext, params: SleepInput) -> dict[str, Any]:
    async with job.step("sleep"):
        await asyncio.sleep(params.seconds)
        await job.progress(100, "slept")
    return {"slept": params.seconds}


class ParentInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    children: int = Field(3, ge=1, le=10)
    duration: float = Field(1.0, ge=0, le=30)


async def parent(job: JobContext, params: ParentInput) -> dict[str, Any]:
    async with job.step("spawn"):
        ids = [
            await job.spawn("demo", {"duration": params.duration}) for _ in range(params.children)
        ]
    async with job.step("wait"):
        children = await job.wait_children(ids)
    return {"children": [c["status"] for c in children]}


_SLEEP_STEPS = (Step("sleep", "Sleep"),)

JOB_TYPES = (
    JobType(
        "short_lived",
        "Result kept one second",
        SleepInput,
        sleep,
        steps=_SLEEP_STEPS,
        result_ttl_s=1,
    ),
    JobType("capped", "One at a time", SleepInput, sleep, steps=_SLEEP_STEPS, concurrency=1),
    JobType(
        "parent",
        "Spawns demo children",
        ParentInput,
        parent,
        steps=(Step("spawn", "Start children", 1), Step("wait", "Wait for children", 9)),
    ),
)
