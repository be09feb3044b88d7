"""11. The peers: jobcast beside Celery, SAQ and procrastinate, on the same Postgres and Redis.

Three rows per peer, each driven from Python (bench/peer_apps.py holds the peers' jobs):

- noop drain: N jobs queued first, then the worker started; jobs per second from the
  first job taken to the queue found empty (polled every 20 ms);
- the same with a job that reports ``UPDATES`` progress updates through the system's
  own mechanism: jobcast's ``progress`` (stored and published events), Celery's
  ``update_state`` (its Redis result backend), SAQ's ``job.update`` (its job record);
  procrastinate has no progress mechanism;
- update latency: one job reporting an update every ``LATENCY_INTERVAL_S``, watched the
  way each system offers: jobcast through its websocket, Celery by polling
  ``AsyncResult`` and SAQ by polling its job, every ``POLL_S`` (Celery's default
  polling interval for results). Each update carries the time it was made.

Each peer runs in its documented default configuration as a worker process of its own:
Celery's prefork pool with a process per core, the async peers at jobcast's concurrency.
Every name is the run's own: a queue and a Redis key prefix per run, and a database of
their own for the Postgres peers, dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from bench.harness import (
    BenchError,
    Figure,
    Run,
    Section,
    Watcher,
    hammer,
    http,
    new_owner,
    percentile,
    python_command,
    submit,
    with_database,
    ws_base,
)
from bench.throughput import COALESCING, WINDOW_MS

log = logging.getLogger("bench")

JOBS = {"quick": (100, 20), "full": (2000, 400)}  # noop jobs, progress jobs per system
UPDATES = 20
LATENCY_INTERVAL_S = 0.1
POLL_S = 0.5


@dataclass
class Peer:
    """One system: how to queue its jobs, count what is left, start its worker, watch a job."""

    name: str
    enqueue: Callable[[str, int], Awaitable[None]]  # kind ("noop", "progress"), count
    remaining: Callable[[], Awaitable[int]]
    worker: list[str]
    watch: Callable[[], Awaitable[tuple[list[float], int]]] | None  # latencies, updates seen
    env: dict[str, str]


def worker_name(peer: Peer) -> str:
    """A process name of each peer's own: quick mode runs the peers side by side."""
    return "peer-worker-" + peer.name.lower().replace(" ", "-")


async def drain(ctx: Run, peer: Peer, kind: str, count: int, keep: bool = False) -> float:
    """Queue ``count`` jobs, start the worker, and time it from the first job taken to none
    left; the worker is stopped afterwards, unless ``keep``. Jobs per second."""
    await peer.enqueue(kind, count)
    if await peer.remaining() < count:
        raise BenchError(f"{peer.name}: fewer than {count} jobs queued")
    ctx.cluster.spawn(worker_name(peer), peer.worker, ctx.cluster.env(**peer.env))
    first: float | None = None
    deadline = time.monotonic() + ctx.scale.budget_s
    try:
        while True:
            left = await peer.remaining()
            now = time.perf_counter()
            if first is None and left < count:
                first = now
            if left == 0:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"{peer.name}: {left} of {count} {kind} jobs left")
            ctx.cluster.alive(worker_name(peer))
            await asyncio.sleep(0.02)
    except BaseException:
        await ctx.cluster.stop(worker_name(peer))
        raise
    if not keep:
        await ctx.cluster.stop(worker_name(peer))
    if first is None or now <= first:
        raise BenchError(f"{peer.name}: the queue emptied before it could be timed")
    return count / (now - first)


async def poll_updates(
    read: Callable[[], Awaitable[tuple[bool, dict[str, Any] | None]]],
) -> tuple[list[float], int]:
    """Poll a job every ``POLL_S`` until done. Each update is timed from when it was made
    to the poll that first saw it or a later one; also how many polls saw a new one."""
    latencies: list[float] = []
    last = 0
    seen = 0
    while True:
        done, meta = await read()
        now = time.time()
        if meta and isinstance(meta.get("i"), int) and meta["i"] > last:
            latencies += [now - t for t in meta["ts"][last : meta["i"]]]
            last = meta["i"]
            seen += 1
        if done:
            return latencies, seen
        await asyncio.sleep(POLL_S)


# ---------------------------------------------------------------- jobcast


def jobcast_peer(ctx: Run, token: str) -> Peer:
    owner: list[uuid.UUID] = []

    async def enqueue(kind: str, count: int) -> None:
        if "worker" in ctx.cluster.procs:
            await ctx.cluster.stop("worker")  # queued first, then drained
        job_type, job_input = (
            ("noop", {}) if kind == "noop" else ("bench_report", {"updates": UPDATES})
        )
        ids: list[str] = []
        async with http(ctx.web_url, token, 20) as client:

            async def one(_i: int) -> None:
                ids.append(await submit(client, job_type, job_input))

            await hammer(one, concurrency=20, count=count)
        owner[:] = [
            await ctx.db.fetchval("SELECT owner_id FROM jobs WHERE id = $1", uuid.UUID(ids[0]))
        ]

    async def remaining() -> int:
        left: int = await ctx.db.fetchval(
            "SELECT COALESCE(sum(n), 0) FROM owner_job_counts WHERE owner_id = $1", owner[0]
        )
        return left

    async def watch() -> tuple[list[float], int]:
        job_input = {"updates": UPDATES, "interval_s": LATENCY_INTERVAL_S}
        async with http(ctx.web_url, token, 1) as client:
            job_id = await submit(client, "bench_report", job_input)
        watcher = Watcher(ws_base(ctx.web_url), token, job_id)
        await watcher.open()
        await asyncio.wait_for(watcher.follow(), 60)
        return watcher.latencies_s, len(watcher.latencies_s)

    peer = Peer("jobcast", enqueue, remaining, [], watch, {})
    return peer


# ---------------------------------------------------------------- Celery


def celery_peer(ctx: Run, prefix: str) -> tuple[Peer, Callable[[], None]]:
    from bench.peer_apps import celery_keys, make_celery, queue_name

    url = ctx.settings.redis_dsn
    app = make_celery(prefix, url)
    keys = celery_keys(prefix)
    redis = ctx.redis

    async def enqueue(kind: str, count: int) -> None:
        def send() -> None:
            args = () if kind == "noop" else (UPDATES, 0.0)
            for _ in range(count):
                app.send_task(kind, args=args, queue=queue_name(prefix))

        await asyncio.to_thread(send)

    async def remaining() -> int:
        queued = await redis.llen(keys + queue_name(prefix))
        taken = await redis.hlen(keys + "unacked")
        return int(queued) + int(taken)

    async def watch() -> tuple[list[float], int]:
        result = app.send_task(
            "progress", args=(UPDATES, LATENCY_INTERVAL_S), queue=queue_name(prefix)
        )

        async def read() -> tuple[bool, dict[str, Any] | None]:
            state, info = await asyncio.to_thread(lambda: (result.state, result.info))
            return state in ("SUCCESS", "FAILURE"), info if isinstance(info, dict) else None

        return await poll_updates(read)

    command = python_command(
        "-m",
        "celery",
        "-A",
        "bench.peer_apps:celery_app",
        "worker",
        "-Q",
        queue_name(prefix),
        "-P",
        "prefork",
        "-c",
        str(os.cpu_count() or 1),
        "-O",
        "fair",
        "-l",
        "warning",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    )
    env = {"BENCH_PEER_PREFIX": prefix, "REDIS_URL": url}
    return Peer("Celery", enqueue, remaining, command, watch, env), app.close


# ---------------------------------------------------------------- SAQ


async def saq_peer(name: str, prefix: str, url: str) -> tuple[Peer, Callable[[], Awaitable[None]]]:
    from bench.peer_apps import saq_queue

    queue = saq_queue(prefix, url)
    await queue.connect()

    async def enqueue(kind: str, count: int) -> None:
        kwargs = {} if kind == "noop" else {"updates": UPDATES, "interval_s": 0.0}

        async def one(_i: int) -> None:
            await queue.enqueue(kind, **kwargs)

        await hammer(one, concurrency=20, count=count)

    async def remaining() -> int:
        left: int = await queue.count("incomplete")
        return left

    async def watch() -> tuple[list[float], int]:
        job = await queue.enqueue("progress", updates=UPDATES, interval_s=LATENCY_INTERVAL_S)

        async def read() -> tuple[bool, dict[str, Any] | None]:
            now = await queue.job(job.key)
            return now.completed, now.meta

        return await poll_updates(read)

    command = python_command("-m", "bench.peer_apps", "saq", prefix, url)
    return Peer(name, enqueue, remaining, command, watch, {}), queue.disconnect


# ---------------------------------------------------------------- procrastinate


@asynccontextmanager
async def own_database(ctx: Run, suffix: str) -> AsyncIterator[str]:
    name = f"{ctx.settings.redis_prefix}_{suffix}"
    admin = await asyncpg.connect(ctx.settings.database_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(ctx.settings.database_dsn, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def procrastinate_peer(prefix: str, url: str) -> tuple[Peer, Callable[[], Awaitable[None]]]:
    from bench.peer_apps import make_procrastinate

    app = make_procrastinate(prefix, url)
    await app.open_async()
    await app.schema_manager.apply_schema_async()
    db = await asyncpg.connect(url)

    async def enqueue(kind: str, count: int) -> None:
        await app.tasks["noop"].batch_defer_async(*([{}] * count))

    async def remaining() -> int:
        left: int = await db.fetchval(
            "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
        )
        return left

    async def close() -> None:
        await db.close()
        await app.close_async()

    command = python_command("-m", "bench.peer_apps", "procrastinate", prefix, url)
    return Peer("procrastinate", enqueue, remaining, command, None, {}), close


# ---------------------------------------------------------------- the run


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


async def drain_both(
    ctx: Run,
    peer: Peer,
    noop_jobs: int,
    progress_jobs: int,
    start: Callable[[], Awaitable[None]],
) -> dict[str, Any]:
    """Quick mode: both kinds queued, then one worker start drains them in order (each queue
    is first in, first out): noop jobs/s until no more than the progress jobs are left,
    progress jobs/s from then to none left. Coarse where the two kinds overlap (a worker's
    concurrency of jobs), and one worker start instead of two."""
    await peer.enqueue("noop", noop_jobs)
    progress_jobs = progress_jobs if peer.watch is not None else 0
    if progress_jobs:
        await peer.enqueue("progress", progress_jobs)
    total = noop_jobs + progress_jobs
    if await peer.remaining() < total:
        raise BenchError(f"{peer.name}: fewer than {total} jobs queued")
    starting = asyncio.create_task(start())
    marks: list[float] = []  # the first job taken; the noop jobs done; every job done
    deadline = time.monotonic() + ctx.scale.budget_s
    try:
        while len(marks) < 3:
            left = await peer.remaining()
            now = time.perf_counter()
            if not marks and left < total:
                marks.append(now)
            if len(marks) == 1 and left <= progress_jobs:
                marks.append(now)
            if len(marks) == 2 and left == 0:
                marks.append(now)
            if time.monotonic() > deadline:
                raise BenchError(f"{peer.name}: {left} of {total} jobs left")
            await asyncio.sleep(0.02)
    finally:
        await starting
    first, noop_done, all_done = marks
    found: dict[str, Any] = {"noop": noop_jobs / max(noop_done - first, 1e-3)}
    if progress_jobs:
        found["progress"] = progress_jobs / max(all_done - noop_done, 1e-3)
    return found


async def measure(ctx: Run, peer: Peer, noop_jobs: int, progress_jobs: int) -> dict[str, Any]:
    log.info("peers: %s", peer.name)
    if ctx.scale.name == "quick":

        async def spawn() -> None:
            ctx.cluster.spawn(worker_name(peer), peer.worker, ctx.cluster.env(**peer.env))

        try:
            found = await drain_both(ctx, peer, noop_jobs, progress_jobs, spawn)
            if peer.watch is not None:
                found["latency"] = await peer.watch()
        finally:
            await ctx.cluster.stop(worker_name(peer))
        return found
    found = {"noop": await drain(ctx, peer, "noop", noop_jobs)}
    if peer.watch is None:
        return found
    found["progress"] = await drain(ctx, peer, "progress", progress_jobs, keep=True)
    try:
        found["latency"] = await peer.watch()
    finally:
        await ctx.cluster.stop(worker_name(peer))
    return found


async def run(ctx: Run, section: Section) -> None:
    try:
        import celery  # noqa: F401
        import procrastinate  # noqa: F401
        import saq  # noqa: F401
    except ImportError as exc:
        raise BenchError(f"the peers are not installed ({exc}): make bench installs them") from exc
    logging.getLogger("saq").setLevel(logging.WARNING)  # a line per job queued otherwise
    noop_jobs, progress_jobs = JOBS[ctx.scale.name]
    prefix = ctx.settings.redis_prefix
    token = await new_owner(ctx.web_url)
    results: dict[str, dict[str, Any]] = {}

    ours = jobcast_peer(ctx, token)
    ours.worker = []  # jobcast's worker is the run's own, started as usual

    async with contextlib.AsyncExitStack() as stack:
        peers = await set_up_peers(ctx, stack, prefix)
        if ctx.scale.name == "quick":
            # every system at once, each on its own queue or database: one wait for all
            # their worker starts and drains, each system's figures under the same load
            found = await asyncio.gather(
                measure_jobcast(ctx, ours, noop_jobs, progress_jobs),
                *(measure(ctx, peer, noop_jobs, progress_jobs) for peer in peers),
            )
            results = dict(zip(["jobcast", *(peer.name for peer in peers)], found, strict=True))
        else:  # one system after the other, each with the machine to itself
            results["jobcast"] = await measure_jobcast(ctx, ours, noop_jobs, progress_jobs)
            for peer in peers:
                results[peer.name] = await measure(ctx, peer, noop_jobs, progress_jobs)
    await forget_peer_keys(ctx, prefix)
    figures(section, results, noop_jobs, progress_jobs)
    if ctx.scale.name == "quick":
        section.notes.append(
            "Quick mode: the five systems are measured at once, side by side on the machine; "
            "each system's noop and progress jobs are queued together and drained by one "
            "worker start, in order: the noop rate runs until no more than the progress jobs "
            "are left, the progress rate from then on."
        )


async def set_up_peers(ctx: Run, stack: contextlib.AsyncExitStack, prefix: str) -> list[Peer]:
    """Every peer's client, queue or database, each closed or dropped by ``stack``."""
    celery, close = celery_peer(ctx, prefix)
    stack.callback(close)
    saq_redis, aclose = await saq_peer("SAQ on Redis", prefix, ctx.settings.redis_dsn)
    stack.push_async_callback(aclose)
    saq_db = await stack.enter_async_context(own_database(ctx, "saq"))
    saq_pg, aclose = await saq_peer("SAQ on Postgres", prefix, saq_db)
    stack.push_async_callback(aclose)
    pro_db = await stack.enter_async_context(own_database(ctx, "procrastinate"))
    pro, aclose = await procrastinate_peer(prefix, pro_db)
    stack.push_async_callback(aclose)
    return [celery, saq_redis, saq_pg, pro]


async def measure_jobcast(
    ctx: Run, peer: Peer, noop_jobs: int, progress_jobs: int
) -> dict[str, Any]:
    """jobcast's drain: its jobs queued with the run's worker stopped, then the worker started."""
    if ctx.scale.name == "quick":
        found = await drain_both(
            ctx, peer, noop_jobs, progress_jobs, lambda: ctx.cluster.start_worker("worker")
        )
        found["latency"] = await peer.watch()  # type: ignore[misc]
        return found
    found = {}
    for kind, count in (("noop", noop_jobs), ("progress", progress_jobs)):
        found[kind] = await timed_drain(
            peer, kind, count, lambda: ctx.cluster.start_worker("worker")
        )
    found["latency"] = await peer.watch()  # type: ignore[misc]
    # the same progress jobs on a worker with the shipped progress window, where the latest
    # report within it is stored: jobcast's documented configuration
    await ctx.cluster.stop("worker")  # the run's worker comes back with the next benchmark
    try:
        found["progress_coalesced"] = await timed_drain(
            peer,
            "progress",
            progress_jobs,
            lambda: ctx.cluster.start_worker(
                COALESCING, env={"JOBCAST_PROGRESS_WINDOW_MS": f"{WINDOW_MS:g}"}
            ),
        )
    finally:
        await ctx.cluster.stop(COALESCING)
    return found


async def timed_drain(
    peer: Peer, kind: str, count: int, start_worker: Callable[[], Awaitable[object]]
) -> float:
    """Queue ``count`` jobs of ``kind`` with no worker, start one: jobs/s from the first
    taken to none left."""
    await peer.enqueue(kind, count)
    first: float | None = None
    starting = asyncio.create_task(start_worker())
    try:
        while (left := await peer.remaining()) > 0:
            if first is None and left < count:
                first = time.perf_counter()
            await asyncio.sleep(0.02)
    finally:
        await starting
    if first is None:
        raise BenchError("jobcast: the queue emptied before it could be timed")
    return count / (time.perf_counter() - first)


async def forget_peer_keys(ctx: Run, prefix: str) -> None:
    from bench.peer_apps import queue_name

    patterns = (
        f"{prefix}:celery:*",
        f"saq:{queue_name(prefix)}*",
        f"saq:job:{queue_name(prefix)}*",
    )
    for pattern in patterns:
        keys = [key async for key in ctx.redis.scan_iter(match=pattern, count=1000)]
        for start in range(0, len(keys), 1000):
            await ctx.redis.delete(*keys[start : start + 1000])


def figures(
    section: Section, results: dict[str, dict[str, Any]], noop_jobs: int, progress_jobs: int
) -> None:
    ours = results["jobcast"]
    versions = {
        "Celery": f"Celery {version('celery')}, Redis broker and results, prefork",
        "SAQ on Redis": f"SAQ {version('saq')} on Redis",
        "SAQ on Postgres": f"SAQ {version('saq')} on Postgres",
        "procrastinate": f"procrastinate {version('procrastinate')}",
    }
    rows: list[Figure] = []
    for name, what in versions.items():
        rows.append(
            Figure(
                f"noop drain ({noop_jobs} jobs)",
                "jobs/s",
                ours["noop"],
                results[name]["noop"],
                what,
            )
        )
    for name, what in versions.items():
        theirs = results[name].get("progress")
        rows.append(
            Figure(
                f"drain of jobs reporting {UPDATES} progress updates ({progress_jobs} jobs)",
                "jobs/s",
                ours["progress"],
                theirs,
                what if theirs is not None else f"{what}: has no progress mechanism",
            )
        )
    if "progress_coalesced" in ours:
        rows.append(
            Figure(
                f"drain of jobs reporting {UPDATES} progress updates ({progress_jobs} jobs), "
                f"progress coalesced ({WINDOW_MS:g} ms, the shipped window)",
                "jobs/s",
                ours["progress_coalesced"],
                ours["progress"],
                "jobcast, every progress report stored",
            )
        )
    our_latency, our_seen = ours["latency"]
    seen_notes = [f"jobcast {our_seen} (its {UPDATES} and the step and status events)"]
    for name, what in versions.items():
        if "latency" not in results[name]:
            continue
        latency, seen = results[name]["latency"]
        seen_notes.append(f"{name} {seen}")
        rows.append(
            Figure(
                "progress update to a watching client, p50",
                "ms",
                1000 * percentile(our_latency, 50),
                1000 * percentile(latency, 50) if latency else None,
                f"{what}, polled every {POLL_S:g} s",
                False,
            )
        )
    section.figures = rows
    section.notes = [
        f"Drains: {noop_jobs} noop jobs, then {progress_jobs} jobs of {UPDATES} progress updates "
        "each (no pause between them), queued with the worker stopped; the worker is then "
        "started and the rate runs from the first job taken to none left (each system's own "
        "count of unfinished jobs, polled every 20 ms). jobcast's jobs are submitted over HTTP "
        "like every other row; the peers' are queued with their own client in the benchmark "
        "process. jobcast's worker stores every progress report for the rows against the "
        f"peers (`JOBCAST_PROGRESS_WINDOW_MS=0`), as each peer writes every update; its "
        f"coalesced row ran the same jobs on a worker with the shipped window of {WINDOW_MS:g} "
        "ms (the latest report within it is stored, step and status events never wait).",
        f"Configurations: Celery's prefork pool with {os.cpu_count()} processes (its default, one "
        "per core), gossip, mingle and heartbeat off, `-O fair`, results in Redis (noop ignores "
        f"its result); SAQ's Worker and procrastinate's at concurrency 50 like jobcast's worker; "
        "each in its own process, on the same Postgres server (a database of its own each) and "
        "Redis (keys and queues named for the run).",
        f"Update latency: one job reporting {UPDATES} updates {1000 * LATENCY_INTERVAL_S:g} ms "
        "apart, each stamped when made; jobcast's watcher is its websocket (every update "
        f"arrives), the peers' clients poll every {POLL_S:g} s (Celery's `AsyncResult` default "
        "polling interval), so they see only the latest update at each poll: an update is "
        "timed from when it was made to the first poll that saw it or a later one. Updates "
        f"that reached the client as themselves, of {UPDATES}: {', '.join(seen_notes)}. "
        "procrastinate has no progress mechanism: no row. SAQ can also push a job's changes "
        "to a client that listens on its Redis or Postgres channel (`Queue.listen`); that "
        "path is not measured here.",
    ]
