"""The nginx configuration of docs/deploy.md, run by a real nginx in front of two web
processes and two workers: watchers through it get every event, whichever web process
they land on, and keep every event when the web processes restart one at a time.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from jobcast.endpoints import Endpoints
from tests.chaos import Watcher, chaos_env
from tests.conftest import DatabaseFactory
from tests.nginx import Nginx, location_lines, nginx_blocks
from tests.support import Stack, eventually, launch, submit

pytestmark = pytest.mark.topology

ADMIN = "admin-" + "n" * 40


@dataclass
class Fronted:
    stack: Stack  # the first web process and the workers
    second: Stack  # the second web process
    nginx: Nginx
    via: Stack  # URLs through nginx, under /jobcast

    async def restart(self, name: str) -> None:
        """SIGTERM one web process, as systemd does, and start it again."""
        self.stack.stop(name)
        owner = self.stack if name == "web" else self.second
        owner.start(name)
        self.stack.procs[name] = owner.procs[name]
        await owner.wait_ready()

    async def restart_worker(self, name: str) -> None:
        """SIGTERM one worker (it hands its running jobs back) and start it again; back
        when the new process beats."""
        self.stack.stop(name)
        self.stack.start(name)
        key = f"{self.stack.env['JOBCAST_REDIS_PREFIX']}:worker:{socket.gethostname()}:"
        key += str(self.stack.procs[name].pid)
        client = aioredis.Redis.from_url(self.stack.redis_url)
        try:
            await eventually(lambda: client.exists(key), timeout_s=30, what=f"{name} beating")
        finally:
            await client.aclose()


@pytest.fixture(scope="module")
async def fronted(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Fronted]:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("nginx"),
        workers=2,
        # the rolling restart: 500 sockets of one owner, and one worker able to run every job
        **chaos_env(JOBCAST_MAX_SOCKETS_PER_OWNER="1000", JOBCAST_WORKER_CONCURRENCY="100"),
        JOBCAST_ADMIN_TOKEN=ADMIN,
        JOBCAST_PG_POOL_MAX="5",  # four processes on a Postgres the suite shares
    )
    nginx: Nginx | None = None
    try:
        second = await stack.add_web()
        ports = [urlsplit(s.base_url).port or 80 for s in (stack, second)]
        nginx = Nginx(ports)
        nginx.start()
        via = Stack(
            base_url=f"{nginx.url}/jobcast",
            database_url=stack.database_url,
            redis_url=stack.redis_url,
            env=stack.env,
            log_dir=stack.log_dir,
        )
        await via.wait_ready()
        yield Fronted(stack, second, nginx, via)
    finally:
        if nginx is not None:
            nginx.stop()
        stack.close()


def test_both_pages_give_the_same_location_with_the_port_in_host() -> None:
    deploy = next(b for b in nginx_blocks("deploy.md") if "upstream jobcast" in b)
    embedding = next(b for b in nginx_blocks("embedding.md") if "location /jobcast/" in b)
    for block in (deploy, embedding):
        lines = location_lines(block)
        assert "proxy_set_header Host $http_host;" in lines  # $host drops the port
        assert "proxy_set_header Upgrade $http_upgrade;" in lines
        assert 'proxy_set_header Connection "upgrade";' in lines
    shared = set(location_lines(embedding)) - set(location_lines(deploy))
    assert not shared, f"embedding.md's location has what deploy.md's lacks: {shared}"


async def test_watchers_through_nginx_get_every_event_on_either_web_process(
    fronted: Fronted,
) -> None:
    token = await fronted.via.owner()
    async with fronted.via.client(token) as client:
        ids = [await submit(client, "demo", duration=1) for _ in range(4)]
    # round robin: the watchers land on both web processes
    watchers = [Watcher(fronted.via, token, job_id) for job_id in ids for _ in range(2)]
    await asyncio.gather(*(w.run(timeout_s=60) for w in watchers))
    for watcher in watchers:
        watcher.assert_gap_free()
        assert watcher.final_statuses == ["completed"]

    # every socket went through nginx, upgraded (101); nginx writes an upgraded connection's
    # line only when the connection ends, a moment after the watcher closes it
    async def upgraded() -> list[str]:
        lines = fronted.nginx.log().splitlines()
        sockets = [line for line in lines if "/jobcast/ws/jobs/" in line]
        return sockets if len(sockets) >= len(watchers) else []

    lines = await eventually(upgraded, what="every websocket's line in nginx's log")
    assert all('" 101 ' in line for line in lines)


@pytest.mark.timeout(300)
async def test_web_processes_restarted_one_at_a_time_leave_no_gap(fronted: Fronted) -> None:
    token = await fronted.via.owner()
    async with fronted.via.client(token) as client:
        # long enough to run through two restarts on a busy machine (each took 1.3-1.5 s
        # on an idle one, and must see two events before it)
        job_id = await submit(client, "demo", duration=30)
        watcher = Watcher(fronted.via, token, job_id)
        watching = asyncio.create_task(watcher.run(timeout_s=240))
        for name in ("web", "web-2"):
            seen = len(watcher.events)

            async def more(seen: int = seen) -> bool:
                return len(watcher.events) >= seen + 2

            await eventually(more, timeout_s=20, what="events before a restart")
            await fronted.restart(name)
        await watching
        stored = (await client.get(f"/api/jobs/{job_id}/events")).json()["events"]
    watcher.assert_gap_free()
    assert watcher.events == stored
    assert watcher.final_statuses == ["completed"]
    assert 1001 in watcher.closes  # its web process went away, and it came back through nginx


# the rolling restart: 100 running jobs, each watched by 5 sockets through nginx
JOBS = 100
WATCHERS_PER_JOB = 5
# longer than the four restarts, so the jobs run through all of them: together they took
# 5.5 s on an idle machine (the test prints each restart's time)
JOB_S = 40
WAVE = 50
RETRYABLE = (502, 503, 504)


@dataclass
class Submits:
    """Submits through nginx, each retried with its idempotency key as docs/deploy.md says."""

    ids: list[str] = field(default_factory=list)
    failed_tries: list[tuple[float, str]] = field(default_factory=list)  # (when, why)

    async def keep_going(self, via: Stack, token: str, stop: asyncio.Event) -> None:
        async with via.client(token) as client:
            n = 0
            while not stop.is_set():
                n += 1
                self.ids.append(await self._one(client, f"rolling-{n}"))
                await asyncio.sleep(0.05)

    async def _one(self, client: httpx.AsyncClient, key: str) -> str:
        for _ in range(50):
            try:
                response = await client.post(
                    "/api/jobs", json={"type": "noop", "idempotency_key": key}
                )
                if response.status_code in (200, 202):
                    job_id: str = response.json()["id"]
                    return job_id
                assert response.status_code in RETRYABLE, response.text
                why = str(response.status_code)
            except httpx.TransportError as exc:
                why = type(exc).__name__
            self.failed_tries.append((time.monotonic(), why))
            await asyncio.sleep(0.2)
        raise AssertionError(f"submit {key} failed 50 times: {self.failed_tries[-3:]}")


async def _running(conn: asyncpg.Connection, ids: list[str]) -> int:
    found: int = await conn.fetchval(
        "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[]) AND status = 'running'", ids
    )
    return found


@pytest.mark.timeout(900)
async def test_a_rolling_restart_under_500_watchers_loses_nothing(fronted: Fronted) -> None:
    # one connection for the whole test: the suite's Postgres is shared and may be full
    conn = await asyncpg.connect(fronted.stack.database_url)
    try:
        await _roll(fronted, conn)
    finally:
        await conn.close()


async def _roll(fronted: Fronted, conn: asyncpg.Connection) -> None:
    token = await fronted.via.owner()
    # the jobs wait (their type paused) until every socket is open, then run at once
    async with fronted.via.client(ADMIN) as admin:
        assert (await admin.post("/api/admin/types/demo/pause")).status_code == 202
    async with fronted.via.client(token) as client:
        jobs = [await submit(client, "demo", duration=JOB_S) for _ in range(JOBS)]
    watchers = [
        Watcher(fronted.via, token, j, open_timeout_s=30)
        for j in jobs
        for _ in range(WATCHERS_PER_JOB)
    ]
    watching: list[asyncio.Task[None]] = []
    for start in range(0, len(watchers), WAVE):  # in waves: a busy machine opens them slowly
        wave = watchers[start : start + WAVE]
        watching += [asyncio.create_task(w.run(timeout_s=600)) for w in wave]

        async def open_(wave: list[Watcher] = wave) -> bool:
            return all(w.snapshots for w in wave)

        await eventually(open_, timeout_s=60, what=f"sockets {start} to {start + WAVE} open")
    async with fronted.via.client(ADMIN) as admin:
        assert (await admin.post("/api/admin/types/demo/resume")).status_code == 202

    async def all_running() -> bool:
        return await _running(conn, jobs) == JOBS

    await eventually(all_running, timeout_s=60, what="the 100 jobs running")
    submits = Submits()
    stop = asyncio.Event()
    submitting = asyncio.create_task(submits.keep_going(fronted.via, token, stop))
    began = time.monotonic()
    running_at: dict[str, int] = {}
    took_s: dict[str, float] = {}
    for name in ("web", "web-2", "worker-0", "worker-1"):
        running_at[name] = await _running(conn, jobs)
        started = time.monotonic()
        if name.startswith("web"):
            await fronted.restart(name)
        else:
            await fronted.restart_worker(name)
        took_s[name] = round(time.monotonic() - started, 1)
    restarts_s = time.monotonic() - began
    stop.set()
    await submitting
    await asyncio.gather(*watching)
    finished_s = time.monotonic() - began
    # the restarts came while the jobs ran, so the watchers had something to lose
    assert running_at["worker-1"] > 0, (running_at, took_s)

    rows = await conn.fetch(
        "SELECT j.id::text, j.status, j.seq, j.attempts,"
        " (SELECT count(*) FROM job_claims c WHERE c.job_id = j.id) AS claims"
        " FROM jobs j WHERE j.id = ANY($1::uuid[])",
        jobs,
    )
    quick_done = await eventually(
        lambda: conn.fetchval(
            "SELECT count(*) = $2 FROM jobs WHERE id = ANY($1::uuid[]) AND status = 'completed'",
            submits.ids,
            len(set(submits.ids)),
        ),
        timeout_s=60,
        what="every submitted noop completed",
    )
    quick = await conn.fetchrow(
        "SELECT count(*) AS n, count(DISTINCT idempotency_key) AS keys"
        " FROM jobs WHERE id = ANY($1::uuid[])",
        submits.ids,
    )
    by_id = {r["id"]: r for r in rows}
    # every job completed, and none ran an attempt more than a hand-back allows: a SIGTERM
    # hands a job back without counting the attempt, so each finished on attempt 1
    assert {r["status"] for r in rows} == {"completed"}
    assert {r["attempts"] for r in rows} == {1}, [r for r in rows if r["attempts"] != 1]
    handed_back = sum(r["claims"] - 1 for r in rows)
    for watcher in watchers:
        watcher.assert_gap_free()
        assert watcher.final_statuses == ["completed"], watcher.job_id
        assert watcher.last_seq == by_id[watcher.job_id]["seq"], watcher.job_id
    # submits: each key made one job, and all of them ran
    assert quick_done and quick["n"] == quick["keys"] == len(set(submits.ids))
    reconnects = sum(1 for w in watchers for code in w.closes if code != 1000)
    window = submits.failed_tries[-1][0] - submits.failed_tries[0][0] if submits.failed_tries else 0
    print(
        f"\nrolling restart (2 web processes behind nginx, 2 workers, SIGTERM one at a time):"
        f" {len(watchers)} sockets on {JOBS} jobs; restarts took {restarts_s:.1f} s, all jobs"
        f" done {finished_s:.1f} s after the first; {len(submits.ids)} submits,"
        f" {len(submits.failed_tries)} failed tries (retried with the same key; over"
        f" {window:.1f} s: {sorted({why for _, why in submits.failed_tries})}), 0 lost;"
        f" each restart took {took_s} s;"
        f" {reconnects} reconnects, 0 gaps; {handed_back} hand-backs, every job on attempt 1"
    )
