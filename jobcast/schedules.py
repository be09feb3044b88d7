"""Recurring jobs: a job type started on a cron schedule, once per tick.

Schedules come from ``JOBCAST_SCHEDULES``, a JSON list such as
``[{"name": "nightly-report", "cron": "0 3 * * *", "type": "noop", "input": {}}]``.
Every worker's sweep looks at each schedule, but a tick's job has an id derived
from the schedule's name and the tick's time, so however many workers see a tick,
one job is made. A tick more than ``MISFIRE_GRACE_S`` old is skipped rather than
run late (a service that was down does not replay the night's ticks).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MISFIRE_GRACE_S = 300
# the owner scheduled jobs belong to: no token opens it; the admin endpoints show its jobs
SCHEDULER_OWNER = uuid.UUID("00000000-0000-4000-8000-00000000c407")
_NAMESPACE = uuid.UUID("8c5b6d0e-6f4b-4d0a-9d7e-0e1f2a3b4c5d")


class Schedule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    cron: str
    type: str
    input: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(0, ge=-10, le=10)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import croniter  # a process with no schedule never loads it

        if not croniter.is_valid(value):
            raise ValueError(f"not a cron expression: {value!r}")
        return value

    def last_tick(self, now: datetime) -> datetime:
        from croniter import croniter

        tick: datetime = croniter(self.cron, now).get_prev(datetime)
        return tick

    def job_id(self, tick: datetime) -> uuid.UUID:
        """The same for every worker that sees this tick."""
        return uuid.uuid5(_NAMESPACE, f"{self.name}@{tick.isoformat()}")
