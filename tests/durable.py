"""A job type for the tests of checkpointed steps, loaded through JOBCAST_JOB_MODULES.

``five_steps`` runs steps one to five. Each time a step's work really runs, the job
itself appends the step's name to ``log_path`` (a file the test reads): that, not
jobcast's own records, is what says how often each step ran. ``hold_in`` makes that
step wait, the first time it runs, until ``release_path`` exists (the test kills the
worker meanwhile); ``flaky_in`` makes that step fail transiently the first time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobcast.errors import TransientError
from jobcast.registry import JobContext, JobType, Step


class FiveInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    log_path: str
    hold_in: str | None = None
    flaky_in: str | None = None
    step_s: float = Field(0.0, ge=0, le=10)
    # step five asks with a schema that is not JSON Schema
    bad_question: bool = False


def _ran(log_path: Path) -> list[str]:
    return log_path.read_text().split() if log_path.exists() else []


async def _work(params: FiveInput, name: str, value: int) -> int:
    log_path = Path(params.log_path)
    first_time = name not in _ran(log_path)
    with log_path.open("a") as log:
        log.write(f"{name}\n")
    if name == params.hold_in and first_time:
        await asyncio.Event().wait()  # until the test kills this worker
    if name == params.flaky_in and first_time:
        raise TransientError(f"{name}: the upstream reset the connection")
    await asyncio.sleep(params.step_s)
    return value


async def five_steps(job: JobContext, params: FiveInput) -> dict[str, Any]:
    one = await job.run_step("one", lambda: _work(params, "one", 1))
    two = await job.run_step("two", lambda: _work(params, "two", 2))
    async with job.step("three") as step:
        if not step.done:
            step.result = await _work(params, "three", 3)
    three = step.result
    four = await job.run_step("four", lambda: _work(params, "four", 4))
    if params.bad_question:
        async with job.step("five"):
            await job.ask("Which?", {"type": "a colour"})
    five = await job.run_step("five", lambda: _work(params, "five", 5))
    return {
        "values": [one, two, three, four, five],
        "from_checkpoint": job.checkpoint("one"),
    }


JOB_TYPES = (
    JobType(
        name="five_steps",
        title="Five checkpointed steps",
        input_model=FiveInput,
        run=five_steps,
        steps=(
            Step("one", "One"),
            Step("two", "Two", max_attempts=2),  # tried twice within an attempt
            Step("three", "Three"),
            Step("four", "Four"),
            Step("five", "Five"),
        ),
        max_attempts=3,
    ),
)
