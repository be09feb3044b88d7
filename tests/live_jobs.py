"""Job types the live-data tests load (JOBCAST_JOB_MODULES): streams, metadata, run-time steps."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobcast.errors import LimitExceeded, PermanentError, TransientError
from jobcast.registry import JobContext, JobType, Step


def chunk(i: int) -> str:
    """The i-th chunk the ``chunks`` type writes: its number, so order and gaps show."""
    return f"{i};"


class ChunksInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunks: int = Field(100, ge=1, le=100_000)
    # a pause of 10 ms after every this many chunks (0: none), to spread them over time
    pace_every: int = Field(0, ge=0)


async def chunks(job: JobContext, params: ChunksInput) -> dict[str, Any]:
    async with job.step("write"):
        out = job.stream("out")
        for i in range(params.chunks):
            await out.write(chunk(i))
            if params.pace_every and i % params.pace_every == params.pace_every - 1:
                await asyncio.sleep(0.01)
    return {"chunks": params.chunks}


class LimitsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uncaught: bool = False


async def limits(job: JobContext, params: LimitsInput) -> dict[str, Any]:
    """Goes over each limit, catching the error, and ends with a run-time step that fails
    on its own while the job goes on; ``uncaught`` lets a metadata error end the job."""
    refused: dict[str, str] = {}
    async with job.step("work"):
        await job.set_metadata(stage="started")
        if params.uncaught:
            await job.set_metadata(blob="x" * 100_000)
        try:
            await job.set_metadata(blob="x" * 100_000)
        except LimitExceeded as exc:
            refused["metadata"] = str(exc)
        try:  # each small enough, but the third merged in goes over the cap
            for i in range(4):
                await job.set_metadata({f"part{i}": "z" * 1500})
        except LimitExceeded as exc:
            refused["merged"] = str(exc)
        try:
            await job.stream("out").write("y" * 100_000)
        except LimitExceeded as exc:
            refused["chunk"] = str(exc)
        try:  # each write within its limit, the stream past its own
            for _ in range(100):
                await job.stream("big").write("w" * 4000)
        except LimitExceeded as exc:
            refused["stream"] = str(exc)
        good, bad = await job.add_steps(["Good item", "Bad item"])
        async with good:
            await good.count(1, 1)
            await good.set_metadata(url="https://example.com/good")
        try:
            async with bad:
                raise TransientError("the item's server answered 503")
        except TransientError:
            pass
        try:  # past the most steps an attempt may add: none of them is added
            await job.add_steps([f"Extra {i}" for i in range(10)])
        except LimitExceeded as exc:
            refused["steps"] = str(exc)
        await job.set_metadata(stage="done")
    return {"refused": refused}


class FamilyInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    child: bool = False


async def family(job: JobContext, params: FamilyInput) -> dict[str, Any]:
    """As a parent: start a child and wait; as the child: set the parent's metadata."""
    if params.child:
        async with job.step("work"):
            await job.set_metadata(
                {"from_child": "hello", "child_attempt": job.attempt}, parent=True
            )
        return {"child": True}
    async with job.step("work"):
        child_id = await job.spawn("live_family", {"child": True})
        await job.wait_children([child_id])
    return {"child_id": child_id}


class TicksInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticks: int = Field(1000, ge=1, le=100_000)
    # a wait of 1 ms after every this many reports (0: none), to spread them over time
    pace_every: int = Field(0, ge=0)
    fail: bool = False  # fail (permanently) right after the last report
    quiet_s: float = Field(0, ge=0, le=10)  # then nothing for this long, still in the step


async def ticks(job: JobContext, params: TicksInput) -> dict[str, Any]:
    """Report progress in a tight loop in a first step, then once in a second."""
    async with job.step("tick"):
        for i in range(1, params.ticks + 1):
            await job.progress(100 * i / params.ticks, f"{i} of {params.ticks}")
            if params.pace_every and i % params.pace_every == 0:
                await asyncio.sleep(0.001)
        if params.fail:
            raise PermanentError("failed after the last report, as asked")
        await asyncio.sleep(params.quiet_s)
    async with job.step("after"):
        await job.progress(50, "halfway")
    return {"ticks": params.ticks}


JOB_TYPES = (
    JobType(
        "live_ticks",
        "Report in a tight loop",
        TicksInput,
        ticks,
        steps=(Step("tick", "Tick"), Step("after", "After")),
        max_attempts=1,
    ),
    JobType("live_chunks", "Stream chunks", ChunksInput, chunks, steps=(Step("write", "Write"),)),
    JobType(
        "live_limits",
        "Go over limits",
        LimitsInput,
        limits,
        steps=(Step("work", "Work"),),
        max_attempts=1,
    ),
    JobType("live_family", "Parent and child", FamilyInput, family, steps=(Step("work", "Work"),)),
)
