"""What the silent-link tests share: a stack with a silent proxy in front of one link,
a watcher that notes when each event reached it, and the checks every link must pass.

The web process and one worker talk to Postgres and Redis directly, except over the
one link the proxy stands in front of (``Rig.make``). Thresholds are short (settings),
so a silent link is noticed in about a second and each test takes seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.chaos import chaos_env
from tests.silent import SilentProxy
from tests.support import READY_S, Stack, eventually, launch, submit

# short deadlines, so that a silent link is noticed in about a second
LINK_ENV = {
    "JOBCAST_REDIS_TIMEOUT_S": "1",
    "JOBCAST_REDIS_PUBLISH_TIMEOUT_S": "0.5",
    "JOBCAST_REDIS_PROBE_INTERVAL_S": "0.5",
    "JOBCAST_PG_CONNECT_TIMEOUT_S": "1",
    "JOBCAST_PG_COMMAND_TIMEOUT_S": "2",
    "JOBCAST_LISTEN_PING_TIMEOUT_S": "1",
    "JOBCAST_STALE_AFTER_S": "3",
}
FINAL = ("completed", "failed", "cancelled")


@dataclass
class Rig:
    stack: Stack
    proxy: SilentProxy
    database_url: str  # direct, not through the proxy


MakeRig = Callable[..., Awaitable[Rig]]  # make_rig(link, **env), the fixture in conftest


def start_worker(stack: Stack, name: str, **env: str) -> None:
    stack.start(name, **env)


async def second_worker(rig: Rig) -> None:
    """Start ``worker-1`` beside the rig's, on healthy links, and wait until it is ready."""
    stack = rig.stack
    start_worker(stack, "worker-1", DATABASE_URL=rig.database_url, REDIS_URL=stack.redis_url)

    async def ready() -> bool:
        return "worker ready" in stack.logs("worker-1")

    await eventually(ready, timeout_s=READY_S, what="the second worker ready")


@asynccontextmanager
async def rigs(
    redis_url: str,
    new_database: Callable[[], Awaitable[str]],
    log_dirs: Callable[[], Path],
) -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    """Yields ``make(link, **env)``: a web process and one worker, with a silent proxy in
    front of ``link`` only (worker-redis, worker-postgres, web-redis, web-postgres, web-listen);
    everything made is stopped at the end."""
    made: list[Rig] = []

    async def make(link: str, **env: str) -> Rig:
        database = await new_database()
        on_postgres = link in ("worker-postgres", "web-postgres", "web-listen")
        proxy = await SilentProxy(database if on_postgres else redis_url, max_silence_s=60).start()
        web_db = proxy.url if link == "web-postgres" else database
        web_redis = proxy.url if link == "web-redis" else redis_url
        if link == "web-listen":
            env["JOBCAST_LISTEN_DATABASE_URL"] = proxy.url
        log_dir = log_dirs()
        stack = await launch(
            web_db, web_redis, log_dir, workers=0, **chaos_env(**{**LINK_ENV, **env})
        )
        rig = Rig(stack, proxy, database)
        made.append(rig)
        start_worker(
            stack,
            "worker-0",
            DATABASE_URL=proxy.url if link == "worker-postgres" else database,
            REDIS_URL=proxy.url if link == "worker-redis" else redis_url,
        )
        token = await stack.owner()
        async with stack.client(token) as client:
            await wait_status(client, await submit(client, "noop"), "completed")
        return rig

    try:
        yield make
    finally:
        for rig in made:
            rig.proxy.resume()
            rig.stack.close()
            await rig.proxy.close()


@dataclass
class TimedWatcher:
    """A browser-like watcher that notes when each event reached it; it reconnects with
    after=<last seq> until the job ends."""

    stack: Stack
    token: str
    job_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    received: list[float] = field(default_factory=list)  # wall clock, as the event's `at`
    connected_at: float = 0.0

    async def run(self, timeout_s: float = 60) -> None:
        async with asyncio.timeout(timeout_s):
            while True:
                last = self.events[-1]["seq"] if self.events else 0
                url = f"{self.stack.ws_base}/ws/jobs/{self.job_id}?after={last}"
                headers = {"Authorization": f"Bearer {self.token}"}
                try:
                    async with connect(url, additional_headers=headers, open_timeout=3) as ws:
                        self.connected_at = self.connected_at or time.time()
                        try:
                            async for raw in ws:
                                message = orjson.loads(raw)
                                if message["type"] == "event":
                                    self.events.append(message)
                                    self.received.append(time.time())
                        except ConnectionClosed:
                            pass
                        if ws.close_code == 1000:
                            return
                except (OSError, InvalidStatus, TimeoutError):
                    pass
                await asyncio.sleep(0.2)

    def assert_gap_free_and_final(self) -> None:
        seqs = [e["seq"] for e in self.events]
        assert seqs == list(range(1, len(seqs) + 1)), f"gap or duplicate in {seqs}"
        finals = [e for e in self.events if e["kind"] == "status" and e["status"] in FINAL]
        assert [e["status"] for e in finals] == ["completed"], finals

    def lateness_s(self, since: float) -> list[float]:
        """How long each event written after ``since`` took to reach this watcher."""
        late = []
        for event, received in zip(self.events, self.received, strict=True):
            written = datetime.fromisoformat(event["at"]).timestamp()
            if written >= since:
                late.append(received - written)
        return late

    def longest_wait_s(self, start: float, end: float) -> float:
        """The longest this watcher went without an event between two moments."""
        times = [start, *(t for t in self.received if start < t < end), end]
        return max(b - a for a, b in itertools.pairwise(times))


async def job_of(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def wait_status(
    client: httpx.AsyncClient, job_id: str, *statuses: str, timeout_s: float = 30
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        job = await job_of(client, job_id)
        return job if job["status"] in statuses else None

    return await eventually(check, timeout_s=timeout_s, what=f"job {job_id} {statuses}")


async def all_running(client: httpx.AsyncClient, ids: list[str], progress: float) -> bool:
    jobs = [await job_of(client, job_id) for job_id in ids]
    return all(j["status"] == "running" and j["progress"] >= progress for j in jobs)


def run_time_s(job: dict[str, Any]) -> float:
    started = datetime.fromisoformat(job["started_at"])
    return (datetime.fromisoformat(job["finished_at"]) - started).total_seconds()


def assert_done_once(jobs: list[dict[str, Any]], events: dict[str, list[dict[str, Any]]]) -> None:
    for job in jobs:
        assert job["status"] == "completed", job
        finals = [e for e in events[job["id"]] if e["kind"] == "status" and e["status"] in FINAL]
        assert len(finals) == 1, finals


async def stored_events(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    return (await client.get(f"/api/jobs/{job_id}/events")).json()["events"]  # type: ignore[no-any-return]


def report(link: str, **figures: float | str) -> None:
    shown = ", ".join(
        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
    )
    print(f"\nsilent {link}: {shown}")


async def watch_jobs(
    stack: Stack, client: httpx.AsyncClient, token: str, count: int, duration_s: float
) -> tuple[list[str], list[TimedWatcher], list[asyncio.Task[None]]]:
    ids = [await submit(client, "demo", duration=duration_s) for _ in range(count)]
    watchers = [TimedWatcher(stack, token, job_id) for job_id in ids]
    tasks = [asyncio.create_task(w.run(90)) for w in watchers]
    await eventually(lambda: all_running(client, ids, 10), timeout_s=20, what="jobs under way")
    return ids, watchers, tasks


async def metric(client: httpx.AsyncClient, line_start: str) -> float | None:
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


async def readyz(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/readyz", timeout=10)
    return response.json()  # type: ignore[no-any-return]
