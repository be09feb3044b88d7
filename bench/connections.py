"""4. Connections: websockets one web process holds on idle jobs, and what each costs.

N jobs are submitted to run an hour from now (pending and idle: no event will
come), and one ``WS /ws/jobs/{id}`` is opened on each, 100 handshakes at a
time. Measured: how many the process holds, new connections per second (until
each socket's snapshot arrived), and the process's RSS before and after, per
socket. The baseline is the bare Starlette app (``bench/bare.py``) on the same
uvicorn options, whose socket only accepts, sends one message and waits.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

from bench.cpu import Spent
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
    raise_file_limit,
    submit,
    ws_base,
)

HANDSHAKES_AT_ONCE = 100
IDLE_DELAY_S = 3600
_SETTLE_S = 1.0
# files the client needs besides its sockets (Postgres, Redis, logs, ...)
_SPARE_FILES = 200


@dataclass(frozen=True)
class Held:
    sockets: int  # open at the end
    connect_rate: float
    rss_before: int
    rss_after: int
    cpu: Spent | None  # what every process spent on the handshakes

    def cpu_each(self) -> str:
        return self.cpu.per_job_ms(self.sockets) if self.cpu is not None and self.sockets else "-"

    @property
    def kib_per_socket(self) -> float:
        return (self.rss_after - self.rss_before) / 1024 / self.sockets if self.sockets else 0.0


async def hold(
    ctx: Run, process: str, urls: list[str], token: str | None, settle_s: float = _SETTLE_S
) -> Held:
    """Open one socket per URL on ``process``, measure, then close them all (the memory
    ``settle_s`` after the last handshake: 0 where only the handshakes' rate is wanted)."""
    sockets: list[ClientConnection] = []
    rss_before = ctx.cluster.rss(process)

    async def connect(i: int) -> None:
        socket = await open_socket(urls[i], token)
        await socket.recv()  # the snapshot: the server has done its part
        sockets.append(socket)

    try:
        with ctx.metered() as cpu:
            load = await hammer(connect, concurrency=HANDSHAKES_AT_ONCE, count=len(urls))
        await asyncio.sleep(settle_s)
        rss_after = ctx.cluster.rss(process)
        open_now = sum(s.state is State.OPEN for s in sockets)
    finally:
        await close_sockets(sockets)
    return Held(open_now, load.rate, rss_before, rss_after, cpu)


async def idle_jobs(ctx: Run, token: str, count: int) -> list[str]:
    job_ids: list[str] = []
    async with http(ctx.web_url, token, 50) as client:

        async def one(_i: int) -> None:
            job_ids.append(await submit(client, "noop", {}, delay_seconds=IDLE_DELAY_S))

        await hammer(one, concurrency=50, count=count)
    return job_ids


async def run(ctx: Run, section: Section) -> None:
    limit = raise_file_limit()
    wanted = ctx.scale.sockets
    count = min(wanted, limit - _SPARE_FILES)
    if count < 1:
        raise BenchError(f"the open-file limit ({limit}) leaves no room for sockets")
    token = await new_owner(ctx.web_url)
    job_ids = await idle_jobs(ctx, token, count)
    base = ws_base(ctx.web_url)
    ours = await hold(ctx, "web", [f"{base}/ws/jobs/{j}" for j in job_ids], token)

    bare_url = await ctx.bare_url()
    try:
        raw = await hold(ctx, "bare", [f"{ws_base(bare_url)}/ws"] * count, None)
        reading = await hold(  # its rate alone: no memory figure, no settling
            ctx, "bare", [f"{ws_base(bare_url)}/ws/jobs/{j}" for j in job_ids], None, 0.0
        )
    finally:
        await ctx.done_with_bare()

    what = "bare Starlette websocket"
    section.figures = [
        Figure("websockets held by one web process", "sockets", ours.sockets, raw.sockets, what),
        Figure(
            "memory per websocket (RSS)",
            "KiB",
            ours.kib_per_socket,
            raw.kib_per_socket,
            what,
            False,
        ),
        Figure("new websockets per second", "conn/s", ours.connect_rate, raw.connect_rate, what),
        Figure(
            "new websockets per second, bare socket reading the job's row",
            "conn/s",
            reading.connect_rate,
            raw.connect_rate,
            what,
        ),
        Figure(
            "new websockets per second",
            "conn/s",
            ours.connect_rate,
            reading.connect_rate,
            "bare socket reading the job's row",
        ),
    ]
    section.notes = [
        f"{count} sockets, one per idle job (pending, due in {IDLE_DELAY_S} s)"
        + (
            f", fewer than the {wanted} aimed at because of the open-file limit of {limit}"
            if count < wanted
            else ""
        )
        + f"; {HANDSHAKES_AT_ONCE} handshakes in flight at a time. The open-file limit of the "
        f"benchmark and of the processes it starts is raised to the hard limit ({limit}).",
        f"RSS of the web process before and after: {ours.rss_before / 2**20:.1f} MiB to "
        f"{ours.rss_after / 2**20:.1f} MiB (bare app: {raw.rss_before / 2**20:.1f} MiB to "
        f"{raw.rss_after / 2**20:.1f} MiB), {_SETTLE_S:g} s after the last handshake.",
        "A jobcast socket's handshake checks the token, subscribes its channel on the "
        "process's one Redis pub/sub connection (the handshakes that come together in one "
        "SUBSCRIBE), then reads the job with its stored events in one statement and sends "
        "both; the bare socket sends one fixed message, and the bare socket reading the job's "
        "row reads it from jobcast's table (one asyncpg fetch) and sends it: the least any "
        "socket that starts from the job's stored state does.",
        f"CPU a handshake, every process (client included): jobcast {ours.cpu_each()}; bare "
        f"socket reading the row {reading.cpu_each()}; bare socket {raw.cpu_each()}.",
    ]
