"""Two installs on one database: the second refuses to start, in one line.

An install is one database and one Redis prefix. A web process or worker with
another prefix pointed at a database an install uses would queue that install's jobs
again on its own Redis and take its running jobs for lost: it must not start. Real
processes, real Postgres and Redis.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from jobcast.settings import ROOT
from jobcast.store import Store
from tests.conftest import DatabaseFactory
from tests.support import Stack, eventually, prefix_for, stack_env


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


async def completes(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        created = await client.post("/api/jobs", json={"type": "noop", "input": {}})
        assert created.status_code == 202, created.text

        async def done() -> bool:
            job = (await client.get(f"/api/jobs/{created.json()['id']}")).json()
            return job["status"] == "completed"

        await eventually(done, timeout_s=60, what="the job completed")


@pytest.mark.parametrize(
    ("process", "command"),
    [("web", [sys.executable, "-m", "server"]), ("worker", [sys.executable, "-m", "workers"])],
)
async def test_a_process_of_another_install_refuses_the_database_in_one_line(
    stack: Stack, process: str, command: list[str]
) -> None:
    other = stack_env(stack.database_url, stack.redis_url, JOBCAST_REDIS_PREFIX="other-install")
    refused = run(command, other)
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.startswith("jobcast ")]
    assert len(lines) == 1, refused.stderr
    line = lines[0]
    assert line.startswith(f"jobcast {process}: the database belongs to the install")
    assert repr(prefix_for(stack.database_url)) in line and "'other-install'" in line
    # the install it belongs to goes on as before
    await completes(stack)


async def test_a_process_of_the_same_install_starts(stack: Stack) -> None:
    """Same database, same prefix: one more web process of the install is welcome."""
    more = await stack.add_web("web-same")
    async with httpx.AsyncClient(base_url=more.base_url) as client:
        assert (await client.get("/readyz")).status_code == 200


async def test_an_install_that_moved_prefix_says_so_once(stack: Stack, tmp_path: Path) -> None:
    for name in list(stack.procs):
        stack.stop(name)
    moved = stack_env(stack.database_url, stack.redis_url, JOBCAST_REDIS_PREFIX="moved")
    cli = [sys.executable, "-m", "jobcast.cli"]
    said = run([*cli, "migrate", "--redis-prefix-moved"], moved)
    assert said.returncode == 0, said.stderr
    assert "the install's Redis prefix is now 'moved'" in said.stdout
    # from now on the old prefix is the other install
    old = run([sys.executable, "-m", "workers"], stack.env)
    assert old.returncode == 2 and "JOBCAST_REDIS_PREFIX='moved'" in old.stderr, old.stderr
    stack.env.update(moved)
    stack.base_url = f"http://127.0.0.1:{moved['PORT']}"
    stack.log_dir = tmp_path
    stack.start("web")
    stack.start("worker")
    await stack.wait_ready()
    await completes(stack)


async def test_two_processes_starting_together_on_a_new_database_agree_on_its_install(
    new_database: DatabaseFactory,
) -> None:
    """The first process's row is written but not committed when the second asks: the
    second waits, and answers the first's prefix (it read None before, and refused to start
    with "the database belongs to the install with JOBCAST_REDIS_PREFIX=None")."""
    dsn = await new_database()
    first = await asyncpg.connect(dsn)
    watcher = await asyncpg.connect(dsn)
    try:
        async with Store.open(dsn) as store:
            writing = first.transaction()
            await writing.start()
            await first.execute("INSERT INTO install (redis_prefix) VALUES ('first')")
            second = asyncio.create_task(store.claim_install("second"))

            async def waiting() -> bool:  # the second's insert waits on the first's row
                # (read outside the first's transaction: its view of the activity is frozen)
                return bool(
                    await watcher.fetchval(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO install%'"
                    )
                )

            await eventually(waiting, what="the second process's claim waiting")
            await writing.commit()
            assert await asyncio.wait_for(second, 10) == "first"
            assert await store.claim_install("second") == "first"
    finally:
        await first.close()
        await watcher.close()
