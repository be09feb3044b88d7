"""16. Long jobs running: what a worker and Redis spend while jobs run and nothing else happens.

``JOBS`` jobs that only sleep are started at once on one worker whose concurrency takes
them all: jobcast's ``noop`` with ``sleep_s``, and ``sleep_s`` on arq's own Worker with
jobcast's worker options (``bench/rawarq.py``). Once every job runs, the CPU time of the
worker and of the Redis server is read over ``WINDOW_S`` (2 s in quick mode; psutil). arq
keeps a job on its queue until it ends, and each poll (every 0.05 s) looks at every due job
there, in three round trips: raw arq pays that for each job running; jobcast takes a
claimed job off the queue (``Queue.taken``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix

from bench.cpu import Spent
from bench.harness import (
    BenchError,
    Figure,
    Run,
    Section,
    hammer,
    http,
    new_owner,
    python_command,
    submit,
    until,
)
from bench.rawarq import raw_queue

JOBS = 100
SLEEP_S = 20.0  # each job: long enough to be running through the window on a slow start
WINDOW_S = 5.0
QUICK_WINDOW_S = 2.0  # quick mode: the worker's and Redis's shares settle within it
WORKER = "worker-long"
RAW = "raw-arq-long"
# one worker takes every job; stopped with them running, it does not wait for their end
ENV = {"JOBCAST_WORKER_CONCURRENCY": str(JOBS + 10), "JOBCAST_SHUTDOWN_GRACE_S": "0.5"}


def _window_s(run: Run) -> float:
    return QUICK_WINDOW_S if run.scale.name == "quick" else WINDOW_S


def _share(spent: Spent, role: str, window_s: float) -> float:
    """The role's CPU over the window, in % of a core."""
    return round(100 * spent.seconds.get(role, 0.0) / window_s, 1)


async def _window(
    run: Run, all_running: Callable[[], Awaitable[bool]], what: str, first_sent: float
) -> Spent:
    """Once every job runs, the CPU spent over the window; an error if the first job could
    end within it (a slow start)."""
    if run.cpu is None:
        raise BenchError("the processes' CPU cannot be read here")
    await until(all_running, timeout_s=SLEEP_S / 2, what=f"{JOBS} {what} jobs running")
    await asyncio.sleep(0.5)  # the last claims' writes done
    window_s = _window_s(run)
    if time.monotonic() - first_sent + window_s >= SLEEP_S:
        raise BenchError(f"the {what} jobs started too slowly to run through the window")
    with run.cpu.measure() as spent:
        await asyncio.sleep(window_s)
    return spent


async def jobcast_running(run: Run, start_next: Callable[[], Awaitable[None]]) -> Spent:
    """jobcast's share; as its worker stops, ``start_next`` runs beside (neither measured)."""
    await run.cluster.stop("worker")  # this worker alone takes the jobs
    await run.cluster.start_worker(WORKER, env=ENV)
    ids: list[str] = []
    try:
        token = await new_owner(run.web_url)
        first_sent = time.monotonic()
        async with http(run.web_url, token, 20) as client:

            async def one(_i: int) -> None:
                ids.append(await submit(client, "noop", {"sleep_s": SLEEP_S}))

            await hammer(one, concurrency=20, count=JOBS)

        async def all_running() -> bool:
            running: int = await run.db.fetchval(
                "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[]) AND status = 'running'",
                [uuid.UUID(i) for i in ids],
            )
            return running == JOBS

        return await _window(run, all_running, "jobcast", first_sent)
    finally:
        # its jobs are handed back, pending again
        await asyncio.gather(run.cluster.stop(WORKER), start_next())
        await run.drop_pending()


async def start_raw(run: Run) -> None:
    await run.cluster.start_worker(
        RAW, command=python_command("-m", "bench.rawarq"), queue=raw_queue(run.settings), env=ENV
    )


async def raw_running(run: Run) -> Spent:
    """Raw arq's share, on the worker ``start_raw`` started."""
    queue = raw_queue(run.settings)
    pool = await create_pool(RedisSettings.from_dsn(run.settings.redis_dsn))
    tag = uuid.uuid4().hex[:8]
    ids = [f"{run.settings.redis_prefix}-long-{tag}-{i}" for i in range(JOBS)]
    try:
        first_sent = time.monotonic()
        for job_id in ids:
            if (
                await pool.enqueue_job("sleep_s", SLEEP_S, _job_id=job_id, _queue_name=queue)
                is None
            ):
                raise BenchError(f"arq refused job {job_id}: its id is taken")

        async def all_running() -> bool:
            found = await pool.exists(*(in_progress_key_prefix + i for i in ids))
            return int(found) == JOBS

        return await _window(run, all_running, "raw arq", first_sent)
    finally:
        await run.cluster.stop(RAW)
        await pool.delete(queue)
        await pool.aclose()


async def run(ctx: Run, section: Section) -> None:
    ours = await jobcast_running(ctx, lambda: start_raw(ctx))
    raw = await raw_running(ctx)
    what = f"{JOBS} jobs running (sleeping), nothing else"
    window_s = _window_s(ctx)
    section.figures = [
        Figure(
            f"{what}: the worker's CPU",
            "% of a core",
            _share(ours, "worker", window_s),
            _share(raw, "worker", window_s),
            "raw arq worker, jobcast's options",
            higher_is_better=False,
        ),
        Figure(
            f"{what}: Redis's CPU",
            "% of a core",
            _share(ours, "redis", window_s),
            _share(raw, "redis", window_s),
            "raw arq worker, jobcast's options",
            higher_is_better=False,
        ),
    ]
    section.notes = [
        f"{JOBS} jobs that sleep {SLEEP_S:g} s started at once on one worker (concurrency "
        f"{JOBS + 10}); once every one runs, the CPU the worker and the Redis server spent over "
        f"{window_s:g} s (psutil). arq keeps a job on its queue until it ends and each poll "
        "(0.05 s) looks at every due job there in three round trips; jobcast takes a job off "
        "the queue once its worker claimed it (Queue.taken). The rest of jobcast's worker "
        "share is its heartbeat and the sweep.",
    ]
