"""arq's ``WorkerSettings`` for jobcast: ``arq workers.settings.WorkerSettings``."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import Any

from arq import func
from arq.connections import RedisSettings

from jobcast.logs import setup_logging
from jobcast.registry import load_registry
from jobcast.settings import Settings, load_settings
from jobcast.store import Store
from workers.runner import run_job
from workers.state import WorkerState

log = logging.getLogger(__name__)

SETTINGS: Settings = load_settings()

# arq's own timeout is only a backstop: each job type's time limit is enforced by the runner.
_ARQ_TIMEOUT_S = 24 * 3600


async def startup(ctx: dict[str, Any]) -> None:
    setup_logging(SETTINGS, "worker")
    stack = AsyncExitStack()
    store = await stack.enter_async_context(
        Store.open(SETTINGS.database_dsn, max_size=SETTINGS.pg_pool_max)
    )
    ctx["jobcast"] = WorkerState(
        settings=SETTINGS, store=store, registry=load_registry(), exit_stack=stack,
    )
    log.info("worker ready on queue %s", SETTINGS.queue_name)


async def shutdown(ctx: dict[str, Any]) -> None:
    state: WorkerState | None = ctx.get("jobcast")
    if state is not None:
        await state.exit_stack.aclose()


class WorkerSettings:
    functions = [func(run_job, name="run_job", max_tries=1_000_000, timeout=_ARQ_TIMEOUT_S)]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = RedisSettings.from_dsn(SETTINGS.redis_dsn)
    queue_name = SETTINGS.queue_name
    max_jobs = SETTINGS.worker_concurrency
    keep_result = 0  # results live in Postgres; this also lets an id be queued again
    poll_delay = 0.05
    job_timeout = _ARQ_TIMEOUT_S
    max_tries = 1_000_000  # jobcast counts attempts itself
