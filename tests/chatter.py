"""A job type that sends many large progress events quickly, loaded through
JOBCAST_JOB_MODULES: it outruns a socket that reads slowly."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobcast.registry import JobContext, JobType, Step


class ChatterInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: int = Field(100, ge=1, le=1000)
    size: int = Field(1000, ge=0, le=60_000, description="characters in each event's message")


async def chatter(job: JobContext, params: ChatterInput) -> dict[str, Any]:
    text = "x" * params.size
    async with job.step("talk"):
        for i in range(params.events):
            await job.progress(100 * (i + 1) / params.events, text)
    return {"events": params.events}


JOB_TYPES = (
    JobType(
        "chatter",
        "Many large progress events",
        ChatterInput,
        chatter,
        steps=(Step("talk", "Talk"),),
        max_attempts=1,
    ),
)
