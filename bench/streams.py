"""8. Streamed output: chunk latency from a job's ``write`` to its watcher, and its cost.

100 jobs each write a chunk to a stream 100 times a second (10,000 chunks/s in
all), one ``WS /ws/jobs/{id}`` watching each. Every chunk carries the time it was
written, so its latency covers the worker's buffer (flushed every
``JOBCAST_STREAM_FLUSH_MS``), storing the flush in Postgres, publishing it, the web
process's fan-out and the websocket. The cost is Postgres commits per chunk, read
from ``pg_stat_database`` over the phase (every statement of the run: claims, steps,
heartbeats, the web process's reads). The baseline: raw Redis pub/sub, one message
per chunk, at the same rate over as many channels, storing nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import orjson

from bench.events import redis_baseline
from bench.harness import (
    BenchError,
    Figure,
    Run,
    Section,
    close_sockets,
    hammer,
    http,
    new_owner,
    open_socket,
    percentile,
    submit,
    ws_base,
)

log = logging.getLogger(__name__)

JOBS = 100
RATE = 100.0  # chunks per second, per job
WEB, WORKER = "web-streams", "worker-streams"


@dataclass
class StreamWatcher:
    """One job's socket: each chunk's latency, and whether the stream came whole."""

    job_id: str
    latencies_s: list[float] = field(default_factory=list)
    length: int = 0  # characters of the stream received, in order
    chunks: int = 0
    events: int = 0
    whole: bool = True  # every event began where the last ended
    final: str | None = None

    async def follow(self, url: str, token: str) -> None:
        socket = await open_socket(f"{url}/ws/jobs/{self.job_id}", token)
        try:
            first = orjson.loads(await socket.recv())
            if first.get("type") != "snapshot":
                raise BenchError(f"job {self.job_id}: the socket began with {first!r}")
            async for raw in socket:
                now = time.time()
                message = orjson.loads(raw)
                if message.get("kind") == "stream":
                    self.events += 1
                    self.whole &= message["offset"] == self.length
                    self.length += len(message["text"])
                    for line in message["text"].splitlines():
                        self.chunks += 1
                        self.latencies_s.append(now - orjson.loads(line)["t"])
                elif message.get("kind") == "status" and message["status"] in (
                    "completed",
                    "failed",
                    "cancelled",
                ):
                    self.final = message["status"]
        finally:
            await close_sockets([socket])


async def commits(ctx: Run) -> int:
    value: int = await ctx.db.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    )
    return value


async def run(ctx: Run, section: Section) -> None:
    seconds = 1.0 if ctx.scale.name == "quick" else 20.0
    chunks_per_job = int(RATE * seconds)
    env = {"JOBCAST_JOB_MODULES": "bench.streamer", "JOBCAST_WORKER_CONCURRENCY": str(JOBS + 10)}
    # the usual worker does not know the type: only this pair may take its jobs
    await ctx.cluster.stop("worker")
    url, _ = await asyncio.gather(
        ctx.cluster.start_web(WEB, env=env), ctx.cluster.start_worker(WORKER, env=env)
    )
    token = await new_owner(url)
    first_due_s = ctx.scale.lead_s + 1.0
    started = time.monotonic()
    job_ids: list[str] = []
    async with http(url, token, 20) as client:

        async def one(_i: int) -> None:
            due_s = max(first_due_s - (time.monotonic() - started), 0.5)
            job_ids.append(
                await submit(
                    client,
                    "bench_stream",
                    {"chunks": chunks_per_job, "rate": RATE},
                    delay_seconds=round(due_s, 3),
                )
            )

        await hammer(one, concurrency=20, count=JOBS)
    watchers = [StreamWatcher(job_id) for job_id in job_ids]
    log.info(
        "streams: %d jobs submitted, due in %.1f s",
        len(job_ids),
        first_due_s - (time.monotonic() - started),
    )
    before = await commits(ctx)
    follows = [asyncio.create_task(w.follow(ws_base(url), token)) for w in watchers]
    try:
        await asyncio.wait_for(asyncio.gather(*follows), ctx.scale.budget_s)
    finally:
        for task in follows:
            task.cancel()
    log.info(
        "streams: every socket closed, %.1f s after the jobs were due",
        time.monotonic() - started - first_due_s,
    )
    if time.monotonic() - started < first_due_s:
        raise BenchError("the jobs ended before they were due")

    # a backend reports its commits to pg_stat_database when it is idle a while or ends:
    # the pair is stopped first, so that every one of its commits is counted
    await asyncio.gather(ctx.cluster.stop(WORKER), ctx.cluster.stop(WEB))
    await asyncio.sleep(1.0)
    after = await commits(ctx)
    stored = await ctx.db.fetchval(
        "SELECT count(*) FROM job_events e JOIN jobs j ON j.id = e.job_id"
        " WHERE j.type = 'bench_stream' AND e.kind = 'stream'"
    )

    latencies = [x for w in watchers for x in w.latencies_s]
    total = JOBS * chunks_per_job
    received = sum(w.chunks for w in watchers)
    whole = sum(w.whole and w.chunks == chunks_per_job and w.final == "completed" for w in watchers)
    # one second of it (half in quick mode): enough for its percentiles
    count = min(total, int(JOBS * RATE * (0.5 if ctx.scale.name == "quick" else 1.0)))
    raw = await redis_baseline(ctx, JOBS, count, JOBS * RATE)
    ms = 1000
    baseline = "raw Redis pub/sub, a message per chunk"
    section.figures = [
        Figure(
            "stream chunk latency p50, write to watcher",
            "ms",
            ms * percentile(latencies, 50),
            ms * percentile(raw, 50),
            baseline,
            False,
        ),
        Figure(
            "stream chunk latency p99, write to watcher",
            "ms",
            ms * percentile(latencies, 99),
            ms * percentile(raw, 99),
            baseline,
            False,
        ),
        Figure(
            "Postgres commits per stream chunk",
            "commits",
            round((after - before) / max(received, 1), 4),
            0.0,
            "raw Redis pub/sub (stores nothing)",
            False,
        ),
    ]
    section.notes = [
        f"{JOBS} `bench_stream` jobs (bench/streamer.py) running at once, each writing "
        f"{chunks_per_job} chunks of about 40 bytes to one stream at {RATE:g} chunks/s for "
        f"{seconds:g} s ({JOBS * RATE:,.0f} chunks/s in all); one websocket per job on its own "
        "web process, with a worker of concurrency "
        f"{JOBS + 10}. {received:,} of {total:,} chunks arrived; {whole} of {JOBS} sockets got "
        "their whole stream, each event starting where the last ended, and the final event.",
        f"The worker's buffer is flushed every {ctx.settings.stream_flush_ms:g} ms "
        f"(JOBCAST_STREAM_FLUSH_MS): {stored:,} stream events stored for {received:,} chunks "
        f"({received / max(stored, 1):.1f} chunks per event). The latency of a chunk includes "
        "its wait in that buffer, so its p50 is about half the window on top of the path of "
        "any event. Commits: the database's `xact_commit` over the phase, every statement of "
        f"every process included ({after - before:,} in all).",
        f"The baseline published {count:,} messages stamped like the chunks at "
        f"{JOBS * RATE:,.0f}/s over {JOBS} channels to one subscriber connection.",
    ]
