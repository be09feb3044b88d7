"""Job types the tests load through JOBCAST_JOB_MODULES, to exercise queue features."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobcast.concurrency import Concurrency, Throttle
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


class KeyedInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    group: str = Field("a", min_length=1, max_length=20)
    seconds: float = Field(0.3, ge=0, le=60)
    # a file each run appends "+ id" to as it starts and "- id" to as it ends (O_APPEND:
    # the lines of all workers land in the order they were written)
    log: str | None = None


def _note(path: str | None, line: str) -> None:
    if path is not None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)


async def keyed(job: JobContext, params: KeyedInput) -> dict[str, Any]:
    run = uuid.uuid4().hex
    _note(params.log, f"+ {run} {time.time():.6f}")
    try:
        async with job.step("sleep"):
            await asyncio.sleep(params.seconds)
    finally:
        _note(params.log, f"- {run} {time.time():.6f}")
    return {"group": params.group}


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
    # two at once per group, whatever the workers (a key derived from the input)
    JobType(
        "keyed",
        "Two at once per group",
        KeyedInput,
        keyed,
        steps=_SLEEP_STEPS,
        keys=(Concurrency("group:{group}", 2),),
        max_attempts=10,
    ),
    # two starts per 2 s per group; a submit may not add keys
    JobType(
        "throttled",
        "Two starts per 2 s per group",
        KeyedInput,
        keyed,
        steps=_SLEEP_STEPS,
        keys=(Throttle("rate:{group}", 2, 2.0),),
        submit_keys=False,
    ),
    JobType(
        "parent",
        "Spawns demo children",
        ParentInput,
        parent,
        steps=(Step("spawn", "Start children", 1), Step("wait", "Wait for children", 9)),
    ),
)
