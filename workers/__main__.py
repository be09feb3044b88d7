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
import socket
import sys
from typing import Any, cast

import uvloop
from redis.exceptions import RedisError

from jobcast.collector import pace_collector
from jobcast.errors import ConfigError
from jobcast.links import RedisLink
from jobcast.logs import setup_logging
from jobcast.settings import Settings, settings_or_exit
from workers.heartbeat import Heartbeat, alive_key
from workers.settings import log_ready, worker_options
from workers.starts import Worker
from workers.state import WorkerContext, WorkerState

log = logging.getLogger("workers")

_REDIS_RETRY_S = 1.0
_PICK_CHECK_S = 0.05  # arq's own poll delay
# how long a stopping worker waits for arq's job tasks to end: arq's own finish of a job is
# a few Redis calls; the hand-backs in them are waited for by WorkerState, not by this
_JOBS_END_S = 10.0


async def supervise(settings: Settings) -> None:
    """Run arq's Worker until a signal stops it, through any Redis outage.

    arq's poll loop (``Worker.main``) ends at the first Redis error, and arq has no public
    hook inside it: its one loop step, ``_poll_iteration``, is private. Closing the worker
    then would cancel the jobs it runs (``close`` stops every task), so it is not closed:
    the supervisor calls ``async_run`` (public: "does not close connections") on the same
    Worker again once Redis answers. The running jobs' tasks, arq's count of them and its
    semaphore live on the Worker and carry on; ``main`` only makes again what it lacks
    (the Redis pool, if it never had one). Jobs' own events are safe in Postgres.
    """
    async with WorkerState.open(settings) as state:
        log_ready(state, settings)
        ctx: WorkerContext = {"jobcast": state}
        worker = Worker(**worker_options(settings), ctx=cast(dict[Any, Any], ctx))
        stopping = asyncio.Event()  # set by a signal (arq's on_stop), never by a Redis error
        worker.on_stop = lambda _signum: stopping.set()
        pauser = asyncio.create_task(
            pick_while_postgres_answers(worker, state.heartbeat, stopping), name="pauser"
        )
        try:
            while not stopping.is_set():
                try:
                    await worker.async_run()
                    return  # only a burst run ends by itself
                except asyncio.CancelledError:
                    if not stopping.is_set():
                        raise
                except (RedisError, OSError) as exc:
                    log.warning("redis unavailable (%s); waiting for it", exc)
                    await asyncio.sleep(_REDIS_RETRY_S)
                    release_lost_slots(worker)
        finally:
            pauser.cancel()
            lost = cancel_lost(worker, state.running)
            await jobs_ended(worker, _JOBS_END_S, also=lost)
            try:
                await worker.close()
            except (RedisError, OSError) as exc:
                log.warning("could not close the worker's redis connections cleanly: %s", exc)


async def pick_while_postgres_answers(
    worker: Worker, heartbeat: Heartbeat, stopping: asyncio.Event
) -> None:
    """arq takes jobs for this worker only while its Postgres answers (the heartbeat says).

    A job it cannot claim would be kept from every other worker; ``run_job`` hands such
    a job straight back, and this stops arq offering them at all, through its public
    ``allow_pick_jobs`` (which arq itself clears on SIGTERM). Should Postgres come back
    during a shutdown's grace, jobs taken then are handed back when the grace ends.
    """
    paused = False
    while not stopping.is_set():
        down = heartbeat.storage_down
        if down and not paused and worker.allow_pick_jobs:
            worker.allow_pick_jobs, paused = False, True
        elif paused and not down:
            worker.allow_pick_jobs, paused = True, False
        await asyncio.sleep(_PICK_CHECK_S)


def cancel_lost(worker: Worker, running: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """Cancel the job tasks arq has lost track of, as its stop cancels its own; which.

    arq keeps its job tasks by job id: when a job still running here is delivered again
    (its message put back or queued again meanwhile), the second task replaces the first
    in arq's dict, and once the second ends at once (the job is not pending) neither is
    there. arq's stop would leave the first running, its attempt never handed back, and
    the worker's store would close under its writes.
    """
    known = set(worker.tasks.values())
    lost = [task for task in running if not task.done() and task not in known]
    for task in lost:
        task.cancel()
    return lost


async def jobs_ended(
    worker: Worker, timeout_s: float, also: list[asyncio.Task[Any]] | None = None
) -> None:
    """Wait until every job task of arq's has ended, however it ends, and let them go.

    arq's ``close`` gathers its job tasks, and a gather gives up at the first task that
    ended cancelled (one that arq's stop found finishing, past the job's own code): it
    would raise there, before arq's own clean-up, with other tasks still running. The
    hand-backs in them are waited for by ``WorkerState``; this waits for arq's part. Not
    forever: a task stuck on a Redis connection that died is given up after ``timeout_s``.
    """
    running = [task for task in [*worker.tasks.values(), *(also or [])] if not task.done()]
    if running:
        await asyncio.wait(running, timeout=timeout_s)
    for task in worker.tasks.values():
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.warning("a job task ended with an error: %r", task.exception())
    worker.tasks.clear()


def release_lost_slots(worker: Worker) -> int:
    """Give back the job slots a Redis error took with it; how many there were.

    arq counts a job as started (``job_counter`` up, a ``sem`` slot taken) before the
    Redis transaction that marks it in progress, and gives the slot back when the job's
    task ends. When Redis fails inside that transaction, no task is made and the slot is
    never given back: each such outage would leave the worker one job short, until it took
    none. Once arq's loop has stopped, every slot still counted should be a task still
    running; the rest are given back.
    """
    running = sum(1 for task in worker.tasks.values() if not task.done())
    lost = max(0, worker.job_counter - running)
    for _ in range(lost):
        worker.job_counter -= 1
        worker.sem.release()
    if lost:
        log.warning("%d job slot(s) lost in a Redis error given back", lost)
    return lost


async def check(settings: Settings, pid: int | None) -> int:
    """0 when a worker on this host (or the one with this pid) beat lately, else 1."""
    client = RedisLink.of(settings).probe_client()  # deadlines, and no circuit: one check
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
    settings = settings_or_exit("worker")
    if args.check:
        return asyncio.run(check(settings, args.pid))
    setup_logging(settings, "worker")
    pace_collector()
    try:
        uvloop.run(supervise(settings))
    except ConfigError as exc:  # a job type's code that cannot be imported: one line
        print(f"jobcast worker: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
