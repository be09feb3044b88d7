"""14. Held jobs cost Redis nothing; 15. a second tenant behind a first one's backlog.

14: one job holds a concurrency key of limit 1 (a noop sleeping for a minute) and 1,000
more jobs with the key (200 in quick mode) are submitted in one batch; once all are
parked, Redis's own command counts (INFO commandstats, on a private redis-server so that
nothing else counts) are read before and after an interval, with one web process and one
worker on it. The baseline is the same processes with the holder running and nothing
held: what polling and one running job cost (arq looks at a running job on its queue at
each poll).

15: tenant A (an owner) submits a backlog of noop jobs sleeping 100 ms (5,000; 200 in
quick mode) in batches of 1,000, then tenant B submits 10 jobs; two workers run 10 jobs
each. The figures are the longest wait of B's jobs, from B's first submit to their last
start, and B's place in line (the most of A's jobs that started between one of B's
submits and its start), with fairness (JOBCAST_FAIR_WINDOW, the default) and without it
(0). What is left of A's backlog is then cancelled in Postgres.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from bench.harness import (
    BenchError,
    Figure,
    Run,
    Section,
    http,
    new_owner,
    submit,
    until,
)
from jobcast.settings import Settings

HELD_JOBS = {"quick": 200, "full": 1000}
HELD_INTERVAL_S = 10.0
B_JOBS = 10
SLEEP_S = 0.1
WORKERS, PER_WORKER = 2, 10


async def _commands(redis_url: str) -> int:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    # the reading itself (INFO) is left out
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


async def _rate(redis_url: str, interval_s: float) -> float:
    before = await _commands(redis_url)
    await asyncio.sleep(interval_s)
    return (await _commands(redis_url) - before) / interval_s


async def held(ctx: Run, section: Section) -> None:
    redis_url = await ctx.cluster.start_redis("redis-held")
    # fairness off: every held job goes through the queue once, straight to its key
    web, _ = await asyncio.gather(
        ctx.cluster.start_web("web-held", redis_url=redis_url, env={"JOBCAST_FAIR_WINDOW": "0"}),
        ctx.cluster.start_worker("worker-held", redis_url=redis_url),
    )
    # quick mode: counts over half a second, coarse but enough to tell 0 from many per job
    interval_s = HELD_INTERVAL_S if ctx.scale.name == "full" else HELD_INTERVAL_S / 20
    held_jobs = HELD_JOBS[ctx.scale.name]
    key = [{"key": f"bench:held:{uuid.uuid4().hex[:8]}", "limit": 1}]
    try:
        token = await new_owner(web)
        async with http(web, token, 20) as client:
            holder = await submit(client, "noop", {"sleep_s": 60}, concurrency=key)
            await until(
                lambda: _status_is(ctx, holder, "running"), timeout_s=30, what="the holder running"
            )
            idle = await _rate(redis_url, interval_s)
            one = {"type": "noop", "input": {}, "concurrency": key}
            response = await client.post("/api/jobs/batch", json={"jobs": [one] * held_jobs})
            if response.status_code != 202:
                raise BenchError(f"batch answered {response.status_code}: {response.text[:300]}")
            ids = [j["id"] for j in response.json()["jobs"]]
            await until(
                lambda: _parked(ctx, key[0]["key"], held_jobs),
                timeout_s=ctx.scale.budget_s,
                what=f"{held_jobs} jobs parked",
            )
            await asyncio.sleep(interval_s)  # the last parks' replies and arq's bookkeeping end
            busy = await _rate(redis_url, interval_s)
            await ctx.db.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = now(), parked_on = NULL"
                " WHERE id = ANY($1::uuid[])",
                [uuid.UUID(i) for i in [holder, *ids]],
            )
    finally:
        await asyncio.gather(ctx.cluster.stop("worker-held"), ctx.cluster.stop("web-held"))
        await ctx.cluster.stop("redis-held")
    section.figures = [
        Figure(
            f"Redis commands per second, {held_jobs} jobs held by a key",
            "cmd/s",
            round(busy, 1),
            round(idle, 1),
            "the same, the holder alone",
            higher_is_better=False,
        )
    ]
    section.notes = [
        f"INFO commandstats of a private redis-server, summed over every command but INFO, "
        f"before and after {interval_s:g} s; one web process and one worker "
        f"({ctx.settings.worker_concurrency} jobs at once) on it, first with the holder alone, "
        f"then with {held_jobs} more jobs parked on its key. A held job is parked in Postgres, "
        "off arq's queue: it costs Redis no command while it waits.",
    ]


async def _status_is(ctx: Run, job_id: str, status: str) -> bool:
    now = await ctx.db.fetchval("SELECT status FROM jobs WHERE id = $1", uuid.UUID(job_id))
    return bool(now == status)


async def _parked(ctx: Run, key: str, count: int) -> bool:
    n = await ctx.db.fetchval("SELECT count(*) FROM jobs WHERE parked_on = $1", key)
    return bool(n >= count)


@dataclass(frozen=True)
class Wait:
    """From B's first submit to B's last start; the most of A's jobs that started between
    one of B's submits and its start; how long A's backlog took to submit."""

    seconds: float
    a_between: int
    a_submit_s: float


async def _b_wait(ctx: Run, backlog: int, window: int) -> Wait:
    """B's wait behind A's backlog, with JOBCAST_FAIR_WINDOW at ``window``."""
    env = {"JOBCAST_FAIR_WINDOW": str(window), "JOBCAST_WORKER_CONCURRENCY": str(PER_WORKER)}
    if "worker" in ctx.cluster.procs:  # the run's idle worker would be a third (settle restarts it)
        await ctx.cluster.stop("worker")
    web, *_ = await asyncio.gather(
        ctx.cluster.start_web("web-fair", env=env),
        *(ctx.cluster.start_worker(f"worker-fair-{i}", env=env) for i in range(WORKERS)),
    )
    a_owner, b_owner = await new_owner(web), await new_owner(web)
    try:
        async with http(web, a_owner, 4) as a, http(web, b_owner, 10) as b:
            started = time.monotonic()
            for first in range(0, backlog, 1000):
                jobs = [{"type": "noop", "input": {"sleep_s": SLEEP_S}}] * min(
                    1000, backlog - first
                )
                response = await a.post("/api/jobs/batch", json={"jobs": jobs})
                if response.status_code != 202:
                    raise BenchError(f"batch answered {response.status_code}: {response.text}")
            a_submit_s = time.monotonic() - started
            b_at = time.time()
            b_ids = [uuid.UUID(await submit(b, "noop", {})) for _ in range(B_JOBS)]

            async def b_started() -> float | None:
                row = await ctx.db.fetchrow(
                    "SELECT count(started_at) AS n, max(started_at) AS last FROM jobs"
                    " WHERE id = ANY($1::uuid[])",
                    b_ids,
                )
                return row["last"].timestamp() if row["n"] == B_JOBS else None

            last = await until(
                b_started, timeout_s=ctx.scale.budget_s, what="B's jobs started", interval_s=0.05
            )
            # for each of B's jobs, how many of A's started between its submit and its own
            # start: its place in line, whatever the machine's speed
            ahead = await ctx.db.fetchval(
                "SELECT max((SELECT count(*) FROM jobs a WHERE a.owner_id <> b.owner_id"
                "   AND a.started_at > b.created_at AND a.started_at < b.started_at))"
                " FROM jobs b WHERE b.id = ANY($1::uuid[])",
                b_ids,
            )
    finally:
        # what is left of A's backlog is dropped, in Postgres and on the queue
        await ctx.drop_pending()
        names = ["web-fair", *(f"worker-fair-{i}" for i in range(WORKERS))]
        await asyncio.gather(*(ctx.cluster.stop(name) for name in names))
    return Wait(last - b_at, int(ahead), a_submit_s)


async def fairness(ctx: Run, section: Section) -> None:
    backlog = 5000 if ctx.scale.name == "full" else 200
    window = Settings.model_fields["fair_window"].default
    fair = await _b_wait(ctx, backlog, window)
    unfair = await _b_wait(ctx, backlog, 0)
    section.figures = [
        Figure(
            f"slowest start of B's {B_JOBS} jobs behind A's {backlog}",
            "s",
            round(fair.seconds, 2),
            round(unfair.seconds, 2),
            "no fairness (JOBCAST_FAIR_WINDOW=0)",
            higher_is_better=False,
        ),
        Figure(
            "most of A's jobs started between a job of B's submit and its start",
            "jobs",
            fair.a_between,
            unfair.a_between,
            "no fairness (JOBCAST_FAIR_WINDOW=0)",
            higher_is_better=False,
        ),
    ]
    section.notes = [
        f"Tenant A submits {backlog} noop jobs sleeping {SLEEP_S * 1000:g} ms in batches of "
        f"1,000 ({fair.a_submit_s:.1f} s), then tenant B submits {B_JOBS}, one request "
        f"each; {WORKERS} workers of {PER_WORKER} jobs each. The first figure is from B's "
        "first submit to the start of its last job. The second is B's place in line, "
        "whatever the machine's speed: for the job of B that waited longest, how many of "
        "A's jobs started between its submit and its start. With fairness at most "
        f"{window} of a tenant's jobs are on the queue at once (the rest parked in Postgres, "
        "each start queueing the next), and a queued job takes its tenant's next turn in its "
        "priority's band: B's first job goes right behind the queue's head and each later "
        "one a turn after, so A and B alternate. B's tenth job comes after about ten of A's "
        "turns, and the jobs the workers were starting as it was submitted.",
    ]
