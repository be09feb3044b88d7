"""2. Submit latency: ``POST /api/jobs`` at concurrency 1, 10 and 50, against its raw parts.

The baseline does what a submit must do at the least, from the benchmark
process itself: an asyncpg INSERT of the job into a scratch table (a pool as
big as jobcast's) and an arq ``enqueue_job``. The worker is stopped while this
runs, so that only the submit path is measured; its jobs run afterwards.
"""

from __future__ import annotations

import uuid

import asyncpg
import orjson
from arq.connections import RedisSettings, create_pool

from bench.bare import SQL_INSERT, SQL_SCRATCH
from bench.harness import (
    Figure,
    Load,
    Run,
    Section,
    hammer,
    http,
    new_owner,
    open_loop,
    submit,
)
from bench.rawarq import keep_as_is

LEVELS = (1, 10, 50)
WARMUP = 20
HALF = "half"  # the open-loop run at half of each side's own peak rate
# connections the open-loop client may open: enough that it never waits for one
OPEN_LOOP_CONNECTIONS = 64


async def jobcast_loads(ctx: Run) -> dict[int | str, Load]:
    token = await new_owner(ctx.web_url)
    loads: dict[int | str, Load] = {}
    for level in LEVELS:
        async with http(ctx.web_url, token, level) as client:

            async def one(_i: int) -> None:
                await submit(client, "noop", {})

            await hammer(one, concurrency=level, count=WARMUP)
            loads[level] = await hammer(one, concurrency=level, count=ctx.scale.submit_requests)
    async with http(ctx.web_url, token, OPEN_LOOP_CONNECTIONS) as client:

        async def paced(_i: int) -> None:
            await submit(client, "noop", {})

        loads[HALF] = await open_loop(
            paced, rate_per_s=half_peak(loads), count=ctx.scale.submit_requests
        )
    return loads


def half_peak(loads: dict[int | str, Load]) -> float:
    return max(load.rate for level, load in loads.items() if level != HALF) / 2


async def baseline_loads(ctx: Run) -> dict[int | str, Load]:
    await ctx.db.execute(SQL_SCRATCH)
    size = ctx.settings.pg_pool_max
    pool = await asyncpg.create_pool(
        ctx.settings.database_dsn, min_size=size, max_size=size, reset=keep_as_is
    )
    arq = await create_pool(RedisSettings.from_dsn(ctx.settings.redis_dsn))
    queue = f"{ctx.settings.redis_prefix}:raw-submit"
    owner = uuid.uuid4()
    body = orjson.dumps({}).decode()
    loads: dict[int | str, Load] = {}
    try:

        async def one(_i: int) -> None:
            job_id = uuid.uuid4()
            await pool.execute(SQL_INSERT, job_id, owner, "noop", body)
            await arq.enqueue_job(
                "noop", _job_id=f"{ctx.settings.redis_prefix}-{job_id}", _queue_name=queue
            )

        for level in LEVELS:
            await hammer(one, concurrency=level, count=WARMUP)
            loads[level] = await hammer(one, concurrency=level, count=ctx.scale.submit_requests)
        loads[HALF] = await open_loop(
            one, rate_per_s=half_peak(loads), count=ctx.scale.submit_requests
        )
    finally:
        await arq.aclose()
        await pool.close()
    return loads


async def run(ctx: Run, section: Section) -> None:
    await ctx.cluster.stop("worker")
    jobcast = await jobcast_loads(ctx)
    baseline = await baseline_loads(ctx)
    await ctx.drop_pending()  # the submitted jobs were only submits: none need to run
    what = "asyncpg INSERT + arq enqueue_job"
    for level in LEVELS:
        ours, raw = jobcast[level], baseline[level]
        section.figures += [
            Figure(f"submit p50, concurrency {level}", "ms", ours.ms(50), raw.ms(50), what, False),
            Figure(f"submit p99, concurrency {level}", "ms", ours.ms(99), raw.ms(99), what, False),
            Figure(f"submits/s, concurrency {level}", "req/s", ours.rate, raw.rate, what),
        ]
    ours, raw = jobcast[HALF], baseline[HALF]
    section.figures += [
        Figure(
            "submit p50 at half the peak rate (open loop)",
            "ms",
            ours.ms(50),
            raw.ms(50),
            what,
            False,
        ),
        Figure(
            "submit p99 at half the peak rate (open loop)",
            "ms",
            ours.ms(99),
            raw.ms(99),
            what,
            False,
        ),
        Figure(
            "half the peak rate, as sent", "req/s", half_peak(jobcast), half_peak(baseline), what
        ),
    ]
    section.notes = [
        f"{ctx.scale.submit_requests} noop submits per level after {WARMUP} unmeasured ones; "
        "one HTTP keep-alive connection per concurrent client. The worker is stopped "
        "meanwhile (the jobs run afterwards), so neither side competes with job execution.",
        "A jobcast submit also checks the owner's token, validates the input, writes the "
        "job, its steps and its first event in one statement, and announces the job on the "
        "owner's feed; the baseline does one INSERT and arq's own three-round-trip enqueue, "
        f"with no HTTP. Both use a Postgres pool of {ctx.settings.pg_pool_max}.",
        "Half the peak rate: each side is sent requests on a fixed schedule at half of its "
        "own best rate above, whether or not earlier ones have been answered (up to "
        f"{OPEN_LOOP_CONNECTIONS} connections at once); each latency counts from the "
        "request's scheduled time, so a stall is charged to every request it holds up.",
    ]
