"""3. Event latency, worker to browser: from each event's ``at`` to its arrival at a websocket.

M demo jobs are submitted to start later, one ``WS /ws/jobs/{id}`` is opened on
each, and the jobs then come due one after another, evenly spaced, so that as
many run at once as the worker's concurrency and their events make a steady
1,000 events/s in total (not 50 jobs ticking in lockstep). Every event the
sockets get is live. Each event's ``at`` is stamped by Postgres when the event
is stored, so the latency covers storing it, publishing it, the web process's
fan-out and the websocket.

Two phases: through Redis pub/sub (the normal path), and through the fallback,
where the watching web process's Redis is gone and it learns of events only by
Postgres NOTIFY. Their baselines are raw Redis pub/sub and raw LISTEN/NOTIFY at
the rate jobcast reached, measured in the benchmark process. The pub/sub phase has
a second baseline, the stored floor: what the contract (every event stored before any
watcher sees it) costs at the least, at the same rate, from the event's ``at`` to a
websocket (``stored_floor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from dataclasses import dataclass

import asyncpg
import httpx
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bench.eventrate import fed, in_order
from bench.harness import (
    BenchError,
    Figure,
    Run,
    Section,
    Watcher,
    close_sockets,
    event_kinds,
    hammer,
    http,
    new_owner,
    paced,
    percentile,
    submit,
    until,
    watch_all,
    ws_base,
)

EVENT_RATE = 1000  # events per second wanted, over all jobs
LIVE_EVENTS_PER_JOB = 30  # a demo job's events after its creation: 2 status, 8 step, 20 progress
BASELINE_CHANNEL = "bench_events"

log = logging.getLogger("bench")


@dataclass(frozen=True)
class Delivery:
    latencies_s: list[float]
    by_kind: dict[str, list[float]]  # the same latencies, by the event's kind
    rate: float
    watchers: int
    complete: int  # watchers that saw every event, in order, and a normal close

    def ms(self, q: float) -> float:
        return 1000 * percentile(self.latencies_s, q)

    def by_kind_ms(self) -> str:
        """``progress 1.9 / 7.2 ms (20,000), ...``: p50 and p99 of each kind of event."""
        return ", ".join(
            f"{kind} {1000 * percentile(values, 50):.2f} / {1000 * percentile(values, 99):.2f} "
            f"ms ({len(values):,})"
            for kind, values in sorted(self.by_kind.items())
        )


def delivery(watchers: list[Watcher]) -> Delivery:
    latencies = [x for w in watchers for x in w.latencies_s]
    arrivals = [a for w in watchers for a in w.arrivals]
    span_s = max(arrivals) - min(arrivals) if arrivals else 0.0
    by_kind: dict[str, list[float]] = {}
    for w in watchers:
        for kind, latency in zip(w.kinds, w.latencies_s, strict=True):
            by_kind.setdefault(kind, []).append(latency)
    return Delivery(
        latencies_s=latencies,
        by_kind=by_kind,
        rate=len(arrivals) / span_s if span_s > 0 else 0.0,
        watchers=len(watchers),
        complete=sum(w.gap_free for w in watchers),
    )


async def hub_latencies(web_url: str) -> dict[float, float]:
    """The web process's ``jobcast_event_fanout_seconds`` histogram (from an event's ``at`` to
    its hand-over to local websockets): how many events so far within each bound, by bound."""
    async with httpx.AsyncClient(base_url=web_url, timeout=10) as client:
        text = (await client.get("/metrics")).text
    found: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("jobcast_event_fanout_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            found[float(bound)] = float(line.rsplit(" ", 1)[1])
    return found


def within(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    """The share of the events between two readings that were within each bound."""
    total = after.get(float("inf"), 0.0) - before.get(float("inf"), 0.0)
    return {b: (n - before.get(b, 0.0)) / total for b, n in after.items()} if total > 0 else {}


def share_within(latencies_s: list[float], bound_s: float) -> float:
    return sum(1 for x in latencies_s if x <= bound_s) / len(latencies_s) if latencies_s else 0.0


def demo_duration_s(ctx: Run) -> float:
    return ctx.settings.worker_concurrency * LIVE_EVENTS_PER_JOB / EVENT_RATE


def start_spacing_s(ctx: Run) -> float:
    """Between one job's start and the next: the worker's concurrency runs at once."""
    return demo_duration_s(ctx) / ctx.settings.worker_concurrency


async def watched_run(ctx: Run, submit_url: str, watch_url: str) -> list[Watcher]:
    """Submit demo jobs due one after another, watch each before the first is due."""
    count = ctx.scale.watched_jobs
    token = await new_owner(submit_url)
    # every socket is open by then: the submits at 200/s or more, then the sockets opened at
    # 50/s or more (a full run's 1,000 opened after 5 s of submits, past a 5 s lead)
    first_due_s = max(ctx.scale.lead_s, count / 200) + count / 50
    job_ids: list[str | None] = [None] * count
    started = time.monotonic()
    async with http(submit_url, token, 20) as client:

        async def one(i: int) -> None:
            due_s = first_due_s + i * start_spacing_s(ctx) - (time.monotonic() - started)
            job_ids[i] = await submit(
                client,
                "demo",
                {"duration": demo_duration_s(ctx)},
                delay_seconds=round(max(due_s, 0.0), 3),
            )

        await hammer(one, concurrency=20, count=count)
    watchers = [Watcher(ws_base(watch_url), token, job_id) for job_id in job_ids if job_id]
    follows: list[asyncio.Task[None]] = []
    try:
        await watch_all(watchers)
        if time.monotonic() - started > first_due_s:
            late = "the sockets opened after the first job was due: its events are not all live"
            if ctx.scale.name == "full":
                raise BenchError(late)
            # quick mode's shorter lead: a late socket's earlier events come as a replay,
            # untimed (only events after its snapshot are timed)
            log.warning("events: %s", late)
        follows = [asyncio.create_task(w.follow()) for w in watchers]
        await asyncio.wait_for(asyncio.gather(*follows), ctx.scale.budget_s)
    finally:
        for task in follows:
            task.cancel()
        await close_sockets([w.socket for w in watchers if w.socket is not None])
    return watchers


def event_text(i: int) -> bytes:
    """A message shaped and sized like a progress event, stamped now."""
    return orjson.dumps(
        {
            "type": "event",
            "progress": 37.5,
            "step": "fetch",
            "message": "Fetch data: 3 of 5",
            "job_id": str(uuid.UUID(int=i)),
            "seq": i,
            "kind": "progress",
            "at": time.time(),
        }
    )


async def redis_baseline(ctx: Run, channels: int, count: int, rate: float) -> list[float]:
    """Raw Redis pub/sub: one publisher, one subscriber on ``channels`` channels."""
    names = [f"{ctx.settings.redis_prefix}:bench:{i}" for i in range(channels)]
    subscriber = aioredis.Redis.from_url(ctx.settings.redis_dsn)
    publisher = aioredis.Redis.from_url(ctx.settings.redis_dsn)
    pubsub = subscriber.pubsub()
    latencies: list[float] = []
    receiver: asyncio.Task[None] | None = None
    try:
        await pubsub.subscribe(*names)

        async def receive() -> None:
            while len(latencies) < count:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message["type"] == "message":
                    now = time.time()
                    latencies.append(now - orjson.loads(message["data"])["at"])

        receiver = asyncio.create_task(receive())

        async def send(i: int) -> None:
            await publisher.publish(names[i % channels], event_text(i))

        await paced(count, rate, send)
        await asyncio.wait_for(receiver, 10.0)
    finally:
        if receiver is not None and not receiver.done():
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await receiver
        await pubsub.aclose()
        await subscriber.aclose()
        await publisher.aclose()
    return latencies


async def notify_baseline(ctx: Run, count: int, rate: float) -> list[float]:
    """Raw Postgres NOTIFY from one connection to a LISTEN on another."""
    listener = await asyncpg.connect(ctx.settings.database_dsn)
    publisher = await asyncpg.connect(ctx.settings.database_dsn)
    latencies: list[float] = []
    received = asyncio.Event()

    def on_notify(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        now = time.time()
        latencies.append(now - orjson.loads(payload)["at"])
        if len(latencies) >= count:
            received.set()

    try:
        await listener.add_listener(BASELINE_CHANNEL, on_notify)

        async def send(i: int) -> None:
            await publisher.execute(
                "SELECT pg_notify($1, $2)", BASELINE_CHANNEL, event_text(i).decode()
            )

        await paced(count, rate, send)
        await asyncio.wait_for(received.wait(), 10.0)
    finally:
        await listener.close()
        await publisher.close()
    return latencies


async def stored_floor(ctx: Run, jobs: int, rate: float) -> tuple[list[float], int]:
    """Each event stored in a statement of its own (committed), then published, then sent
    by the bare app to its job's websocket, the least way, at ``rate`` events a second:
    the worker's concurrency of writers in a process of their own (bench/feedwriter.py,
    on a pool the size of the worker's), ``LIVE_EVENTS_PER_JOB`` events of each of ``jobs``
    jobs. The latencies from each event's ``at`` (Postgres's, as jobcast's), and how many
    sockets got each of their events in order."""
    writers, pool = ctx.settings.worker_concurrency, ctx.settings.pg_pool_max
    feeds, _ = await fed(
        ctx, jobs, LIVE_EVENTS_PER_JOB, str(writers), str(rate), str(pool), timed=True
    )
    return [x for f in feeds for x in f.latencies_s], in_order(feeds, LIVE_EVENTS_PER_JOB)


async def start_pubsubless_web(ctx: Run) -> str:
    """A second web process whose Redis is killed once it is ready: its pub/sub is down."""
    redis_url = await ctx.cluster.start_redis("redis-b")
    url = await ctx.cluster.start_web("web-b", redis_url=redis_url)
    await ctx.cluster.stop("redis-b", sig=signal.SIGKILL)
    async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:

        async def pubsub_down() -> bool:
            checks: dict[str, str] = (await client.get("/readyz")).json().get("checks", {})
            return checks.get("pubsub") == "down" and checks.get("listen") == "ok"

        await until(pubsub_down, timeout_s=15, what="web-b reports pub/sub down, LISTEN up")
    return url


def _baseline_size(ctx: Run, found: Delivery) -> tuple[int, float]:
    """As many messages as jobcast delivered, at its rate, for at most 20 s (quick: 1 s)."""
    rate = max(found.rate, 50.0)
    seconds = 20 if ctx.scale.name == "full" else 1
    return min(len(found.latencies_s), int(rate * seconds)), rate


async def run(ctx: Run, section: Section) -> None:
    channels = ctx.scale.watched_jobs
    # quick mode: the second web process starts while the first phase runs
    early = asyncio.create_task(start_pubsubless_web(ctx)) if ctx.scale.name == "quick" else None
    try:
        hub_before = await hub_latencies(ctx.web_url)
        with ctx.metered() as spent_pubsub:
            pubsub_watchers = await watched_run(ctx, ctx.web_url, ctx.web_url)
        at_hub = within(await hub_latencies(ctx.web_url), hub_before)
        via_pubsub = delivery(pubsub_watchers)
        count, rate = _baseline_size(ctx, via_pubsub)
        raw_pubsub = await redis_baseline(ctx, channels, count, rate)
        floor_jobs = max(1, count // LIVE_EVENTS_PER_JOB)
        floor, floor_whole = await stored_floor(ctx, floor_jobs, rate)
        if floor_whole != floor_jobs:
            raise BenchError(f"the stored floor: {floor_whole} of {floor_jobs} sockets complete")
        kinds = await event_kinds(ctx.db, "demo")
        web_b = await (early if early is not None else start_pubsubless_web(ctx))
    finally:
        if early is not None and not early.done():  # the first phase failed: settle stops it
            early.cancel()
            with contextlib.suppress(asyncio.CancelledError, BenchError):
                await early
    try:
        with ctx.metered() as spent_notify:
            via_notify = delivery(await watched_run(ctx, ctx.web_url, web_b))
    finally:
        await ctx.cluster.stop("web-b")
    count_b, rate_b = _baseline_size(ctx, via_notify)
    raw_notify = await notify_baseline(ctx, count_b, rate_b)

    what_pubsub, what_notify = "raw Redis pub/sub", "raw Postgres LISTEN/NOTIFY"
    what_floor = "the stored floor: INSERT (committed), PUBLISH, the bare app's socket"
    ms = 1000
    section.figures = [
        Figure(
            "event latency p50, via Redis pub/sub",
            "ms",
            via_pubsub.ms(50),
            ms * percentile(raw_pubsub, 50),
            what_pubsub,
            False,
        ),
        Figure(
            "event latency p99, via Redis pub/sub",
            "ms",
            via_pubsub.ms(99),
            ms * percentile(raw_pubsub, 99),
            what_pubsub,
            False,
        ),
        Figure(
            "event latency p50, via Redis pub/sub",
            "ms",
            via_pubsub.ms(50),
            ms * percentile(floor, 50),
            what_floor,
            False,
        ),
        Figure(
            "event latency p99, via Redis pub/sub",
            "ms",
            via_pubsub.ms(99),
            ms * percentile(floor, 99),
            what_floor,
            False,
        ),
        Figure(
            "event latency p50, pub/sub down (NOTIFY)",
            "ms",
            via_notify.ms(50),
            ms * percentile(raw_notify, 50),
            what_notify,
            False,
        ),
        Figure(
            "event latency p99, pub/sub down (NOTIFY)",
            "ms",
            via_notify.ms(99),
            ms * percentile(raw_notify, 99),
            what_notify,
            False,
        ),
    ]
    section.notes = [
        f"{channels} watched demo jobs per phase, one websocket each, {demo_duration_s(ctx):g} s "
        f"each, due one every {1000 * start_spacing_s(ctx):g} ms so that "
        f"{ctx.settings.worker_concurrency} at a time make a steady {EVENT_RATE} events/s; "
        f"each job stores {kinds} events; the first, `pending`, happens before the sockets "
        "connect and is not timed. (Started all at once instead, 50 jobs tick in lockstep "
        "and each tick is a burst of 50 events at the same moment; the p99 was then about "
        "9 ms.)",
        f"Via pub/sub: {len(via_pubsub.latencies_s)} live events at {via_pubsub.rate:.0f} "
        f"events/s; {via_pubsub.complete} of {via_pubsub.watchers} sockets got every event "
        f"in order and a normal close. The baseline sent {count} messages at {rate:.0f}/s "
        f"over {channels} channels to one subscriber connection.",
        f"The stored floor (the contract's least, at the same rate): "
        f"{ctx.settings.worker_concurrency} writers in a process of their own "
        f"(bench/feedwriter.py, on a pool of {ctx.settings.pg_pool_max} connections, as the "
        f"worker has), each a job at a time, stored {len(floor)} events ({floor_jobs} jobs of "
        f"{LIVE_EVENTS_PER_JOB}) at {rate:.0f}/s spread evenly, each in an INSERT of its own "
        "(committed, its `at` Postgres's `now()` as jobcast's) and then PUBLISHed on its "
        "job's channel; the bare app (bench/bare.py, one pattern subscription) sent each to "
        f"its job's websocket; {floor_whole} of {floor_jobs} sockets got every event in order. "
        "No job, no attempt's fence, no check, no token.",
        f"Pub/sub down: {len(via_notify.latencies_s)} live events at {via_notify.rate:.0f} "
        f"events/s; {via_notify.complete} of {via_notify.watchers} sockets complete. The "
        "sockets are on a second web process started with a private redis-server that is "
        "killed (SIGKILL) before the phase, so for the whole phase its pub/sub is down: it asks "
        "writers for NOTIFYs (`fallback_listeners`) and learns of each event only from them: "
        "each carries its event, so none is read from `job_events`. "
        "The worker and the first web process keep the shared Redis, so jobs are queued and "
        f"run as usual. The baseline sent {count_b} NOTIFYs at {rate_b:.0f}/s.",
        "Latency is the arrival time at the client minus the event's `at` (Postgres's clock, "
        "on the same machine); the baselines stamp each message just before sending it.",
        "p50 / p99 by the event's kind (how many): via pub/sub "
        f"{via_pubsub.by_kind_ms()}; pub/sub down, {via_notify.by_kind_ms()}.",
    ]
    if spent_pubsub is not None and spent_notify is not None:
        section.notes.append(
            "CPU a live event, every process, over each phase (its submits, sockets and jobs "
            f"included): via pub/sub {spent_pubsub.per_job_ms(len(via_pubsub.latencies_s))}; "
            f"pub/sub down, {spent_notify.per_job_ms(len(via_notify.latencies_s))}."
        )
    if at_hub:
        bounds = (0.002, 0.005, 0.01)
        at_client = {b: share_within(via_pubsub.latencies_s, b) for b in bounds}
        # past 5 ms at the client, how much of it was past 5 ms at the web process already
        late_client, late_hub = 1 - at_client[0.005], 1 - at_hub.get(0.005, 0.0)
        where = (
            "most of what is late at the client was late already as the web process handed "
            "it over: the tail is in storing and publishing the event, before the fan-out"
            if late_client > 0 and late_hub >= late_client / 2
            else "the fan-out and the sockets add most of what is late at the client"
        )
        section.notes.append(
            "Where the tail is, via pub/sub: the share of events within 2, 5 and 10 ms of "
            "their `at` when the web process hands them to its sockets (its "
            "`jobcast_event_fanout_seconds` histogram): "
            + ", ".join(f"{100 * at_hub.get(b, 0.0):.1f} %" for b in bounds)
            + "; when they reach the watching client: "
            + ", ".join(f"{100 * at_client[b]:.1f} %" for b in bounds)
            + f". So {where}."
        )
