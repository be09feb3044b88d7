"""Helpers the tests share: databases cloned from a template, and the real processes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from jobcast.endpoints import free_port
from jobcast.settings import ROOT
from tests import forks

T = TypeVar("T")
# a process of a stack: a forked one (tests/forks.py) or one a test started itself
Process = forks.Forked | subprocess.Popen[bytes]
ARTIFACTS = ROOT / "test-artifacts"
PORT_TAKEN = "address already in use"  # what a web process says when its port is taken
# a process starts in about a second on an idle machine, in tens of seconds on a loaded one
READY_S = 90.0


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout_s: float = 15.0,
    interval_s: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll ``check`` until it returns something truthy, or fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"{what} not reached within {timeout_s} s (last: {last!r})")


async def called_together(
    call: Callable[[Any], Awaitable[Any]], first: Any, rest: Sequence[Any]
) -> tuple[Any, list[Any]]:
    """A gatherer's call of ``first`` on its way alone (jobcast/gathering.py), and the
    calls of ``rest`` made while it runs; their answers, exceptions as answers."""
    alone = asyncio.create_task(call(first))
    await asyncio.sleep(0)  # its statement is on its way: the next ones wait for it
    together = await asyncio.gather(*(call(item) for item in rest), return_exceptions=True)
    return await alone, together


@dataclass
class Stack:
    """A real web process and worker process on their own database and Redis prefix."""

    base_url: str
    database_url: str
    redis_url: str
    env: dict[str, str]
    log_dir: Path
    procs: dict[str, Process] = field(default_factory=dict)

    @property
    def ws_base(self) -> str:
        return self.base_url.replace("http://", "ws://", 1)

    def start(self, name: str, **env: str) -> None:
        """Start a process (``web``, ``worker``, ``worker-2``...), ``env`` over the stack's:
        ``python -m server`` or ``python -m workers``, forked (tests/forks.py)."""
        module = {"web": "server", "worker": "workers"}[name.split("-")[0]]
        self.procs[name] = forks.start(
            module, [], env={**self.env, **env}, cwd=ROOT, log=self.log_dir / f"{name}.log"
        )

    async def add_web(self, name: str = "web-2") -> Stack:
        """Another web process on this database and Redis prefix, on a port of its own: a
        Stack whose URLs reach it. Its process is stopped with this stack."""
        port = str(free_port())
        other = Stack(
            base_url=f"http://127.0.0.1:{port}",
            database_url=self.database_url,
            redis_url=self.redis_url,
            env={**self.env, "PORT": port},
            log_dir=self.log_dir,
        )
        other.start(name)
        self.procs[name] = other.procs[name]
        await other.wait_ready()
        return other

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def wait_ready(self, timeout_s: float = READY_S) -> None:
        async with httpx.AsyncClient(base_url=self.base_url) as client:

            async def ready() -> bool:
                for name, proc in self.procs.items():
                    if proc.poll() is not None:
                        raise AssertionError(f"{name} exited early:\n{self.logs(name)[-3000:]}")
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout_s=timeout_s, interval_s=0.1, what="/readyz 200")

    async def owner(self) -> str:
        async with httpx.AsyncClient(base_url=self.base_url) as client:
            response = await client.post("/api/sessions")
            assert response.status_code == 201, response.text
            token: str = response.json()["token"]
            return token

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=10)

    def close(self, timeout_s: float = 15.0) -> None:
        """Stop every process: all asked at once (SIGTERM), so their shutdowns overlap;
        one still running at the deadline is killed."""
        procs = [self.procs.pop(name) for name in list(self.procs)]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_cli(
    *args: str, env: dict[str, str], input: str | None = None, timeout_s: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """``python -m jobcast.cli args`` to its end, forked (tests/forks.py), its output captured."""
    return forks.run("jobcast.cli", list(args), env=env, cwd=ROOT, input=input, timeout=timeout_s)


def prefix_for(database_url: str) -> str:
    """The Redis prefix of the install on this database: one per database (a database
    belongs to one install, and refuses a process with another prefix)."""
    return "t" + hashlib.sha256(database_url.encode()).hexdigest()[:12]


def stack_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        PORT=str(free_port()),
        HOST="127.0.0.1",
        JOBCAST_REDIS_PREFIX=prefix_for(database_url),
        JOBCAST_RETRY_BASE_S="0.2",
        # four workers' stacks at once, two processes each, stay well inside Postgres's
        # 100 connections (10 a process would not); a test that needs more says so
        JOBCAST_PG_POOL_MAX="5",
        # the suite makes many owners and jobs from one address: limits are tested on their own
        JOBCAST_SESSION_RATE_PER_MIN="1000000",
        JOBCAST_SESSION_BURST="100000",
        JOBCAST_SUBMIT_RATE_PER_MIN="1000000",
        JOBCAST_SUBMIT_BURST="100000",
        JOBCAST_UPLOAD_RATE_PER_MIN="1000000",
        JOBCAST_UPLOAD_BURST="100000",
        JOBCAST_MAX_ACTIVE_PER_OWNER="100000",
        JOBCAST_AUTH_FAILURE_BURST="100000",
        # a stack is closed with jobs still running: a worker hands them back after 1 s
        # instead of 10 (a test of the shutdown itself sets its own)
        JOBCAST_SHUTDOWN_GRACE_S="1",
        # /metrics reads its install-wide gauges afresh: tests look for a change at once
        JOBCAST_METRICS_CACHE_S="0",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


async def launch(
    database_url: str, redis_url: str, log_dir: Path, *, workers: int = 1, **env: str
) -> Stack:
    """Start a web process and workers on this database and Redis; ready when it returns.

    The web port comes from the OS, free when asked; a process of a parallel test that
    takes it before the web process binds it makes the launch start again on another."""
    metrics_dir = log_dir / "metrics"
    metrics_dir.mkdir(exist_ok=True)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    for attempt in range(3):
        stack = Stack(
            base_url="",
            database_url=database_url,
            redis_url=redis_url,
            env=stack_env(database_url, redis_url, **env),
            log_dir=log_dir,
        )
        stack.base_url = f"http://127.0.0.1:{stack.env['PORT']}"
        stack.start("web")
        for i in range(workers):
            stack.start(f"worker-{i}")
        try:
            await stack.wait_ready()
        except BaseException:
            stack.close()
            if attempt < 2 and PORT_TAKEN in stack.logs("web"):
                continue
            raise
        return stack
    raise AssertionError("unreachable")


async def create_database(admin_dsn: str, name: str, template: str | None = None) -> str:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        clause = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@dataclass
class Watched:
    snapshot: dict[str, Any]
    events: list[dict[str, Any]]
    close_code: int | None


async def watch(
    stack: Stack, token: str, job_id: str, *, after: int | None = None, timeout_s: float = 30.0
) -> Watched:
    """Follow a job's websocket until the server closes it."""
    import orjson
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    query = "" if after is None else f"?after={after}"
    url = f"{stack.ws_base}/ws/jobs/{job_id}{query}"
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            try:
                async for raw in ws:
                    messages.append(orjson.loads(raw))
            except ConnectionClosed:
                pass
            code = ws.close_code
    assert messages, "the socket sent nothing"
    snapshot = messages[0]
    return Watched(snapshot=snapshot, events=messages[1:], close_code=code)


async def submit(client: httpx.AsyncClient, job_type: str, **job_input: Any) -> str:
    response = await client.post("/api/jobs", json={"type": job_type, "input": job_input})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def declared_steps(client: httpx.AsyncClient, job_type: str) -> list[str]:
    """The step names the server declares for a job type (``GET /api/job-types``), in order."""
    response = await client.get("/api/job-types")
    assert response.status_code == 200, response.text
    types = {t["type"]: t for t in response.json()["job_types"]}
    return [step["name"] for step in types[job_type]["steps"]]


def parse_at(text: str) -> datetime:
    """A time the API wrote (an ISO 8601 string, perhaps with Z)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def progress_by_step(events: list[dict[str, Any]]) -> dict[str, int]:
    """How many progress events each step wrote, in the order the steps first reported."""
    counts: dict[str, int] = {}
    for event in events:
        if event["kind"] == "progress":
            counts[event["step"]] = counts.get(event["step"], 0) + 1
    return counts
