"""``python -m workers``: the worker process.

Runs arq's Worker with jobcast's settings under a supervisor: when Redis goes
away, arq's loop would end the process; here the worker waits for Redis and
goes on, and jobs already running keep running (their events are safe in
Postgres). SIGTERM or SIGINT stop taking jobs, let running ones finish within
``JOBCAST_SHUTDOWN_GRACE_S``, and hand the rest back.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from arq.worker import Worker
from redis.exceptions import RedisError

from jobcast.errors import JobcastError
from jobcast.logs import setup_logging
from jobcast.settings import Settings, load_settings
from workers.settings import shutdown, startup, worker_options
from workers.state import WorkerState

log = logging.getLogger("workers")

_REDIS_RETRY_S = 1.0


class ResilientWorker(Worker):
    """arq's Worker that outlives a Redis outage instead of exiting."""

    stopping = False

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            log.warning("redis unavailable (%s); waiting for it", exc)
            await asyncio.sleep(_REDIS_RETRY_S)

    def handle_sig(self, signum: signal.Signals) -> None:
        self.stopping = True
        super().handle_sig(signum)

    def handle_sig_wait_for_completion(self, signum: signal.Signals) -> None:
        self.stopping = True
        super().handle_sig_wait_for_completion(signum)


async def supervise(settings: Settings) -> None:
    async with WorkerState.open(settings) as state:
        log.info("worker ready on queue %s", settings.queue_name)
        while True:
            ctx: dict[str, Any] = {"jobcast": state}
            worker = ResilientWorker(
                **worker_options(settings), ctx=ctx, on_startup=startup, on_shutdown=shutdown,
            )
            try:
                await worker.async_run()
            except asyncio.CancelledError:
                if not worker.stopping:
                    raise
            except (RedisError, OSError) as exc:
                log.warning("redis unavailable at start (%s); trying again", exc)
            try:
                await worker.close()
            except (RedisError, OSError) as exc:
                log.warning("could not close the worker's redis connections cleanly: %s", exc)
            if worker.stopping:
                return
            await asyncio.sleep(_REDIS_RETRY_S)


def main() -> int:
    try:
        settings = load_settings()
    except JobcastError as exc:
        print(f"jobcast worker: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings, "worker")
    asyncio.run(supervise(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
