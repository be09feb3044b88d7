"""``make run``: find or start Postgres and Redis, apply the schema, run web and worker.

The web process (uvicorn) and the worker (arq) run as their own processes with
their logs on this terminal. Ctrl-C or SIGTERM stops both, then any embedded
servers this command started.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from jobcast.endpoints import Endpoints, provide
from jobcast.errors import JobcastError
from jobcast.logs import setup_logging
from jobcast.settings import Settings, load_settings, redact_url
from jobcast.store import apply_schema

log = logging.getLogger("jobcast.dev")

_STOP_GRACE_S = 15.0


def web_command(settings: Settings) -> list[str]:
    """The web process (``server/__main__.py``); it reads HOST and PORT from the settings."""
    return [sys.executable, "-m", "server"]


def worker_command() -> list[str]:
    return [sys.executable, "-m", "workers"]


def child_env(endpoints: Endpoints, metrics_dir: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "JOBCAST_EMBEDDED"}
    env["DATABASE_URL"] = endpoints.database_url
    env["REDIS_URL"] = endpoints.redis_url
    env.setdefault("PYTHONUNBUFFERED", "1")
    if metrics_dir is not None:
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    return env


def fresh_metrics_dir(data_dir: Path) -> Path:
    """Where the processes of this run write their metrics; emptied at each start."""
    path = data_dir / "metrics"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def supervise(commands: Sequence[list[str]], env: dict[str, str]) -> int:
    """Run the commands until one ends or we are told to stop; then stop them all."""
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    procs = [subprocess.Popen(command, env=env) for command in commands]
    code = 0
    try:
        while not stopping:
            ended = [p for p in procs if p.poll() is not None]
            if ended:
                code = ended[0].returncode or 1
                log.error("%s exited with %s; stopping", ended[0].args, ended[0].returncode)
                break
            time.sleep(0.2)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_S
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return code


def main() -> int:
    try:
        settings = load_settings()
        setup_logging(settings, "dev")
        with provide(settings) as endpoints:
            asyncio.run(apply_schema(endpoints.database_url))
            log.info(
                "postgres %s%s, redis %s%s",
                redact_url(endpoints.database_url),
                " (embedded)" * endpoints.embedded_postgres,
                redact_url(endpoints.redis_url),
                " (embedded)" * endpoints.embedded_redis,
            )
            log.info("serving on http://%s:%d", settings.host, settings.port)
            env = child_env(endpoints, fresh_metrics_dir(settings.data_dir))
            return supervise([web_command(settings), worker_command()], env)
    except JobcastError as exc:
        print(f"jobcast: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
