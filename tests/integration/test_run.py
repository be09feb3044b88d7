"""`make run` as a newcomer gets it: embedded Postgres and Redis, web and worker, clean stop."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from jobcast.endpoints import free_port, provide
from jobcast.errors import ServiceUnavailable
from jobcast.settings import ROOT, load_settings
from tests.support import Stack, eventually, submit, watch


def test_explicit_url_that_does_not_answer_is_an_error_naming_it() -> None:
    port = free_port()  # nothing listens there
    settings = load_settings({"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/postgres"})
    with pytest.raises(ServiceUnavailable, match=f"DATABASE_URL=.*:{port}.* does not answer"):
        with provide(settings):
            pass
    settings = load_settings({"REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    with pytest.raises(ServiceUnavailable, match=f"REDIS_URL=.*:{port}.* does not answer"):
        with provide(settings):
            pass


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # under the repo, not /tmp/pytest-of-root: pgserver runs Postgres as its own user,
    # which must be able to reach the folder
    path = ROOT / ".jobcast" / f"test-embedded-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_make_run_starts_embedded_servers_web_and_worker_and_stops_cleanly(
    data_dir: Path,
) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("JOBCAST_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(JOBCAST_EMBEDDED="1", JOBCAST_DATA_DIR=str(data_dir), PORT=str(port))
    log_path = data_dir / "run.log"
    with open(log_path, "wb") as log:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "jobcast.dev"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        stack = Stack(
            base_url=f"http://127.0.0.1:{port}",
            database_url="",
            redis_url="",
            env=env,
            log_dir=data_dir,
            procs={"launcher": launcher},
        )
        await stack.wait_ready(timeout_s=60)
        children = psutil.Process(launcher.pid).children()
        commands = [" ".join(c.cmdline()) for c in children]
        assert any("-m server" in c for c in commands) and any(
            "-m workers" in c for c in commands
        ), commands
        async with httpx.AsyncClient(base_url=stack.base_url) as client:
            ready = (await client.get("/readyz")).json()
        assert ready["status"] == "ready"

        token = await stack.owner()
        async with stack.client(token) as client:
            job_id = await submit(client, "demo", duration=0.3)
            seen = await watch(stack, token, job_id)
        assert seen.events[-1]["status"] == "completed"

        # the embedded servers are really running from the data folder
        assert (data_dir / "pg" / "PG_VERSION").exists()
        everything = psutil.Process(launcher.pid).children(recursive=True)

        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(30) == 0
        _, alive = psutil.wait_procs(everything, timeout=15)
        assert alive == [], [p.cmdline() for p in alive]

        async def postgres_stopped() -> bool:
            return not (data_dir / "pg" / "postmaster.pid").exists()

        await eventually(postgres_stopped, timeout_s=15, what="embedded postgres stopped")
    finally:
        if launcher.poll() is None:
            # a failed test must not leave the web and worker processes behind
            left = psutil.Process(launcher.pid).children(recursive=True)
            launcher.kill()
            for child in left:
                child.kill()
        print(log_path.read_text(errors="replace")[-4000:])
