"""1. End-to-end throughput: jobs submitted over HTTP until all completed, against raw arq.

jobcast: N jobs posted to ``POST /api/jobs`` from 20 concurrent clients, timed
from the first request to the ``finished_at`` of the last job in Postgres; the noop
jobs also once more with fairness off (``JOBCAST_FAIR_WINDOW=0``), where none of the
one owner's backlog is parked.
Raw arq: N jobs put on a queue of their own with ``ArqRedis.enqueue_job`` from
20 concurrent callers, run by arq's Worker with jobcast's worker options, timed
from the first enqueue until the queue is empty (arq removes a job from it only
when the job is done).
The bare HTTP floor: the same N jobs posted by 20 concurrent clients to the bare
Starlette app (``bench/bare.py``: one INSERT and arq's ``enqueue_job`` per
request), run by the same raw arq worker, timed like raw arq. It is the least
any service that takes jobs over HTTP and keeps a row of each can do here.
Hand-rolled: the same, and the worker sets the row running before the job and
completed after it (``bench/rawarq.py``): the jobs table teams write around arq.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

from arq.connections import RedisSettings, create_pool

from bench.cpu import Spent
from bench.harness import (
    BenchError,
    Figure,
    Run,
    Section,
    event_kinds,
    http,
    new_owner,
    owner_of_job,
    python_command,
    submit,
    until,
    wait_completed,
)
from bench.rawarq import raw_queue
from jobcast.settings import Settings

SUBMITTERS = 20
FLOOR = "bare HTTP floor (INSERT + arq)"
ROLLED = "hand-rolled (floor + 2 UPDATEs)"
EVENTED = "hand-rolled with events (an event row a change, with its seq, published)"
# "sleep 10 ms" in jobcast: a noop job that waits 10 ms, reporting nothing meanwhile
SLEEP_INPUT = {"sleep_s": 0.01}
# and the same 10 ms as the demo job, which reports 31 events on the way
DEMO_INPUT = {"duration": 0.01}
# the run's worker stores every progress report (bench.harness); this one coalesces them
# within the shipped window, as an install does
WINDOW_MS = Settings.model_fields["progress_window_ms"].default
COALESCING = "worker-coalescing"
# the noop run again on a web process and a worker with fairness off: none of the one
# owner's backlog parked, so the difference is what the window costs under a flood
UNFAIR = {"JOBCAST_FAIR_WINDOW": "0"}
UNFAIR_WEB, UNFAIR_WORKER = "web-unfair", "worker-unfair"
FAIR_WINDOW = Settings.model_fields["fair_window"].default


async def jobcast_rate(
    run: Run, web_urls: list[str], job_type: str, job_input: dict[str, Any], count: int
) -> float:
    """Jobs per second through the given web processes, from first submit to last completion."""
    token = await new_owner(web_urls[0])
    clients = [http(url, token, SUBMITTERS) for url in web_urls]
    first: list[str] = []
    indexes = iter(range(count))

    async def submitter(k: int) -> None:
        client = clients[k % len(clients)]
        for _ in indexes:
            job_id = await submit(client, job_type, job_input)
            if not first:
                first.append(job_id)

    try:
        started = time.time()
        await asyncio.gather(*(submitter(k) for k in range(SUBMITTERS)))
    finally:
        for client in clients:
            await client.aclose()
    owner_id = await owner_of_job(run.db, first[0])
    finished = await wait_completed(run.db, owner_id, count, timeout_s=run.scale.budget_s)
    return count / (finished - started)


async def arq_rate(run: Run, function: str, count: int, bare_url: str | None = None) -> float:
    """Jobs per second through raw arq, from first enqueue to an empty queue.

    With ``bare_url`` the jobs are posted to the bare app, which INSERTs and enqueues
    each; without, they are enqueued directly.
    """
    queue = raw_queue(run.settings)
    pool = await create_pool(RedisSettings.from_dsn(run.settings.redis_dsn))
    client = http(bare_url, None, SUBMITTERS) if bare_url else None
    tag = uuid.uuid4().hex[:8]
    indexes = iter(range(count))

    async def enqueuer() -> None:
        for i in indexes:
            if client is not None:
                answer = await client.post("/jobs", json={"type": function, "input": {}})
                if answer.status_code != 202:
                    raise BenchError(f"the bare app answered {answer.status_code} to job {i}")
                continue
            job = await pool.enqueue_job(
                function, _job_id=f"{run.settings.redis_prefix}-{tag}-{i}", _queue_name=queue
            )
            if job is None:
                raise BenchError(f"arq refused job {i}: its id is taken")

    async def drained() -> bool:
        queued: int = await pool.zcard(queue)
        return queued == 0

    try:
        started = time.time()
        await asyncio.gather(*(enqueuer() for _ in range(SUBMITTERS)))
        await until(
            drained, timeout_s=run.scale.budget_s, what="raw arq queue empty", interval_s=0.01
        )
        return count / (time.time() - started)
    finally:
        if client is not None:
            await client.aclose()
        await pool.aclose()


async def coalesced_demo_rate(ctx: Run, count: int) -> tuple[float, str]:
    """Demo jobs per second on a worker that coalesces progress within the shipped window,
    and the events the last of them stored."""
    await asyncio.gather(
        ctx.cluster.stop("worker"),
        ctx.cluster.start_worker(COALESCING, env={"JOBCAST_PROGRESS_WINDOW_MS": f"{WINDOW_MS:g}"}),
    )
    try:
        rate = await jobcast_rate(ctx, [ctx.web_url], "demo", DEMO_INPUT, count)
        return rate, await event_kinds(ctx.db, "demo")
    finally:
        await ctx.cluster.stop(COALESCING)  # the run's worker comes back with the baselines


async def unfair_noop_rate(ctx: Run, count: int) -> tuple[float, Spent | None]:
    """Noop jobs per second, and the CPU they took, through a web process and a worker of
    their own with fairness off (``JOBCAST_FAIR_WINDOW=0``); the run's worker is stopped
    meanwhile, and started again after."""
    await ctx.cluster.stop("worker")
    url, _ = await asyncio.gather(
        ctx.cluster.start_web(UNFAIR_WEB, env=UNFAIR),
        ctx.cluster.start_worker(UNFAIR_WORKER, env=UNFAIR),
    )
    try:
        with ctx.metered() as spent:
            rate = await jobcast_rate(ctx, [url], "noop", {}, count)
        return rate, spent
    finally:
        await asyncio.gather(ctx.cluster.stop(UNFAIR_WEB), ctx.cluster.stop(UNFAIR_WORKER))
        await ctx.cluster.start_worker("worker")


async def run(ctx: Run, section: Section) -> None:
    scale = ctx.scale
    with ctx.metered() as cpu_noop:
        noop = await jobcast_rate(ctx, [ctx.web_url], "noop", {}, scale.noop_jobs)
    # next to it, so that the table it runs on has grown only by the shipped run's jobs
    unfair, cpu_unfair = await unfair_noop_rate(ctx, scale.noop_jobs)
    sleep = await jobcast_rate(ctx, [ctx.web_url], "noop", SLEEP_INPUT, scale.sleep_jobs)
    demo = await jobcast_rate(ctx, [ctx.web_url], "demo", DEMO_INPUT, scale.sleep_jobs)
    kinds = await event_kinds(ctx.db, "demo")
    coalesced, coalesced_kinds = await coalesced_demo_rate(ctx, scale.sleep_jobs)
    # the run's worker, the raw arq worker and the bare app start side by side: each is
    # idle until used
    bare_url, *_ = await asyncio.gather(
        ctx.bare_url(),
        ctx.cluster.start_worker(
            "raw-arq", command=python_command("-m", "bench.rawarq"), queue=raw_queue(ctx.settings)
        ),
        ctx.cluster.start_worker("worker"),
    )
    try:
        with ctx.metered() as cpu_raw:
            raw_noop = await arq_rate(ctx, "noop", scale.noop_jobs)
        raw_sleep = await arq_rate(ctx, "sleep_10ms", scale.sleep_jobs)
        try:
            with ctx.metered() as cpu_floor:
                floor_noop = await arq_rate(ctx, "noop", scale.noop_jobs, bare_url)
            floor_sleep = await arq_rate(ctx, "sleep_10ms", scale.sleep_jobs, bare_url)
            with ctx.metered() as cpu_rolled:
                rolled_noop = await arq_rate(ctx, "noop_tracked", scale.noop_jobs, bare_url)
            rolled_sleep = await arq_rate(ctx, "sleep_10ms_tracked", scale.sleep_jobs, bare_url)
            with ctx.metered() as cpu_evented:
                evented_noop = await arq_rate(ctx, "noop_evented", scale.noop_jobs, bare_url)
        finally:
            await ctx.done_with_bare()
    finally:
        await ctx.cluster.stop("raw-arq")
    section.figures = [
        Figure(f"noop jobs ({scale.noop_jobs})", "jobs/s", noop, raw_noop, "raw arq, noop"),
        Figure(
            f"10 ms jobs ({scale.sleep_jobs}): noop, sleep_s 0.01",
            "jobs/s",
            sleep,
            raw_sleep,
            "raw arq, sleep 10 ms",
        ),
        Figure(
            f"10 ms jobs ({scale.sleep_jobs}): demo, with its {kinds} events",
            "jobs/s",
            demo,
            raw_sleep,
            "raw arq, sleep 10 ms",
        ),
        Figure(
            f"10 ms jobs ({scale.sleep_jobs}): demo, with its {kinds} events",
            "jobs/s",
            demo,
            noop,
            f"jobcast, noop jobs ({scale.noop_jobs})",
        ),
        Figure(
            f"10 ms jobs ({scale.sleep_jobs}): demo, progress coalesced ({WINDOW_MS:g} ms), "
            f"{coalesced_kinds} events",
            "jobs/s",
            coalesced,
            noop,
            f"jobcast, noop jobs ({scale.noop_jobs})",
        ),
        Figure(
            f"10 ms jobs ({scale.sleep_jobs}): demo, progress coalesced ({WINDOW_MS:g} ms)",
            "jobs/s",
            coalesced,
            demo,
            "the same, every progress report stored",
        ),
        Figure(f"noop jobs ({scale.noop_jobs})", "jobs/s", noop, floor_noop, FLOOR + ", noop"),
        Figure(f"noop jobs ({scale.noop_jobs})", "jobs/s", noop, rolled_noop, ROLLED + ", noop"),
        Figure(f"noop jobs ({scale.noop_jobs})", "jobs/s", noop, evented_noop, EVENTED + ", noop"),
        Figure(
            f"noop jobs ({scale.noop_jobs}), fairness off",
            "jobs/s",
            unfair,
            rolled_noop,
            ROLLED + ", noop",
        ),
        Figure(
            f"noop jobs ({scale.noop_jobs})",
            "jobs/s",
            noop,
            unfair,
            "jobcast, the same with fairness off",
        ),
        Figure(
            f"{EVENTED}, noop jobs ({scale.noop_jobs})",
            "jobs/s",
            evented_noop,
            rolled_noop,
            ROLLED + ", noop",
        ),
        Figure(
            f"10 ms jobs ({scale.sleep_jobs}): noop, sleep_s 0.01",
            "jobs/s",
            sleep,
            rolled_sleep,
            ROLLED + ", sleep 10 ms",
        ),
    ]
    section.notes = [
        f"{SUBMITTERS} concurrent submitters; one web process and one worker "
        f"(concurrency {ctx.settings.worker_concurrency}); the arq baseline runs in its own "
        "process with the same arq options.",
        "jobcast's plain 10 ms job is the built-in `noop` type with `sleep_s` 0.01, which "
        "only sleeps, like the arq job. The `demo` row is the same 10 ms spent in four steps: "
        "it also stores and publishes its events, one Postgres statement each, and a "
        "publish (the events of jobs reporting at once share a Redis round trip), which the arq "
        "job does not have. The run's worker stores every progress report "
        "(`JOBCAST_PROGRESS_WINDOW_MS=0`, so that the event benchmarks time events); the "
        f"coalesced `demo` row ran on a worker with the shipped window of {WINDOW_MS:g} ms, "
        "where a job's reports within the window are stored as one, the latest, and every "
        "step and status event is stored.",
        "jobcast times to the last job's `finished_at`; raw arq until its queue is empty, "
        "polled every 10 ms.",
        f"{FLOOR}: the same jobs posted over HTTP by {SUBMITTERS} concurrent clients to the bare "
        "Starlette app (`bench/bare.py`, jobcast's uvicorn options), which INSERTs each job's row "
        "and enqueues it with arq's `enqueue_job`, then run by the same raw arq worker: the least "
        "any service that takes jobs over HTTP and keeps a row of each does on this machine. "
        f"In this run it reached {floor_noop / raw_noop:.2f} times raw arq's noop rate and "
        f"{floor_sleep / raw_sleep:.2f} times its 10 ms rate ({floor_sleep:,.0f} jobs/s), with no "
        "events, no status writes and no checks.",
        f"{ROLLED}: the floor, and the worker sets each job's row running before the job and "
        "completed after it, one UPDATE each (`bench/rawarq.py`): the jobs table teams write "
        "around arq, with no events, no progress and no fan-out. In this run "
        f"{rolled_noop / raw_noop:.2f} times raw arq's noop rate and "
        f"{rolled_sleep / raw_sleep:.2f} times its 10 ms rate.",
    ]
    section.notes.append(
        f"{EVENTED}: the hand-rolled table, and each change of a job (made, running, "
        "completed) also stored as an event row numbered by the job's seq, in the same "
        "statement as the change, then published on Redis: the least that keeps jobcast's "
        "contract (a job exists once committed; every event stored with a gap-free seq "
        "before any watcher sees it), with no gates, counters, steps or fairness."
    )
    section.notes.append(
        f"fairness off: the noop run again on a web process and a worker of their own with "
        f"`JOBCAST_FAIR_WINDOW=0`. As shipped (window {FAIR_WINDOW}), the one owner's "
        f"{scale.noop_jobs} jobs, submitted at once, are all but {FAIR_WINDOW} parked in "
        "Postgres, and each start releases the next in its place (a write of its row and a "
        "Redis enqueue): what tenants' turns under a backlog cost when one tenant floods the "
        "queue. The hand-rolled tables have no fairness. It runs right after the shipped noop "
        "run, on a jobs table that run has grown (its row versions are not vacuumed "
        "meanwhile), which favours the shipped run a little."
    )
    if cpu_noop and cpu_unfair and cpu_rolled and cpu_raw and cpu_floor and cpu_evented:
        n, cores = scale.noop_jobs, os.cpu_count() or 1
        section.figures += [
            Figure(
                f"CPU per noop job, all processes{which}",
                "ms",
                1000 * spent.total / n,
                1000 * cpu_rolled.total / n,
                ROLLED + ", noop",
                higher_is_better=False,
            )
            for which, spent in (("", cpu_noop), (", fairness off", cpu_unfair))
        ]
        postgres_rows = (
            ("", cpu_noop, ROLLED, cpu_rolled),
            ("", cpu_noop, EVENTED, cpu_evented),
            (", fairness off", cpu_unfair, EVENTED, cpu_evented),
        )
        section.figures += [
            Figure(
                f"Postgres CPU per noop job{which}",
                "ms",
                1000 * spent.seconds["postgres"] / n,
                1000 * against.seconds["postgres"] / n,
                baseline + ", noop",
                higher_is_better=False,
            )
            for which, spent, baseline, against in postgres_rows
        ]
        section.notes.append(
            "Where the time goes: the CPU every process spent (psutil: the load generator, the "
            "web and worker processes, every process of the Postgres and Redis servers) during "
            f"each noop run, per job, in ms. jobcast: {cpu_noop.per_job_ms(n)}; with fairness "
            f"off: {cpu_unfair.per_job_ms(n)}. "
            f"{ROLLED}: {cpu_rolled.per_job_ms(n)}. {EVENTED}: {cpu_evented.per_job_ms(n)}. "
            f"{FLOOR}: {cpu_floor.per_job_ms(n)}. "
            f"raw arq: {cpu_raw.per_job_ms(n)}. On {cores} cores a rate cannot pass "
            f"{cores * 1000:,} ms of CPU a second divided by the total."
        )
