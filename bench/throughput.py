"""1. End-to-end throughput: jobs submitted over HTTP until all completed, against raw arq.

jobcast: N jobs posted to ``POST /api/jobs`` from 20 concurrent clients, timed
from the first request to the ``finished_at`` of the last job in Postgres.
Raw arq: N jobs put on a queue of their own with ``ArqRedis.enqueue_job`` from
20 concurrent callers, run by arq's Worker with jobcast's worker options, timed
from the first enqueue until the queue is empty (arq removes a job from it only
when the job is done).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from arq.connections import RedisSettings, create_pool

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

SUBMITTERS = 20
# "sleep 10 ms" in jobcast: a noop job that waits 10 ms, reporting nothing meanwhile
SLEEP_INPUT = {"sleep_s": 0.01}
# and the same 10 ms as the demo job, which reports 31 events on the way
DEMO_INPUT = {"duration": 0.01}


async def jobcast_rate(run: Run, web_urls: list[str], job_type: str, job_input: dict[str, Any],
                       count: int) -> float:
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


async def arq_rate(run: Run, function: str, count: int) -> float:
    """Jobs per second through raw arq, from first enqueue to an empty queue."""
    queue = raw_queue(run.settings)
    pool = await create_pool(RedisSettings.from_dsn(run.settings.redis_dsn))
    tag = uuid.uuid4().hex[:8]
    indexes = iter(range(count))

    async def enqueuer() -> None:
        for i in indexes:
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
        await until(drained, timeout_s=run.scale.budget_s, what="raw arq queue empty",
                    interval_s=0.01)
        return count / (time.time() - started)
    finally:
        await pool.aclose()


async def run(ctx: Run, section: Section) -> None:
    scale = ctx.scale
    noop = await jobcast_rate(ctx, [ctx.web_url], "noop", {}, scale.noop_jobs)
    sleep = await jobcast_rate(ctx, [ctx.web_url], "noop", SLEEP_INPUT, scale.sleep_jobs)
    demo = await jobcast_rate(ctx, [ctx.web_url], "demo", DEMO_INPUT, scale.sleep_jobs)
    await ctx.cluster.start_worker(
        "raw-arq", command=python_command("-m", "bench.rawarq"), queue=raw_queue(ctx.settings)
    )
    try:
        raw_noop = await arq_rate(ctx, "noop", scale.noop_jobs)
        raw_sleep = await arq_rate(ctx, "sleep_10ms", scale.sleep_jobs)
    finally:
        await ctx.cluster.stop("raw-arq")
    kinds = await event_kinds(ctx.db, "demo")
    section.figures = [
        Figure(f"noop jobs ({scale.noop_jobs})", "jobs/s", noop, raw_noop, "raw arq, noop"),
        Figure(f"10 ms jobs ({scale.sleep_jobs}): noop, sleep_s 0.01", "jobs/s", sleep,
               raw_sleep, "raw arq, sleep 10 ms"),
        Figure(f"10 ms jobs ({scale.sleep_jobs}): demo, with its {kinds} events", "jobs/s", demo,
               raw_sleep, "raw arq, sleep 10 ms"),
    ]
    section.notes = [
        f"{SUBMITTERS} concurrent submitters; one web process and one worker "
        f"(concurrency {ctx.settings.worker_concurrency}); the arq baseline runs in its own "
        "process with the same arq options.",
        "jobcast's plain 10 ms job is the built-in `noop` type with `sleep_s` 0.01, which "
        "only sleeps, like the arq job. The `demo` row is the same 10 ms spent in four steps: "
        "it also stores and publishes its events, one Postgres statement and one Redis "
        "round trip each, which the arq job does not have.",
        "jobcast times to the last job's `finished_at`; raw arq until its queue is empty, "
        "polled every 10 ms.",
    ]
