"""arq's ``WorkerSettings`` for jobcast.

``python -m workers`` (what the Procfile and ``make run`` start) runs these
settings under a supervisor that survives Redis outages; ``arq
workers.settings.WorkerSettings`` also works, but arq's own runner exits when
Redis goes away.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import Any

from arq import func
from arq.connections import RedisSettings

from jobcast.logs import setup_logging
from jobcast.queue import ARQ_TIMEOUT_S
from jobcast.settings import Settings, load_settings
from workers.runner import run_job
from workers.state import WorkerState

log = logging.getLogger(__name__)

SETTINGS: Settings = load_settings()


async def startup(ctx: dict[str, Any]) -> None:
    """Open the worker's resources, unless the supervisor already did."""
    if "jobcast" in ctx:
        return
    setup_logging(SETTINGS, "worker")
    stack = AsyncExitStack()
    ctx["jobcast"] = await stack.enter_async_context(WorkerState.open(SETTINGS))
    ctx["jobcast_exit"] = stack
    log.info("worker ready on queue %s", SETTINGS.queue_name)


async def shutdown(ctx: dict[str, Any]) -> None:
    stack: AsyncExitStack | None = ctx.pop("jobcast_exit", None)
    if stack is not None:
        await stack.aclose()


def worker_options(settings: Settings) -> dict[str, Any]:
    """arq Worker keyword arguments, shared by WorkerSettings and the supervisor."""
    return {
        "functions": [func(run_job, name="run_job", max_tries=1_000_000, timeout=ARQ_TIMEOUT_S)],
        "redis_settings": RedisSettings.from_dsn(settings.redis_dsn),
        "queue_name": settings.queue_name,
        "max_jobs": settings.worker_concurrency,
        "keep_result": 0,  # results live in Postgres; this also lets an id be queued again
        "poll_delay": 0.05,
        "job_timeout": ARQ_TIMEOUT_S,
        "max_tries": 1_000_000,  # jobcast counts attempts itself
        "job_completion_wait": settings.shutdown_grace_s,
    }


# arq reads its settings from a class's attributes: the same options the supervisor uses.
WorkerSettings = type(
    "WorkerSettings",
    (),
    {**worker_options(SETTINGS), "on_startup": startup, "on_shutdown": shutdown},
)
