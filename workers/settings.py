"""arq's ``WorkerSettings`` for jobcast, built from the settings when the worker starts.

``python -m workers`` (what the Procfile and ``make run`` start) runs these
options under a supervisor that survives Redis outages; ``arq
workers.settings.WorkerSettings`` also works, but arq's own runner exits when
Redis goes away. Nothing is read from the environment at import: a bad setting
is one line naming its key when the worker starts, never a traceback.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import Any, cast

from arq import func
from arq.typing import StartupShutdown, WorkerCoroutine

from jobcast.links import arq_pool
from jobcast.logs import setup_logging
from jobcast.queue import ARQ_TIMEOUT_S
from jobcast.settings import Settings, settings_or_exit
from workers.runner import run_job
from workers.state import WorkerContext, WorkerState

log = logging.getLogger(__name__)


def worker_options(settings: Settings) -> dict[str, Any]:
    """arq Worker keyword arguments, shared by WorkerSettings and the supervisor."""
    # arq types every ctx as dict[Any, Any]; jobcast's is a WorkerContext, so run_job is
    # handed over as arq's own type.
    run = cast(WorkerCoroutine, run_job)
    return {
        "functions": [func(run, name="run_job", max_tries=1_000_000, timeout=ARQ_TIMEOUT_S)],
        # arq's pool with jobcast's connect and read deadlines, keepalive and circuit (arq's
        # RedisSettings has a connect timeout only, so a silent Redis would hang its poll)
        "redis_pool": arq_pool(settings),
        "queue_name": settings.queue_name,
        "max_jobs": settings.worker_concurrency,
        "keep_result": 0,  # results live in Postgres; this also lets an id be queued again
        "poll_delay": 0.05,
        "job_timeout": ARQ_TIMEOUT_S,
        "max_tries": 1_000_000,  # jobcast counts attempts itself
        "job_completion_wait": settings.shutdown_grace_s,
    }


def log_ready(state: WorkerState, settings: Settings) -> None:
    """One line at start: the queue, and the job types this worker runs (with the modules
    of JOBCAST_JOB_MODULES, so a module that was not picked up shows at once)."""
    names = [t.name for t in state.registry]
    log.info(
        "worker ready on queue %s; %d job types: %s (JOBCAST_JOB_MODULES: %s)",
        settings.queue_name,
        len(names),
        ", ".join(names),
        ", ".join(settings.job_module_list) or "none",
    )


def worker_settings(settings: Settings) -> type:
    """The class arq's own runner reads its options from: what the supervisor uses, plus
    a startup that opens the worker's resources (the supervisor opens them itself)."""

    async def startup(ctx: WorkerContext) -> None:
        setup_logging(settings, "worker")
        stack = AsyncExitStack()
        ctx["jobcast"] = await stack.enter_async_context(WorkerState.open(settings))
        ctx["jobcast_exit"] = stack
        log_ready(ctx["jobcast"], settings)

    async def shutdown(ctx: WorkerContext) -> None:
        stack = ctx.pop("jobcast_exit", None)
        if stack is not None:
            await stack.aclose()

    hooks = {
        "on_startup": cast(StartupShutdown, startup),
        "on_shutdown": cast(StartupShutdown, shutdown),
    }
    return type("WorkerSettings", (), {**worker_options(settings), **hooks})


def __getattr__(name: str) -> Any:
    """``workers.settings.WorkerSettings``, made when arq's runner first asks for it."""
    if name == "WorkerSettings":
        return worker_settings(settings_or_exit("worker"))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
