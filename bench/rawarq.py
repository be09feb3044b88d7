"""The raw arq baseline: arq's own Worker with jobcast's worker options, and trivial jobs.

``python -m bench.rawarq`` runs it on ``<JOBCAST_REDIS_PREFIX>:raw-arq``, a queue
of its own beside jobcast's. Its options come from ``workers.settings.worker_options``
(poll delay, ``max_jobs`` = worker concurrency, ``keep_result`` 0, ...); only
the functions and the queue differ. No Postgres, no events: arq alone.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from arq import func
from arq.worker import Worker

from jobcast.settings import Settings, load_settings
from workers.settings import worker_options


# arq's signature for job functions: ctx, then the job's arguments (none here)
async def noop(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
    return None


async def sleep_10ms(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
    await asyncio.sleep(0.01)


def raw_queue(settings: Settings) -> str:
    return f"{settings.redis_prefix}:raw-arq"


async def serve(settings: Settings) -> None:
    options = worker_options(settings)
    options.update(
        functions=[func(noop, name="noop"), func(sleep_10ms, name="sleep_10ms")],
        queue_name=raw_queue(settings),
    )
    worker = Worker(**options)
    try:
        await worker.async_run()
    except asyncio.CancelledError:
        pass  # SIGTERM or SIGINT: arq cancels its main task
    finally:
        await worker.close()


def main() -> int:
    asyncio.run(serve(load_settings()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
