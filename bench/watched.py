"""7. A watched job runs as fast as an unwatched one.

The same demo job (its 31 events in about a second) runs alternately unwatched and
watched by ``watched_jobs`` websockets (1,000 in the full run), one job at a time. Each
job's run time is its ``finished_at - started_at`` in Postgres: the worker's time, which
is what watchers could slow down (by the fan-out competing for the machine, or by back
pressure on the worker's publishes). The watched jobs are queued to start a few seconds
later, once every socket is open; every socket must get every event, in order.
"""

from __future__ import annotations

import asyncio
import statistics
import uuid

from bench.harness import (
    BenchError,
    Figure,
    Run,
    Section,
    Watcher,
    close_sockets,
    http,
    new_owner,
    submit,
    until,
    watch_all,
    ws_base,
)
from bench.load import LoadClient

JOB = {"duration": 1.0}
ROUNDS = {"quick": 1, "full": 5}


async def run_time_s(ctx: Run, job_id: str) -> float:
    """Wait for the job to finish; its run time in seconds."""

    async def finished() -> float | None:
        row = await ctx.db.fetchrow(
            "SELECT status, extract(epoch FROM finished_at - started_at)::float8 AS s "
            "FROM jobs WHERE id = $1",
            uuid.UUID(job_id),
        )
        if row is None or row["s"] is None:
            return None
        if row["status"] != "completed":
            raise BenchError(f"job {job_id} ended {row['status']}")
        seconds: float = row["s"]
        return seconds

    result: float = await until(finished, timeout_s=60, what=f"job {job_id} finished")
    return result


async def unwatched(ctx: Run, client: LoadClient) -> float:
    return await run_time_s(ctx, await submit(client, "demo", JOB))


async def watched(ctx: Run, client: LoadClient, token: str, sockets: int) -> tuple[float, int]:
    """Run time of a job watched by ``sockets`` sockets, and how many saw every event."""
    delay_s = max(2.0, sockets / 250)  # every socket is open before the job starts
    job_id = await submit(client, "demo", JOB, delay_seconds=delay_s)
    watchers = [Watcher(ws_base(ctx.web_url), token, job_id) for _ in range(sockets)]
    follows: list[asyncio.Task[None]] = []
    try:
        await watch_all(watchers)
        follows = [asyncio.create_task(w.follow()) for w in watchers]
        seconds = await run_time_s(ctx, job_id)
        await asyncio.wait_for(asyncio.gather(*follows), 30)
    finally:
        for task in follows:
            task.cancel()
        await close_sockets([w.socket for w in watchers if w.socket is not None])
    final_seq = await ctx.db.fetchval("SELECT seq FROM jobs WHERE id = $1", uuid.UUID(job_id))
    complete = sum(1 for w in watchers if w.gap_free and w.seqs[-1] == final_seq)
    return seconds, complete


async def run(ctx: Run, section: Section) -> None:
    sockets = ctx.scale.watched_jobs
    rounds = ROUNDS[ctx.scale.name]
    token = await new_owner(ctx.web_url)
    alone: list[float] = []
    crowded: list[float] = []
    complete = 0
    async with http(ctx.web_url, token, 4) as client:
        await unwatched(ctx, client)  # warm-up: the first job of a type pays for imports
        for _ in range(rounds):  # alternating, so that drift on the machine hits both alike
            alone.append(await unwatched(ctx, client))
            seconds, seen_all = await watched(ctx, client, token, sockets)
            crowded.append(seconds)
            complete += seen_all
    what = "the same job, unwatched"
    section.figures = [
        Figure(
            f"demo job run time, median of {rounds}, watched by {sockets} sockets",
            "ms",
            1000 * statistics.median(crowded),
            1000 * statistics.median(alone),
            what,
            False,
        ),
        Figure(
            f"demo job run time, slowest of {rounds}, watched by {sockets} sockets",
            "ms",
            1000 * max(crowded),
            1000 * max(alone),
            what,
            False,
        ),
        Figure(
            "watchers that got every event, in order",
            "",
            f"{complete} of {sockets * rounds}",
            None,
            "— (a check, not a speed)",
        ),
    ]
    section.notes = [
        f"The built-in `demo` job with `duration` {JOB['duration']:g} (4 steps, 31 events), "
        f"{rounds} times unwatched and {rounds} times watched by {sockets} websockets on one "
        "web process, alternating, one job at a time; one worker.",
        "Run time is `finished_at - started_at` as Postgres recorded it: the worker's time, "
        "which is what a crowd of watchers could slow down. The job sleeps 50 ms between "
        "its 20 progress reports, so about 1,000 ms of it is sleeping by design.",
    ]
