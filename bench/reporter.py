"""The job type the event benchmarks load (``JOBCAST_JOB_MODULES=bench.reporter``).

``bench_report`` reports ``updates`` progress events in one step, ``interval_s`` apart
(0: as fast as the worker stores them), so the event rate and the fan-out are measured
on events alone, with no sleeping job in between.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobcast.registry import JobContext, JobType, Step


class ReportInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    updates: int = Field(20, ge=1, le=100_000)
    interval_s: float = Field(0.0, ge=0, le=60, description="Between two updates; 0: none.")


async def report(job: JobContext, params: ReportInput) -> dict[str, Any]:
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
