"""Job types the pending-limit and debounce tests load through JOBCAST_JOB_MODULES."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobcast.registry import JobContext, JobType


class HoldInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(60, ge=0, le=600)


class EchoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int = 0


async def hold(_job: JobContext, params: HoldInput) -> dict[str, Any]:
    """Keeps its worker slot busy for as long as asked (or until cancelled)."""
    await asyncio.sleep(params.seconds)
    return {}


async def echo(job: JobContext, params: EchoInput) -> dict[str, Any]:
    return {"n": params.n, "attempt": job.attempt}


JOB_TYPES = (
    JobType("hold", "Holds a worker slot", HoldInput, hold),
    JobType(
        "slot_fail",
        "Fails after 2 s pending",
        EchoInput,
        echo,
        pending_limit_s=2,
        on_pending_limit="fail",
    ),
    JobType(
        "slot_report",
        "Reported stuck after 2 s pending",
        EchoInput,
        echo,
        pending_limit_s=2,
        on_pending_limit="report",
    ),
    JobType("echo", "Returns its input", EchoInput, echo),
)
