"""The worker process: a bad setting is one clear line, and Redis errors cost it no job slot."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from arq.connections import RedisSettings
from arq.worker import func

from jobcast.endpoints import Endpoints
from jobcast.model import JobStatus
from jobcast.queue import Queue
from jobcast.registry import load_registry
from jobcast.settings import ROOT
from jobcast.store import Store
from tests.conftest import DatabaseFactory
from tests.in_process import worker_settings
from tests.support import eventually
from workers.__main__ import supervise
from workers.starts import START_SCRIPT, Worker


@pytest.mark.parametrize("args", [[], ["--check"]], ids=["run", "check"])
def test_a_bad_setting_stops_the_worker_with_one_line_naming_it(args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCAST_")}
    env["JOBCAST_HEARTBEAT_S"] = "abc"
    done = subprocess.run(
        [sys.executable, "-m", "workers", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("jobcast worker: JOBCAST_HEARTBEAT_S:")
    assert "abc" in lines[0] and "Traceback" not in done.stderr
    assert done.stdout == ""


# the start script goes by its SHA-1 (EVALSHA), and by nothing else the worker sends
START = hashlib.sha1(START_SCRIPT.encode()).hexdigest().encode()


class CutAtStart:
    """A TCP proxy in front of Redis that drops the first connections that send the
    worker's start script (workers/starts.py).

    The worker sends it when it starts a job it took from the queue, after counting the
    job as started: dropping the connection there is a Redis outage at the worst moment.
    """

    def __init__(self, upstream_url: str, cuts: int) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._path = parts.path
        self.cuts_left = cuts
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}{self._path}"

    async def __aenter__(self) -> CutAtStart:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self._upstream)

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, upward: bool) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while chunk := await r.read(65_536):
                    if upward and START in chunk and self.cuts_left > 0:
                        self.cuts_left -= 1
                        break
                    w.write(chunk)
                    await w.drain()
            for writer in (client_w, server_w):
                writer.close()

        await asyncio.gather(pump(client_r, server_w, True), pump(server_r, client_w, False))


# arq's Worker.close calls redis-py's deprecated close()
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_a_redis_error_as_a_job_starts_does_not_cost_the_worker_a_slot(
    endpoints: Endpoints, new_database: DatabaseFactory
) -> None:
    """One job slot: a Redis error as arq starts a job must leave it free for the next."""
    database = await new_database()
    async with CutAtStart(endpoints.redis_url, cuts=2) as proxy:
        settings = worker_settings(endpoints, database, redis_url=proxy.url, worker_concurrency=1)
        direct = worker_settings(
            endpoints, database, redis_prefix=settings.redis_prefix, worker_concurrency=1
        )
        async with Store.open(database) as store:
            owner = await store.create_owner(uuid.uuid4().hex)
            created = await store.create_job(
                owner_id=owner, job_type=load_registry().get("noop"), params={}
            )
            assert created is not None
            client = aioredis.Redis.from_url(direct.redis_dsn)
            try:
                await Queue(client, direct).enqueue(created.job.id)
            finally:
                await client.aclose()
            worker = asyncio.create_task(supervise(settings))
            try:

                async def completed() -> bool:
                    job = await store.get_job(created.job.id)
                    return job is not None and job.status is JobStatus.COMPLETED

                await eventually(completed, timeout_s=20, what="the job run after the cuts")
            finally:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
    assert proxy.cuts_left == 0, "the proxy never cut a job's start: the test proves nothing"


class SwallowsOneCancel(Worker):
    """A worker whose first poll turn has a Redis call that swallows the cancel coming with
    its answer, as redis-py's calls may on Python 3.11 (``raise_swallowed_cancel``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_the_call = asyncio.Event()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        if not self.in_the_call.is_set():
            self.in_the_call.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()  # until the cancel comes, then on as if answered
        await super().start_jobs(job_ids)


async def _nothing(_ctx: dict[Any, Any]) -> None:
    return None


# arq's Worker.close calls redis-py's deprecated close()
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_a_stop_a_redis_call_swallowed_still_ends_the_poll_loop(
    endpoints: Endpoints,
) -> None:
    """The supervisor's cancel (and arq's on a signal) ends arq's poll loop at the turn's
    end, though the Redis call it came in swallowed it: the worker stops, not polls on."""
    worker = SwallowsOneCancel(
        functions=[func(_nothing, name="nothing")],
        redis_settings=RedisSettings.from_dsn(endpoints.redis_url),
        queue_name=f"t{uuid.uuid4().hex[:12]}:queue",
        handle_signals=False,
        poll_delay=0.01,
    )
    run = asyncio.create_task(worker.async_run())
    try:
        async with asyncio.timeout(30):
            await worker.in_the_call.wait()
        run.cancel()
        done, _ = await asyncio.wait([run], timeout=5)
        assert done and run.cancelled(), "the poll loop ran on after its cancel was swallowed"
    finally:
        run.cancel()  # a second cancel, were the first lost for good
        with contextlib.suppress(asyncio.CancelledError):
            await run
        await worker.close()


def test_a_job_type_whose_code_cannot_be_imported_stops_the_worker_at_start(
    tmp_path: Path,
) -> None:
    """Every type's code is imported as the worker starts: a broken run path is one line
    naming it, not a traceback, and not a failure at the type's first job."""
    path = "jobcast_no_such_package.steps:run"
    module = f"broken_types_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "from pydantic import BaseModel\n"
        "from jobcast.registry import JobType, lazy\n"
        "class Params(BaseModel):\n"
        "    pass\n"
        f"JOB_TYPES = [JobType('broken', 'Broken', Params, lazy({path!r}))]\n"
    )
    env = {**os.environ, "JOBCAST_JOB_MODULES": module, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "workers"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0, done.stderr
    assert len(lines) == 1, done.stderr
    assert path in lines[0] and "Traceback" not in done.stderr
