"""The peers' apps for benchmark 11: the same two jobs in Celery, SAQ and procrastinate.

Each peer runs ``noop`` (nothing) and ``progress`` (``updates`` progress reports through
the peer's own mechanism, each carrying the time it was made, ``interval_s`` apart).
Everything is named from the run's prefix (a queue, a Redis key prefix; the Postgres
peers get a database of their own), so nothing touches another user of the same Redis or Postgres.

Workers, as processes of their own (each in its documented configuration)::

    python -m celery -A bench.peer_apps:celery_app worker ...   (see bench/peers.py)
    python -m bench.peer_apps saq <prefix> <redis:// or postgres:// url>
    python -m bench.peer_apps procrastinate <prefix> <postgres:// url>
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

CONCURRENCY = 50  # the async peers run as many jobs at once as jobcast's worker


def progress_meta(i: int, interval_s: float, stamps: list[float]) -> dict[str, Any]:
    """Update ``i``'s meta. A timed job (``interval_s``) carries when each update so far
    was made, so a client that polls can time the ones it never saw, superseded by a
    later one, from when they were made."""
    stamps.append(time.time())
    return {"i": i, "ts": stamps} if interval_s else {"i": i}


# ---------------------------------------------------------------- Celery


def queue_name(prefix: str) -> str:
    return f"{prefix}-peers"


def celery_keys(prefix: str) -> str:
    """What every Redis key of the run's Celery starts with."""
    return f"{prefix}:celery:"


def make_celery(prefix: str, url: str) -> Any:
    from celery import Celery

    keys = {"global_keyprefix": celery_keys(prefix)}
    app = Celery("bench_peers", broker=url, backend=url)
    app.conf.update(
        broker_transport_options=keys,
        result_backend_transport_options=keys,
        task_default_queue=queue_name(prefix),
        result_expires=600,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )

    @app.task(name="noop", ignore_result=True)
    def noop() -> None:
        return None

    @app.task(name="progress", bind=True)
    def progress(self: Any, updates: int, interval_s: float) -> int:
        stamps: list[float] = []
        for i in range(1, updates + 1):
            if interval_s:
                time.sleep(interval_s)
            self.update_state(state="PROGRESS", meta=progress_meta(i, interval_s, stamps))
        return updates

    return app


# the worker's app (``celery -A bench.peer_apps:celery_app``), named from its environment
celery_app = make_celery(
    os.environ.get("BENCH_PEER_PREFIX", "bench"), os.environ.get("REDIS_URL", "redis://")
)


# ---------------------------------------------------------------- SAQ


async def saq_noop(ctx: dict[str, Any]) -> None:
    return None


async def saq_progress(ctx: dict[str, Any], *, updates: int, interval_s: float) -> int:
    job = ctx["job"]
    stamps: list[float] = []
    for i in range(1, updates + 1):
        if interval_s:
            await asyncio.sleep(interval_s)
        await job.update(progress=i / updates, meta=progress_meta(i, interval_s, stamps))
    return updates


def saq_queue(prefix: str, url: str) -> Any:
    from saq import Queue

    if url.startswith("redis"):
        return Queue.from_url(url, name=queue_name(prefix))
    return Queue.from_url(url, name=queue_name(prefix), min_size=2, max_size=10)


async def saq_worker(prefix: str, url: str) -> None:
    from saq import Worker

    queue = saq_queue(prefix, url)
    await queue.connect()  # the saq command does this; Worker.start does not
    worker = Worker(
        queue,
        functions=[("noop", saq_noop), ("progress", saq_progress)],  # type: ignore[list-item]
        concurrency=CONCURRENCY,
    )
    await worker.start()


# ---------------------------------------------------------------- procrastinate


def make_procrastinate(prefix: str, url: str) -> Any:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="noop", queue=queue_name(prefix))
    async def noop() -> None:
        return None

    return app


async def procrastinate_worker(prefix: str, url: str) -> None:
    app = make_procrastinate(prefix, url)
    async with app.open_async():
        await app.run_worker_async(queues=[queue_name(prefix)], concurrency=CONCURRENCY)


def main(argv: list[str]) -> int:
    which, prefix, url = argv
    runner = {"saq": saq_worker, "procrastinate": procrastinate_worker}[which]
    try:
        asyncio.run(runner(prefix, url))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
