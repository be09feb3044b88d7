"""Silent links: one connection of the service stops answering, without closing, mid-job.

A ``SilentProxy`` stands in front of one link at a time (the worker's Redis, the
worker's Postgres, the web process's Redis, its LISTEN connection, its pool) while
jobs run and browsers watch; the rest of the service talks to Postgres and Redis
directly. For every link: no job is lost, none completes twice, and every watcher
gets every event, in order, without a gap. Each test prints what it measured (how
long until the service noticed, what a watcher saw meanwhile): docs/reliability.md
quotes them. Thresholds are short (settings), so each test takes seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from jobcast.endpoints import Endpoints
from jobcast.settings import ROOT
from tests.chaos import chaos_env
from tests.conftest import DatabaseFactory
from tests.silent import SilentProxy
from tests.support import Stack, eventually, launch, submit

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


MakeRig = Callable[..., Awaitable[Rig]]


def start_worker(stack: Stack, name: str, **env: str) -> None:
    with open(stack.log_dir / f"{name}.log", "ab") as log:
        stack.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "workers"],
            env={**stack.env, **env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
async def make_rig(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MakeRig]:
    """A web process and one worker, with a silent proxy in front of ``link`` only."""
    made: list[Rig] = []

    async def make(link: str, **env: str) -> Rig:
        database = await new_database()
        on_postgres = link in ("worker-postgres", "web-postgres", "web-listen")
        proxy = await SilentProxy(
            database if on_postgres else endpoints.redis_url, max_silence_s=60
        ).start()
        web_db = proxy.url if link == "web-postgres" else database
        web_redis = proxy.url if link == "web-redis" else endpoints.redis_url
        if link == "web-listen":
            env["JOBCAST_LISTEN_DATABASE_URL"] = proxy.url
        stack = await launch(
            web_db,
            web_redis,
            tmp_path_factory.mktemp("silent"),
            workers=0,
            **chaos_env(**{**LINK_ENV, **env}),
        )
        rig = Rig(stack, proxy, database)
        made.append(rig)
        start_worker(
            stack,
            "worker-0",
            DATABASE_URL=proxy.url if link == "worker-postgres" else database,
            REDIS_URL=proxy.url if link == "worker-redis" else endpoints.redis_url,
        )
        token = await stack.owner()
        async with stack.client(token) as client:
            await wait_status(client, await submit(client, "noop"), "completed")
        return rig

    yield make
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


# the worker's Redis


async def test_worker_redis_silent_mid_job_holds_no_job_back_and_watchers_get_each_event_in_2_s(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig("worker-redis")
    stack, duration_s = rig.stack, 5.0
    token = await stack.owner()
    async with stack.client(token) as client:
        # the same three jobs with the link flowing: the run time to hold to
        baseline_ids = [await submit(client, "demo", duration=duration_s) for _ in range(3)]
        baseline = [await wait_status(client, j, "completed") for j in baseline_ids]
        baseline_s = max(run_time_s(j) for j in baseline)

        ids, watchers, tasks = await watch_jobs(stack, client, token, 3, duration_s)
        rig.proxy.silence()
        silenced = time.time()
        open_line = 'jobcast_redis_circuit_open{client="worker"}'

        async def circuit_open() -> bool:
            return await metric(client, open_line) == 1.0

        await eventually(circuit_open, timeout_s=5, what="the worker's circuit open in /metrics")
        noticed_s = time.time() - silenced
        await asyncio.wait_for(asyncio.gather(*tasks), 40)
        jobs = [await job_of(client, j) for j in ids]
        events = {j: await stored_events(client, j) for j in ids}
        rig.proxy.resume()

        async def circuit_closed() -> bool:
            return await metric(client, open_line) == 0.0

        await eventually(circuit_closed, timeout_s=10, what="the worker's circuit closed again")
        # and the worker takes jobs from Redis again
        await wait_status(client, await submit(client, "noop"), "completed", timeout_s=15)

    assert_done_once(jobs, events)
    for job in jobs:
        assert job["attempts"] == 1, job
        assert run_time_s(job) <= 1.10 * baseline_s, (run_time_s(job), baseline_s)
    late = [s for w in watchers for s in w.lateness_s(silenced)]
    for watcher in watchers:
        watcher.assert_gap_free_and_final()
        assert [e["seq"] for e in watcher.events] == [e["seq"] for e in events[watcher.job_id]]
    assert late and max(late) <= 2.0, sorted(late)[-5:]
    report(
        "worker redis",
        noticed_s=noticed_s,
        baseline_run_s=baseline_s,
        worst_run_s=max(run_time_s(j) for j in jobs),
        events_after_silence=len(late),
        worst_event_lateness_s=max(late),
        longest_watcher_wait_s=max(w.longest_wait_s(silenced, silenced + 3) for w in watchers),
    )


async def readyz(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/readyz", timeout=10)
    return response.json()  # type: ignore[no-any-return]


# the web process's Redis: its pub/sub connection and its commands


async def test_web_redis_silent_watchers_go_on_over_notify_and_submits_are_accepted(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig("web-redis")
    stack = rig.stack
    token = await stack.owner()
    async with stack.client(token) as client:
        ids, watchers, tasks = await watch_jobs(stack, client, token, 3, 6.0)
        rig.proxy.silence()
        silenced = time.time()

        async def pubsub_down() -> bool:
            return (await readyz(client))["checks"]["pubsub"] == "down"

        await eventually(pubsub_down, timeout_s=10, what="/readyz: pubsub down")
        pubsub_noticed_s = time.time() - silenced
        started = time.monotonic()
        late_id = await submit(client, "demo", duration=1)  # Redis cannot queue it now
        submit_s = time.monotonic() - started
        checks = (await readyz(client))["checks"]
        await asyncio.wait_for(asyncio.gather(*tasks), 40)
        late_job = await wait_status(client, late_id, "completed", timeout_s=20)
        jobs = [await job_of(client, j) for j in ids]
        events = {j: await stored_events(client, j) for j in [*ids, late_id]}
        rig.proxy.resume()
        resumed = time.time()

        async def ready_again() -> bool:
            body = await readyz(client)
            return body["status"] == "ready" and body["checks"]["pubsub"] == "ok"

        await eventually(ready_again, timeout_s=15, what="/readyz ready again")
        back_s = time.time() - resumed

    assert checks["redis"].startswith("down") and checks["redis_circuit"].startswith("open")
    assert submit_s < 3, submit_s  # one Redis timeout at most, then the circuit answers
    assert_done_once([*jobs, late_job], events)
    for watcher in watchers:
        watcher.assert_gap_free_and_final()
    late = [s for w in watchers for s in w.lateness_s(silenced)]
    longest = max(w.longest_wait_s(silenced, silenced + 4) for w in watchers)
    report(
        "web redis",
        pubsub_noticed_s=pubsub_noticed_s,
        submit_s=submit_s,
        longest_watcher_wait_s=longest,
        worst_event_lateness_s=max(late),
        ready_after_resume_s=back_s,
    )


# the worker's Postgres


async def test_worker_postgres_silent_its_jobs_are_taken_over_and_complete_once(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig("worker-postgres")
    stack = rig.stack
    token = await stack.owner()
    # a second worker, on a healthy link, to take the jobs over: started now (a process
    # takes seconds to start), and stopped while the jobs go to the first one
    start_worker(stack, "worker-1", DATABASE_URL=rig.database_url, REDIS_URL=stack.redis_url)

    async def second_ready() -> bool:
        return "worker ready" in stack.logs("worker-1")

    await eventually(second_ready, timeout_s=30, what="the second worker ready")
    stack.procs["worker-1"].send_signal(signal.SIGSTOP)
    async with stack.client(token) as client:
        ids, watchers, tasks = await watch_jobs(stack, client, token, 3, 8.0)
        stack.procs["worker-1"].send_signal(signal.SIGCONT)
        assert await all_running(client, ids, 0)
        rig.proxy.silence()
        silenced = time.time()

        async def reaped() -> bool:
            jobs = [await job_of(client, j) for j in ids]
            return any(j["status"] == "pending" or j["attempts"] >= 2 for j in jobs)

        await eventually(reaped, timeout_s=20, what="a job found without its worker")
        noticed_s = time.time() - silenced

        async def retried() -> bool:
            jobs = [await job_of(client, j) for j in ids]
            return all(j["attempts"] >= 2 for j in jobs)

        await eventually(retried, timeout_s=40, what="the jobs taken over")
        taken_over_s = time.time() - silenced
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        done_s = time.time() - silenced
        rig.proxy.resume()
        # the silent worker's held writes arrive now: fenced off, they change nothing
        before = {j: await stored_events(client, j) for j in ids}
        await wait_status(client, await submit(client, "noop"), "completed")
        await asyncio.sleep(1.0)  # its retried writes have had their chance
        events = {j: await stored_events(client, j) for j in ids}
        jobs = [await job_of(client, j) for j in ids]

    assert events == before
    assert_done_once(jobs, events)
    for watcher in watchers:
        watcher.assert_gap_free_and_final()
        assert [e["seq"] for e in watcher.events] == [e["seq"] for e in events[watcher.job_id]]
    report(
        "worker postgres",
        noticed_s=noticed_s,
        taken_over_s=taken_over_s,
        completed_s=done_s,
        longest_watcher_wait_s=max(
            w.longest_wait_s(silenced, silenced + taken_over_s) for w in watchers
        ),
    )


# the web process's Postgres: its LISTEN connection alone, then its pool (and LISTEN)


async def test_web_listen_silent_is_noticed_and_opened_again_while_watchers_miss_nothing(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig("web-listen")
    stack = rig.stack
    token = await stack.owner()
    async with stack.client(token) as client:
        ids, watchers, tasks = await watch_jobs(stack, client, token, 3, 6.0)
        assert (await readyz(client))["checks"]["listen"] == "ok"
        rig.proxy.silence()
        silenced = time.time()

        async def listen_down() -> bool:
            return (await readyz(client))["checks"]["listen"] == "down"

        await eventually(listen_down, timeout_s=10, what="/readyz: listen down")
        noticed_s = time.time() - silenced
        rig.proxy.resume()
        resumed = time.time()

        async def listen_up() -> bool:
            return (await readyz(client))["checks"]["listen"] == "ok"

        await eventually(listen_up, timeout_s=15, what="/readyz: listen ok again")
        back_s = time.time() - resumed
        await asyncio.wait_for(asyncio.gather(*tasks), 40)
        jobs = [await job_of(client, j) for j in ids]
        events = {j: await stored_events(client, j) for j in ids}

    assert_done_once(jobs, events)
    for watcher in watchers:
        watcher.assert_gap_free_and_final()
    late = [s for w in watchers for s in w.lateness_s(silenced)]
    assert max(late) < 1.0, max(late)  # pub/sub carried every event meanwhile
    report(
        "web listen",
        noticed_s=noticed_s,
        reopened_after_resume_s=back_s,
        worst_event_lateness_s=max(late),
    )


async def test_web_postgres_silent_answers_503_in_bounded_time_and_recovers(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig("web-postgres")
    stack = rig.stack
    token = await stack.owner()
    async with stack.client(token) as client:
        ids, watchers, tasks = await watch_jobs(stack, client, token, 3, 8.0)
        rig.proxy.silence()
        silenced = time.time()

        async def postgres_down() -> dict[str, Any] | None:
            body = await readyz(client)
            return body if body["checks"]["postgres"] != "ok" else None

        await eventually(postgres_down, timeout_s=10, what="/readyz: postgres down")
        noticed_s = time.time() - silenced
        started = time.monotonic()
        answer = await client.get(f"/api/jobs/{ids[0]}", timeout=15)
        answer_s = time.monotonic() - started
        await asyncio.sleep(2)  # the jobs run on meanwhile
        rig.proxy.resume()
        resumed = time.time()

        async def ready() -> bool:
            return (await readyz(client))["status"] == "ready"

        await eventually(ready, timeout_s=15, what="/readyz ready again")
        back_s = time.time() - resumed
        await asyncio.wait_for(asyncio.gather(*tasks), 40)
        jobs = [await job_of(client, j) for j in ids]
        events = {j: await stored_events(client, j) for j in ids}

    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "storage_unavailable"
    # each statement the request makes (two here) waits out its own
    # JOBCAST_PG_COMMAND_TIMEOUT_S (2 s here): bounded, not forever
    assert answer_s < 2 * 2 + 1.5, answer_s
    assert_done_once(jobs, events)
    for watcher in watchers:
        watcher.assert_gap_free_and_final()
    report(
        "web postgres",
        noticed_s=noticed_s,
        answer_503_s=answer_s,
        ready_after_resume_s=back_s,
        longest_watcher_wait_s=max(w.longest_wait_s(silenced, resumed + back_s) for w in watchers),
    )
