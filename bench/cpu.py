"""Where the time goes: CPU time by role while a benchmark runs.

Every process of a run is on this machine (benchmarks send traffic only to
loopback addresses), so the CPU each one spends can be read from the operating
system (psutil): the benchmark process itself (the load generator), the web and
worker processes it started, and every process of the Postgres server (the
postmaster and its children: backends, WAL writer, ...) and of the Redis server.
A figure per job is the CPU all of them spent in a timed run, over its jobs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import asyncpg
import psutil
import redis.asyncio as aioredis
from redis.exceptions import RedisError

ROLES = ("postgres", "web", "worker", "redis", "load generator")
# the benchmark's process names that are workers; every other one is a web process
_WORKERS = ("worker", "raw-arq")


@dataclass
class Spent:
    """CPU seconds each role spent during one measured span."""

    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def per_job_ms(self, jobs: int) -> str:
        """``2.95 ms (Postgres 1.20, web 0.70, ...)``: the total and each role, per job."""
        parts = ", ".join(
            f"{role} {1000 * self.seconds[role] / jobs:.2f}"
            for role in ROLES
            if role in self.seconds
        )
        return f"{1000 * self.total / jobs:.2f} ms ({parts})"


class CpuMeter:
    """Reads the CPU time of the run's processes by role."""

    def __init__(
        self,
        postmaster: int | None,
        redis_server: int | None,
        started: Mapping[str, subprocess.Popen[bytes]],
    ) -> None:
        self._postmaster = postmaster
        self._redis_server = redis_server
        self._started = started  # the run's own processes by name, as they come and go

    @classmethod
    async def find(
        cls, db: asyncpg.Pool, redis: aioredis.Redis, started: Mapping[str, subprocess.Popen[bytes]]
    ) -> CpuMeter:
        """Find the Postgres and Redis servers' processes from a connection to each."""
        postmaster: int | None = None
        try:
            postmaster = psutil.Process(await db.fetchval("SELECT pg_backend_pid()")).ppid()
        except psutil.Error:
            pass
        redis_server: int | None = None
        try:
            redis_server = int((await redis.info("server"))["process_id"])
        except (RedisError, KeyError, ValueError):
            pass
        return cls(postmaster, redis_server, started)

    def snapshot(self) -> dict[int, tuple[str, float]]:
        """Each process's role and CPU seconds so far, by pid."""
        seen: dict[int, tuple[str, float]] = {}

        def add(role: str, pid: int | None, with_children: bool = False) -> None:
            if pid is None:
                return
            try:
                process = psutil.Process(pid)
                processes = [process, *(process.children() if with_children else [])]
            except psutil.Error:
                return
            for each in processes:
                try:
                    times = each.cpu_times()
                except psutil.Error:
                    continue  # gone meanwhile
                seen[each.pid] = (role, times.user + times.system)

        add("postgres", self._postmaster, with_children=True)
        add("redis", self._redis_server)
        for name, proc in list(self._started.items()):
            add("worker" if name.startswith(_WORKERS) else "web", proc.pid)
        add("load generator", psutil.Process().pid)
        return seen

    @contextmanager
    def measure(self) -> Iterator[Spent]:
        """The CPU each role spends inside the ``with`` block.

        A process that starts meanwhile counts whole; one that ends meanwhile is not
        counted (its last reading is gone with it): pools keep their connections, so
        neither happens much in a timed run.
        """
        spent = Spent()
        before = self.snapshot()
        try:
            yield spent
        finally:
            seconds = dict.fromkeys(ROLES, 0.0)
            for pid, (role, now) in self.snapshot().items():
                seconds[role] += now - before.get(pid, (role, 0.0))[1]
            spent.seconds = seconds
