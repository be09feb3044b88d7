"""The job type the event benchmarks load (``JOBCAST_JOB_MODULES=bench.reporter``).

``bench_report`` reports ``updates`` progress events in one step, ``interval_s`` apart
(0: as fast as the worker stores them), so the event rate and the fan-out are measured
on events alone, with no sleeping job in between. With ``start_at`` it waits, running,
until that time before its step: jobs started one after another then all report at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobcast.registry import JobContext, JobType, Step


class ReportInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    updates: int = Field(20, ge=1, le=100_000)
    interval_s: float = Field(0.0, ge=0, le=60, description="Between two updates; 0: none.")
    start_at: float | None = Field(
        None, ge=0, description="Wall time (Unix seconds) the step waits for; None: no wait."
    )


async def report(job: JobContext, params: ReportInput) -> dict[str, Any]:
    if params.start_at is not None:
        await asyncio.sleep(max(params.start_at - time.time(), 0.0))
    async with job.step("report"):
        for i in range(1, params.updates + 1):
            if params.interval_s:
                await asyncio.sleep(params.interval_s)
            await job.progress(100 * i / params.updates, f"{i} of {params.updates}")
    return {"updates": params.updates}


JOB_TYPES = (
    JobType(
        "bench_report",
        "Report progress",
        ReportInput,
        report,
        steps=(Step("report", "Report"),),
    ),
)
