"""The job type the streams benchmark loads (``JOBCAST_JOB_MODULES=bench.streamer``).

Each chunk is one line of JSON stamped with the moment it was written, so a watcher
can time it from the job's ``write`` to its own arrival, the buffering included.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from jobcast.registry import JobContext, JobType, Step


class StreamerInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunks: int = Field(100, ge=1, le=1_000_000)
    rate: float = Field(100.0, gt=0, le=100_000, description="Chunks written per second.")


async def stream_chunks(job: JobContext, params: StreamerInput) -> dict[str, Any]:
    async with job.step("stream"):
        out = job.stream("out")
        started = time.monotonic()
        for i in range(params.chunks):
            due = started + i / params.rate  # on a schedule: a late chunk does not slow the rest
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await out.write(orjson.dumps({"i": i, "t": time.time()}).decode() + "\n")
    return {"chunks": params.chunks}


JOB_TYPES = (
    JobType(
        "bench_stream",
        "Stream timed chunks",
        StreamerInput,
        stream_chunks,
        steps=(Step("stream", "Stream"),),
    ),
)
