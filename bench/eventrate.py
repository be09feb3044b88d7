"""9. Events per second: how many events one worker stores and one web process delivers.

``watched_jobs`` jobs (1,000 in the full run) of ``bench_report`` (bench/reporter.py),
each reporting ``EVENT_UPDATES`` progress updates as fast as the worker stores them,
are queued to start together once one websocket watches each; the worker runs them
at its concurrency. The rate is the live events the sockets got over the time from
the first arrival to the last; every socket must get every event of its job, once,
in order, and the normal close.

The baseline is the least "persist, then publish" costs on this machine: the same
number of writers, each INSERTing an event row (committed) and then PUBLISHing it,
and one subscriber reading every channel, in the benchmark process. Two more floors: the
same events of 50 writers to a statement (still read by one subscriber), and the delivered
floor, where a writer process of its own stores them so and the bare app sends each to its
job's socket (``delivered_floor_rate``): what storing in batches and delivering costs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from websockets.asyncio.client import ClientConnection

from bench.cpu import Spent
from bench.harness import (
    BenchError,
    Figure,
    Run,
    Section,
    Watcher,
    close_sockets,
    hammer,
    http,
    new_owner,
    open_socket,
    python_command,
    submit,
    watch_all,
    ws_base,
)

EVENT_UPDATES = {"quick": 20, "full": 30}
BASELINE_MAX = 20_000

SQL_SCRATCH = """
CREATE TABLE IF NOT EXISTS bench_events (
    job int NOT NULL, seq int NOT NULL, at timestamptz NOT NULL DEFAULT now(),
    data jsonb NOT NULL, PRIMARY KEY (job, seq)
)"""
# $1 job, $2 seq, $3 data
SQL_EVENT = "INSERT INTO bench_events (job, seq, data) VALUES ($1, $2, $3) RETURNING at"


async def queue_reports(
    ctx: Run, url: str, token: str, count: int, job_input: dict[str, float], due_s: float
) -> list[str]:
    """``count`` report jobs, each due ``due_s`` from now (give or take the submits' time)."""
    started = time.monotonic()
    job_ids: list[str] = []
    async with http(url, token, 20) as client:

        async def one(_i: int) -> None:
            delay_s = max(due_s - (time.monotonic() - started), 0.2)
            job_ids.append(
                await submit(client, "bench_report", job_input, delay_seconds=round(delay_s, 3))
            )

        await hammer(one, concurrency=20, count=count)
    return job_ids


async def follow_all(ctx: Run, watchers: list[Watcher]) -> Spent | None:
    """Open every socket and read each to its close; the CPU every process spent from the
    last socket's opening to the last close."""
    follows: list[asyncio.Task[None]] = []
    try:
        await watch_all(watchers)
        with ctx.metered() as spent:
            follows = [asyncio.create_task(w.follow()) for w in watchers]
            await asyncio.wait_for(asyncio.gather(*follows), ctx.scale.budget_s)
        return spent
    finally:
        for task in follows:
            task.cancel()
        await close_sockets([w.socket for w in watchers if w.socket is not None])


async def complete(ctx: Run, watchers: list[Watcher]) -> int:
    """Watchers that got events 1 to their job's last stored seq, in order, and the close."""
    rows = await ctx.db.fetch(
        "SELECT id::text AS id, seq FROM jobs WHERE id = ANY($1::uuid[])",
        [uuid.UUID(w.job_id) for w in watchers],
    )
    last = {r["id"]: r["seq"] for r in rows}
    return sum(w.gap_free and w.seqs[-1] == last.get(w.job_id) for w in watchers)


async def close_all(pubsub: PubSub, *clients: aioredis.Redis) -> None:
    await pubsub.aclose()
    for client in clients:
        await client.aclose()


async def floor_rate(ctx: Run, writers: int, count: int) -> float:
    """Events per second when each is INSERTed (committed), then PUBLISHed, and received."""
    prefix = f"{ctx.settings.redis_prefix}:bench-events"
    # the worker's own pool size: its writers share that many connections, as jobs do
    size = ctx.settings.pg_pool_max
    pool = await asyncpg.create_pool(ctx.settings.database_dsn, min_size=1, max_size=size)
    publisher = aioredis.Redis.from_url(ctx.settings.redis_dsn)
    subscriber = aioredis.Redis.from_url(ctx.settings.redis_dsn)
    pubsub = subscriber.pubsub()
    received = 0
    in_order = True
    last_seq: dict[bytes, int] = {}
    try:
        await pool.execute(SQL_SCRATCH)
        await pubsub.psubscribe(f"{prefix}:*")

        async def receive() -> None:
            nonlocal received, in_order
            while received < count:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None or message["type"] != "pmessage":
                    continue
                seq = orjson.loads(message["data"])["seq"]
                in_order &= seq == last_seq.get(message["channel"], 0) + 1
                last_seq[message["channel"]] = seq
                received += 1

        receiver = asyncio.create_task(receive())
        per_writer = count // writers

        async def writer(w: int) -> None:
            for seq in range(1, per_writer + 1):
                data = orjson.dumps({"kind": "progress", "progress": seq, "seq": seq}).decode()
                await pool.fetchval(SQL_EVENT, w, seq, data)
                await publisher.publish(f"{prefix}:{w}", data)

        count = per_writer * writers
        started = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        await asyncio.wait_for(receiver, 30)
        elapsed = time.perf_counter() - started
        if not in_order:
            raise BenchError("the baseline's subscriber got a channel's events out of order")
        return count / elapsed
    finally:
        await close_all(pubsub, subscriber, publisher)
        await pool.execute("DROP TABLE IF EXISTS bench_events")
        await pool.close()


# $1 jobs, $2 seqs, $3 data: the events of many writers in one statement
SQL_EVENTS = (
    "INSERT INTO bench_events (job, seq, data)"
    " SELECT * FROM unnest($1::int[], $2::int[], $3::jsonb[]) RETURNING at"
)


async def batched_floor_rate(ctx: Run, writers: int, count: int) -> float:
    """Events per second when the events of ``writers`` jobs, one each, are INSERTed in one
    statement (committed), then PUBLISHed in one pipeline, and received: the floor of a
    worker that persists many jobs' events to a statement."""
    prefix = f"{ctx.settings.redis_prefix}:bench-batched"
    conn = await asyncpg.connect(ctx.settings.database_dsn)
    publisher = aioredis.Redis.from_url(ctx.settings.redis_dsn)
    subscriber = aioredis.Redis.from_url(ctx.settings.redis_dsn)
    pubsub = subscriber.pubsub()
    rounds = max(count // writers, 1)
    try:
        await conn.execute(SQL_SCRATCH)
        await pubsub.psubscribe(f"{prefix}:*")

        async def receive() -> None:
            received = 0
            while received < rounds * writers:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message["type"] == "pmessage":
                    received += 1

        receiver = asyncio.create_task(receive())
        jobs = list(range(writers))
        started = time.perf_counter()
        for seq in range(1, rounds + 1):
            data = [
                orjson.dumps({"kind": "progress", "progress": seq, "seq": seq}).decode()
                for _ in jobs
            ]
            await conn.fetch(SQL_EVENTS, jobs, [seq] * writers, data)
            async with publisher.pipeline(transaction=False) as pipe:
                for job, text in zip(jobs, data, strict=True):
                    pipe.publish(f"{prefix}:{job}", text)
                await pipe.execute()
        await asyncio.wait_for(receiver, 30)
        return rounds * writers / (time.perf_counter() - started)
    finally:
        await close_all(pubsub, subscriber, publisher)
        await conn.execute("DROP TABLE IF EXISTS bench_events")
        await conn.close()


@dataclass
class Feed:
    """One socket on the bare app's /feed: each event's seq in the order it came, and the
    last one's arrival."""

    socket: ClientConnection
    seqs: list[int] = field(default_factory=list)
    last_arrival: float = 0.0
    timed: bool = False  # time each event from its ``at`` (benchmark 3's floor)
    latencies_s: list[float] = field(default_factory=list)

    async def read(self, events: int) -> None:
        async for raw in self.socket:
            message = orjson.loads(raw)
            self.seqs.append(message["seq"])
            if self.timed:
                at = datetime.fromisoformat(message["at"]).timestamp()
                self.latencies_s.append(time.time() - at)
            if self.seqs[-1] >= events:
                self.last_arrival = time.time()
                return


async def fed(
    ctx: Run, jobs: int, events: int, *writer_args: str, timed: bool = False
) -> tuple[list[Feed], float]:
    """``jobs`` sockets on the bare app's /feed, read here while the writer
    (bench/feedwriter.py, a process of its own) stores ``events`` events of each job and
    publishes them (``writer_args``: its arguments after the counts); the sockets, once each
    has its last event, and the wall time the writer began."""
    url = await ctx.bare_url()
    feeds: list[Feed] = []
    try:

        async def open_one(i: int) -> None:
            socket = await open_socket(f"{ws_base(url)}/feed/{i}")
            await socket.recv()  # the snapshot
            feeds.append(Feed(socket, timed=timed))

        await hammer(open_one, concurrency=100, count=jobs)
        reads = [asyncio.create_task(f.read(events)) for f in feeds]
        writer = await asyncio.create_subprocess_exec(
            *python_command(
                "-m",
                "bench.feedwriter",
                ctx.settings.database_dsn,
                ctx.settings.redis_dsn,
                ctx.settings.redis_prefix,
                str(jobs),
                str(events),
                *writer_args,
            ),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(writer.communicate(), ctx.scale.budget_s)
        if writer.returncode != 0:
            raise BenchError(f"the floor's writer ended with {writer.returncode}")
        await asyncio.wait_for(asyncio.gather(*reads), ctx.scale.budget_s)
    finally:
        await close_sockets([f.socket for f in feeds])
        await ctx.done_with_bare()
    return feeds, float(out.split()[0])


def in_order(feeds: list[Feed], events: int) -> int:
    """How many sockets got each of their events, in order."""
    return sum(f.seqs == list(range(1, events + 1)) for f in feeds)


async def delivered_floor_rate(ctx: Run, batch: int, jobs: int, events: int) -> tuple[float, int]:
    """Events per second when each is stored in batches and delivered, the least way, to a
    websocket watching its job: the writer (bench/feedwriter.py, its own process) stores one
    event of each of ``batch`` jobs in one statement and publishes them in one pipeline;
    the bare app (one process, one pattern subscription) sends each to its job's socket;
    ``jobs`` sockets read here. Also how many sockets got each of their events, in order."""
    feeds, began = await fed(ctx, jobs, events, str(batch))
    rate = jobs * events / (max(f.last_arrival for f in feeds) - began)
    return rate, in_order(feeds, events)


STEADY_WORKER = "worker-steady"


@dataclass
class Steady:
    """The phase with every watched job running: its rate, its events, how many sockets got
    every event in order, and the CPU every process spent an event."""

    rate: float
    events: int
    whole: int
    spent: Spent | None


async def steady_rate(ctx: Run, count: int, updates: int) -> Steady:
    """Events per second with all ``count`` watched jobs running at once: one worker of
    concurrency ``count`` starts them, each waits (running) for one wall time, and then
    all report together; the rate is over the events made from that time on (the step's
    start, the updates, the step's end and the job's end), from the first stored to the
    last arrival, so no job's claim falls inside it."""
    await asyncio.gather(
        ctx.cluster.stop("worker"),
        ctx.cluster.start_worker(STEADY_WORKER, env={"JOBCAST_WORKER_CONCURRENCY": str(count)}),
    )
    try:
        url = ctx.web_url
        token = await new_owner(url)
        lead_s = max(ctx.scale.lead_s, count / 150)
        start_at = time.time() + lead_s + count / 400  # the submits, then the sockets
        job_ids = await queue_reports(
            ctx, url, token, count, {"updates": updates, "start_at": start_at}, 0.0
        )
        watchers = [Watcher(ws_base(url), token, job_id) for job_id in job_ids]
        spent = await follow_all(ctx, watchers)
        late = await ctx.db.fetchval(
            "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[])"
            " AND (started_at IS NULL OR started_at >= to_timestamp($2))",
            [uuid.UUID(j) for j in job_ids],
            start_at,
        )
        if late:
            raise BenchError(f"{late} of {count} jobs started after the common start: raise lead")
        made = [
            (arrival - latency, arrival)
            for w in watchers
            for latency, arrival in zip(w.latencies_s, w.arrivals, strict=True)
            if arrival - latency >= start_at
        ]
        if not made:
            raise BenchError("no event made after the common start arrived")
        first_at = min(at for at, _ in made)
        last_arrival = max(arrival for _, arrival in made)
        whole = await complete(ctx, watchers)
        return Steady(len(made) / (last_arrival - first_at), len(made), whole, spent)
    finally:
        await ctx.cluster.stop(STEADY_WORKER)
        await ctx.cluster.start_worker("worker")


async def run(ctx: Run, section: Section) -> None:
    count = ctx.scale.watched_jobs
    updates = EVENT_UPDATES[ctx.scale.name]
    url = ctx.web_url
    token = await new_owner(url)
    job_ids = await queue_reports(
        ctx, url, token, count, {"updates": updates}, max(ctx.scale.lead_s, count / 150)
    )
    watchers = [Watcher(ws_base(url), token, job_id) for job_id in job_ids]
    spent = await follow_all(ctx, watchers)
    last_arrival = max((w.arrivals[-1] for w in watchers if w.arrivals), default=None)
    if last_arrival is None:
        raise BenchError("no live event arrived")
    # from the first event after `pending` stored to the last one delivered; a socket
    # that opened after its job began got the first of them replayed
    first_at = await ctx.db.fetchval(
        "SELECT extract(epoch FROM min(at))::float8 FROM job_events"
        " WHERE job_id = ANY($1::uuid[]) AND seq >= 2",
        [uuid.UUID(j) for j in job_ids],
    )
    delivered = sum(1 for w in watchers for seq in w.seqs if seq >= 2)
    live = sum(len(w.arrivals) for w in watchers)
    rate = delivered / (last_arrival - first_at)
    whole = await complete(ctx, watchers)
    writers = ctx.settings.worker_concurrency
    floor = await floor_rate(ctx, writers, min(delivered, BASELINE_MAX))
    batched = await batched_floor_rate(ctx, writers, min(delivered, BASELINE_MAX))
    floor_delivered, floor_whole = await delivered_floor_rate(ctx, writers, count, updates + 4)
    if floor_whole != count:
        raise BenchError(f"the delivered floor: {floor_whole} of {count} sockets got all in order")
    steady = await steady_rate(ctx, count, updates)
    # the same events a job (the step's start, the updates, its end, the job's end), all
    # the jobs' events of a round to a statement, as the worker's reports of them all are
    floor_steady, floor_steady_whole = await delivered_floor_rate(ctx, count, count, updates + 3)
    if floor_steady_whole != count:
        raise BenchError(
            f"the delivered floor, all at once: {floor_steady_whole} of {count} sockets"
        )
    section.figures = [
        Figure(
            f"events stored and delivered per second, {count} watched jobs",
            "events/s",
            rate,
            floor,
            f"asyncpg INSERT + PUBLISH per event, {writers} writers, "
            f"{ctx.settings.pg_pool_max} connections",
        ),
        Figure(
            f"the floor with the events of {writers} jobs to a statement",
            "events/s",
            batched,
            floor,
            "the floor above, one statement per event",
        ),
        Figure(
            f"events stored and delivered per second, {count} watched jobs, against the floor "
            "that stores them in batches and delivers them",
            "events/s",
            rate,
            floor_delivered,
            f"the events of {writers} jobs to a statement and a pipeline, sent by the bare app "
            f"to {count} sockets",
        ),
        Figure(
            "watchers that got every event, in order",
            "",
            f"{whole} of {len(watchers)}",
            None,
            "— (a check, not a speed)",
        ),
        Figure(
            f"events stored and delivered per second, {count} watched jobs running at once",
            "events/s",
            steady.rate,
            floor_steady,
            f"the events of {count} jobs to a statement and a pipeline, sent by the bare app "
            f"to {count} sockets",
        ),
        Figure(
            f"events stored and delivered per second, {count} watched jobs running at once",
            "events/s",
            steady.rate,
            rate,
            f"{count} watched jobs, {writers} at a time, each started and ended within",
        ),
        Figure(
            "watchers that got every event, in order, all running at once",
            "",
            f"{steady.whole} of {count}",
            None,
            "— (a check, not a speed)",
        ),
    ]
    section.notes = [
        f"{count} `bench_report` jobs (bench/reporter.py), each {updates} progress updates "
        f"in one step as fast as the worker stores them ({updates + 4} live events a job: "
        "running, the step's start and end, the updates, completed), one websocket each on "
        f"one web process; one worker of concurrency {writers}. {delivered} events "
        f"arrived ({live} live, the rest replayed to a socket that opened after its job began); "
        "the rate is over the time from the first of them stored (Postgres's `at`) to the "
        "last arrival. CPU an event, every process, from the last socket's opening to the "
        f"last close: {spent.per_job_ms(delivered) if spent is not None else '-'}.",
        f"The baseline: {writers} writers in the benchmark process sharing a pool of "
        f"{ctx.settings.pg_pool_max} connections (the worker's), each INSERTing an event "
        "row (one committed statement) and then PUBLISHing it on a channel of its own, and one "
        f"subscriber reading them all, {min(delivered, BASELINE_MAX)} events in all: what "
        "persisting each event before publishing it costs here at the least, with no job, "
        "no websocket and no check.",
        f"The batched floor: one connection INSERTs one event of each of {writers} jobs in one "
        "statement (`unnest`, committed), then PUBLISHes them in one pipeline, round after "
        "round, read by one subscriber: what persisting many jobs' events to a statement "
        "could reach here at the least, with no websocket.",
        f"The delivered floor: a process of its own (bench/feedwriter.py) stores the "
        f"{updates + 4} events of each of {count} jobs, {writers} jobs at a time, one event of "
        "each of them in one statement (committed) and then each published on its job's "
        "channel in one pipeline, round after round; the bare app (bench/bare.py, one "
        "process, one pattern subscription) sends each to its job's `/feed` socket, one "
        f"each, read here; every socket got each of its events, in order. The rate is over "
        "the time from the writer's start to the last arrival: what storing events in "
        "batches and delivering each to its watcher costs here at the least, with no job, "
        "no attempt, no check and no token.",
        f"All running at once: the same {count} jobs and sockets, on a worker of concurrency "
        f"{count} in the run's worker's place, each job waiting (running) for one wall time "
        f"before its step, then reporting as above: {steady.events} events made from that "
        "time on (the step's start, the updates, the step's end and the job's end) arrived; "
        "the rate is over the time from the first of them stored to the last arrival, so "
        "the jobs' claims fall outside it and their ends inside. What a worker's running "
        "jobs talking at once cost, without the churn of jobs starting. CPU an event, every "
        "process, from the last socket's opening to the last close (the wait included): "
        f"{steady.spent.per_job_ms(steady.events) if steady.spent is not None else '-'}. "
        f"Its floor is the delivered floor with {count} jobs to a statement and "
        f"{updates + 3} events a job.",
    ]
