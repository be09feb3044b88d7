"""``python -m workers``: the worker process.

Runs arq's Worker with jobcast's settings under a supervisor: when Redis goes
away, arq's loop would end the process; here the worker waits for Redis and
goes on, and jobs already running keep running (their events are safe in
Postgres). SIGTERM or SIGINT stop taking jobs, let running ones finish within
``JOBCAST_SHUTDOWN_GRACE_S``, and hand the rest back.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from typing import Any

import redis.asyncio as aioredis
import uvloop
from arq.worker import Worker
from redis.exceptions import RedisError

from jobcast.errors import JobcastError
from jobcast.logs import setup_logging
from jobcast.settings import Settings, load_settings
from workers.heartbeat import alive_key
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
                **worker_options(settings),
                ctx=ctx,
                on_startup=startup,
                on_shutdown=shutdown,
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


async def check(settings: Settings, pid: int | None) -> int:
    """0 when a worker on this host (or the one with this pid) beat lately, else 1."""
    client = aioredis.Redis.from_url(settings.redis_dsn, socket_connect_timeout=2)
    try:
        host = socket.gethostname()
        pattern = (
            alive_key(settings.redis_prefix, host, pid)
            if pid
            else f"{settings.redis_prefix}:worker:{host}:*"
        )
        found = [key async for key in client.scan_iter(match=pattern, count=100)]
    except (RedisError, OSError) as exc:
        print(f"unhealthy: redis does not answer: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()
    if not found:
        print("unhealthy: no worker has beaten in the last seconds", file=sys.stderr)
        return 1
    print(f"healthy: {len(found)} worker process(es) alive")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="exit 0 if a worker on this host is alive, 1 if not"
    )
    parser.add_argument("--pid", type=int, help="with --check: that worker process")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except JobcastError as exc:
        print(f"jobcast worker: {exc}", file=sys.stderr)
        return 2
    if args.check:
        return asyncio.run(check(settings, args.pid))
    setup_logging(settings, "worker")
    uvloop.run(supervise(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
