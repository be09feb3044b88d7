"""10. One job, a crowd of watchers: the time until the last socket has an event.

One ``bench_report`` job (bench/reporter.py) is watched by ``fanout_sockets`` websockets
(10,000 in the full run) on one web process, all open before the job reports. For
each of its live events, the figure is the time from the event's ``at`` (stamped by
Postgres when it was stored) until the last of the sockets received it; the rows are
the p50 and p99 of that over the job's events. Every socket must get every event.

The baseline is the bare Starlette app (``bench/bare.py``) holding as many ``/fan``
sockets and sending each message published on its Redis channel to each socket in
turn, with messages published at the same interval and stamped just before.

Loopback, and bounded by it: the benchmark process reads every socket, so each event
is 10,000 messages the client receives on the same two cores as the server. Each
arrival is only stamped while it comes in (parsed afterwards), and both sides carry
the same client.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime

import orjson
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bench.bare import fan_channel
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
    ws_base,
)

UPDATES = {"quick": 6, "full": 40}
INTERVAL_S = 0.2


@dataclass
class Fan:
    """One socket of the crowd: each message as it came, and when."""

    socket: ClientConnection
    got: list[tuple[float, bytes | str]] = field(default_factory=list)

    async def read(self, until_count: int | None) -> None:
        try:
            async for raw in self.socket:
                self.got.append((time.time(), raw))
                if until_count is not None and len(self.got) >= until_count:
                    return
        except ConnectionClosed:
            pass


async def open_crowd(url: str, token: str | None, count: int) -> list[Fan]:
    fans: list[Fan] = []

    async def one(_i: int) -> None:
        socket = await open_socket(url, token)
        await socket.recv()  # the snapshot
        fans.append(Fan(socket))

    try:
        await hammer(one, concurrency=100, count=count)
    except BaseException:
        await close_sockets([f.socket for f in fans])
        raise
    return fans


def last_arrivals(fans: list[Fan], after_seq: int, after_at: float) -> tuple[list[float], int]:
    """Per event (by seq above ``after_seq``, ``at`` after ``after_at``): the last socket's
    arrival minus the event's ``at``. Also how many sockets got every one of them."""
    latest: dict[int, float] = {}
    stamp: dict[int, float] = {}
    seen_all = 0
    wanted: set[int] | None = None
    for fan in fans:
        seqs = set()
        for arrived, raw in fan.got:
            message = orjson.loads(raw)
            if message.get("type") != "event" or message["seq"] <= after_seq:
                continue
            at = message_at(message)
            if at <= after_at:
                continue
            seq = message["seq"]
            seqs.add(seq)
            latest[seq] = max(latest.get(seq, 0.0), arrived)
            stamp[seq] = at
        wanted = seqs if wanted is None else wanted
        seen_all += seqs == wanted
    return [latest[s] - stamp[s] for s in sorted(latest)], seen_all


def message_at(message: dict[str, object]) -> float:
    """An event's ``at``: ISO text from jobcast, epoch seconds from the baseline."""
    at = message["at"]
    return at if isinstance(at, float) else datetime.fromisoformat(str(at)).timestamp()


async def jobcast_crowd(ctx: Run, count: int, updates: int) -> tuple[list[float], int, int]:
    """Watch one reporting job with ``count`` sockets: it is made a draft (stored, not
    queued), the crowd gathers on it, and only then is it started."""
    url = ctx.web_url
    token = await new_owner(url)
    job_input = {"updates": updates, "interval_s": INTERVAL_S}
    async with http(url, token, 1) as client:
        answer = await client.post(
            "/api/jobs", json={"type": "bench_report", "input": job_input, "draft": True}
        )
        if answer.status_code != 201:
            raise BenchError(f"a draft answered {answer.status_code}: {answer.text[:200]}")
        job_id = answer.json()["id"]
        fans = await open_crowd(f"{ws_base(url)}/ws/jobs/{job_id}", token, count)
        try:
            reads = [asyncio.create_task(f.read(None)) for f in fans]
            gathered = time.time()
            answer = await client.post(f"/api/jobs/{job_id}/start")
            if answer.status_code >= 300:
                raise BenchError(f"start answered {answer.status_code}: {answer.text[:200]}")
            await asyncio.wait_for(asyncio.gather(*reads), ctx.scale.budget_s)
        finally:
            await close_sockets([f.socket for f in fans])
    latencies, seen_all = last_arrivals(fans, 0, gathered)
    if not latencies:
        raise BenchError("no event of the job was timed")
    return latencies, seen_all, len(fans)


async def bare_crowd(ctx: Run, count: int, updates: int) -> list[float]:
    url = await ctx.bare_url()
    redis = aioredis.Redis.from_url(ctx.settings.redis_dsn)
    try:
        fans = await open_crowd(f"{ws_base(url)}/fan", None, count)
        try:
            reads = [asyncio.create_task(f.read(updates)) for f in fans]
            for seq in range(1, updates + 1):
                await asyncio.sleep(INTERVAL_S)
                text = orjson.dumps({"type": "event", "seq": seq, "at": time.time()})
                await redis.publish(fan_channel(ctx.settings.redis_prefix), text)
            await asyncio.wait_for(asyncio.gather(*reads), ctx.scale.budget_s)
        finally:
            await close_sockets([f.socket for f in fans])
    finally:
        await redis.aclose()
        await ctx.done_with_bare()
    latencies, _ = last_arrivals(fans, 0, 0.0)
    return latencies


async def run(ctx: Run, section: Section) -> None:
    count = ctx.scale.fanout_sockets
    updates = UPDATES[ctx.scale.name]
    ours, seen_all, opened = await jobcast_crowd(ctx, count, updates)
    theirs = await bare_crowd(ctx, count, updates)
    what = f"bare Starlette, {count} sockets, pub/sub to each in turn"
    ms = 1000
    section.figures = [
        *(
            Figure(
                f"one event to {count} watchers of one job, until the last has it, p{q}",
                "ms",
                ms * percentile(ours, q),
                ms * percentile(theirs, q),
                what,
                False,
            )
            for q in (50, 99)
        ),
        Figure(
            "watchers that got every timed event",
            "",
            f"{seen_all} of {opened}",
            None,
            "— (a check, not a speed)",
        ),
    ]
    section.notes = [
        f"One job reporting {updates} progress updates {ms * INTERVAL_S:g} ms apart, watched "
        f"by {count} websockets on one web process (opened 100 at a time while the job is a "
        f"draft, which is started once all are open); its {len(ours)} events from the start "
        f"on are timed. The bare app got {updates} messages at the same interval over {count} "
        "`/fan` sockets.",
        "Loopback, and bounded by it: the benchmark process reads every socket, so one event "
        f"is {count} websocket messages for the client to receive on the same two cores as "
        "the web process, Postgres and Redis; both sides carry the same client.",
    ]
