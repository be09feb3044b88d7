"""9. Behind PgBouncer: the same noop submits and end-to-end runs, straight to Postgres and
through a real PgBouncer in transaction mode, in the same run.

The PgBouncer side is configured as docs/deploy.md says for PgBouncer before 1.21
(Debian 12 ships 1.18): pooled statements through the pooler with asyncpg's statement
cache off (``JOBCAST_PG_STATEMENT_CACHE_SIZE=0``), the LISTEN connection direct. The
direct side is the run's own web process and worker, with the cache on as by default.
The submits take turns (direct, pooled, direct, pooled) and each side keeps its better
turn, so a burst of load elsewhere on the machine does not land on one side only; the
end-to-end runs (one worker each, so one at a time) go once each.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from dataclasses import dataclass

from bench.harness import (
    BenchError,
    Figure,
    Load,
    Run,
    Section,
    hammer,
    http,
    new_owner,
    submit,
    until,
)

CONCURRENCY = 10
WARMUP = 20
ROUNDS = {"quick": 1, "full": 2}
# a quarter of benchmarks 1 and 2's counts a turn: eight turns and two more processes fit
# in one benchmark's time budget
SHARE = 4
WEB, WORKER = "web-pgbouncer", "worker-pgbouncer"
BASELINE_IS = "the same, straight to Postgres (statement cache on)"


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if shutil.which("/usr/sbin/pgbouncer") else None
    )


async def _submits(url: str, count: int) -> Load:
    """``count`` noop submits from CONCURRENCY clients, after WARMUP unmeasured ones."""
    token = await new_owner(url)
    async with http(url, token, CONCURRENCY) as client:

        async def one(_i: int) -> None:
            await submit(client, "noop", {})

        await hammer(one, concurrency=CONCURRENCY, count=WARMUP)
        return await hammer(one, concurrency=CONCURRENCY, count=count)


@dataclass
class Turn:
    """An end-to-end turn: its seconds, and the most its jobs waited to start and to end."""

    elapsed_s: float
    start_wait_ms: float  # the most from a job's submit to its start
    run_ms: float  # the most from a job's start to its end

    def said(self) -> str:
        return (
            f"{self.elapsed_s:.2f} s, a job started at most {self.start_wait_ms:,.0f} ms "
            f"after its submit and ended at most {self.run_ms:,.0f} ms after its start"
        )


async def _end_to_end(ctx: Run, url: str, count: int) -> Turn:
    """``count`` noop jobs from the first submit to the last one completed."""
    tag = f"pgb-{uuid.uuid4().hex[:8]}"
    token = await new_owner(url)
    async with http(url, token, CONCURRENCY) as client:

        async def one(_i: int) -> None:
            await submit(client, "noop", {}, tags=[tag])

        load = await hammer(one, concurrency=CONCURRENCY, count=count)

    async def done() -> bool:
        left: int = await ctx.db.fetchval(
            "SELECT count(*) FROM jobs WHERE $1 = ANY(tags) AND status <> 'completed'", tag
        )
        return left == 0

    await until(done, timeout_s=ctx.scale.budget_s, what=f"{count} noop jobs completed")
    row = await ctx.db.fetchrow(
        "SELECT extract(epoch FROM max(finished_at) - min(created_at)) AS elapsed,"
        "       extract(epoch FROM max(started_at - created_at)) * 1000 AS start_wait,"
        "       extract(epoch FROM max(finished_at - started_at)) * 1000 AS run"
        " FROM jobs WHERE $1 = ANY(tags)",
        tag,
    )
    assert row is not None  # an aggregate answers one row
    # extract() gives a numeric (Decimal)
    return Turn(
        max(float(row["elapsed"]), load.elapsed_s), float(row["start_wait"]), float(row["run"])
    )


async def run(ctx: Run, section: Section) -> None:
    binary = pgbouncer_binary()
    if binary is None:
        raise BenchError("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    from tests.pgbouncer import PgBouncer  # the suite's: a private pgbouncer on loopback

    direct = ctx.settings.database_dsn
    bouncer = PgBouncer(direct, pool_size=2 * ctx.settings.pg_pool_max)
    bouncer.start()
    try:
        pooled = {
            "DATABASE_URL": bouncer.url(direct),
            "JOBCAST_LISTEN_DATABASE_URL": direct,
            "JOBCAST_PG_STATEMENT_CACHE_SIZE": "0",
        }
        pooled_url, _ = await asyncio.gather(
            ctx.cluster.start_web(WEB, env=pooled),
            ctx.cluster.stop("worker"),  # submits alone first, as in benchmark 2
        )
        count = ctx.scale.submit_requests // SHARE
        best: dict[str, Load] = {}
        for _ in range(ROUNDS[ctx.scale.name]):
            for side, url in (("direct", ctx.web_url), ("pooled", pooled_url)):
                load = await _submits(url, count)
                if side not in best or load.rate > best[side].rate:
                    best[side] = load
        # the submits' jobs need not run: dropped, so that none of the end-to-end turn's
        # jobs waits behind them (nor behind benchmark 4's idle jobs, due in an hour)
        await ctx.drop_pending()
        await ctx.cluster.start_worker("worker")
        jobs = ctx.scale.noop_jobs // (2 * SHARE)
        took: dict[str, Turn] = {"direct": await _end_to_end(ctx, ctx.web_url, jobs)}
        # each swap side by side: no job is in flight between the turns
        await asyncio.gather(
            ctx.cluster.stop("worker"), ctx.cluster.start_worker(WORKER, env=pooled)
        )
        took["pooled"] = await _end_to_end(ctx, pooled_url, jobs)
        await ctx.cluster.stop(WORKER)  # the run's worker is started again where it is needed
    finally:
        bouncer.stop()
    ours, raw = best["pooled"], best["direct"]
    section.figures += [
        Figure(
            f"submits/s through PgBouncer, concurrency {CONCURRENCY}",
            "req/s",
            ours.rate,
            raw.rate,
            BASELINE_IS,
        ),
        Figure("submit p50 through PgBouncer", "ms", ours.ms(50), raw.ms(50), BASELINE_IS, False),
        Figure("submit p99 through PgBouncer", "ms", ours.ms(99), raw.ms(99), BASELINE_IS, False),
        Figure(
            "noop jobs/s end to end through PgBouncer",
            "jobs/s",
            jobs / took["pooled"].elapsed_s,
            jobs / took["direct"].elapsed_s,
            BASELINE_IS,
        ),
    ]
    section.notes = [
        f"PgBouncer {binary} in transaction mode on loopback (pool of "
        f"{2 * ctx.settings.pg_pool_max} server connections), in front of the same Postgres; "
        "the pooled web process and worker have JOBCAST_PG_STATEMENT_CACHE_SIZE=0 and their "
        "LISTEN connection direct (JOBCAST_LISTEN_DATABASE_URL), as docs/deploy.md says.",
        f"Submits: {count} noop submits from {CONCURRENCY} clients after {WARMUP} unmeasured "
        f"ones, no worker running; end to end: {jobs} noop jobs submitted from "
        f"{CONCURRENCY} clients to one worker, from the first submit to the last job "
        f"completed. The submits ran {ROUNDS[ctx.scale.name]} times a side, taking turns; "
        "each side keeps its best; the end-to-end runs once a side.",
        f"End to end, straight to Postgres: {took['direct'].said()}; through PgBouncer: "
        f"{took['pooled'].said()}.",
        "Without a statement cache every statement is parsed and planned again by "
        "Postgres (asyncpg prepares an unnamed statement each time), and every round trip "
        "passes through one more process: the rows give what that costs together.",
    ]
