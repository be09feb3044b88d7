"""Completion webhooks sent by the workers' own loop: each try POSTed once, beside the sweep.

The workers run in this process (``WorkerState``, as ``python -m workers`` opens it)
on a database of their own and real Redis; the receiver is a real HTTP server.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from uuid import UUID

import asyncpg
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobcast.endpoints import Endpoints, free_port
from jobcast.model import JobStatus
from jobcast.store import Store
from tests.in_process import INTERVAL_S, finished_jobs, stale_job, worker_settings
from tests.support import eventually
from workers.state import WorkerState


class Receiver:
    """A loopback web server that counts the webhook calls per job, answering after delay_s."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.port = free_port()
        self.delay_s = delay_s
        self.calls: Counter[str] = Counter()
        self.started = 0

        async def hook(request: Request) -> Response:
            self.started += 1
            body = orjson.loads(await request.body())
            await asyncio.sleep(self.delay_s)
            self.calls[body["job"]["id"]] += 1
            return Response(status_code=200)

        app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def slow_receiver() -> Iterator[Receiver]:
    with Receiver(delay_s=3.0) as running:
        yield running


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    async with Store.open(database) as opened:
        yield opened


async def tries(store: Store, job_ids: list[UUID]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await store.pool.fetch(
        "SELECT job_id, attempt, status, status_code, error FROM webhook_deliveries "
        "WHERE job_id = ANY($1::uuid[]) ORDER BY job_id, attempt",
        job_ids,
    )
    return rows


async def test_two_workers_post_each_due_webhook_exactly_once(
    endpoints: Endpoints, database: str, store: Store
) -> None:
    count = 16
    with Receiver(delay_s=0.3) as receiver:
        job_ids = await finished_jobs(store, count, receiver.url)
        settings = worker_settings(endpoints, database)
        async with AsyncExitStack() as workers:
            for _ in range(2):
                await workers.enter_async_context(WorkerState.open(settings))

            async def all_delivered() -> bool:
                rows = await tries(store, job_ids)
                return len(rows) == count and all(r["status"] == "delivered" for r in rows)

            await eventually(all_delivered, timeout_s=60, what="every webhook delivered")
            await asyncio.sleep(3 * INTERVAL_S)  # give a second POST the time it would take
    assert receiver.calls == Counter({str(job_id): 1 for job_id in job_ids})


async def test_a_slow_receiver_does_not_hold_back_stale_job_recovery(
    endpoints: Endpoints, database: str, store: Store, slow_receiver: Receiver
) -> None:
    await finished_jobs(store, 10, slow_receiver.url)
    async with WorkerState.open(worker_settings(endpoints, database)):

        async def sending() -> bool:
            return slow_receiver.started > 0

        await eventually(sending, timeout_s=30, what="a webhook being sent")
        job_id = await stale_job(store)
        began = time.monotonic()

        async def recovered() -> bool:
            job = await store.get_job(job_id)
            return job is not None and job.status is JobStatus.PENDING

        await eventually(recovered, timeout_s=20, what="the stale job recovered")
        took_s = time.monotonic() - began
        still_sending = sum(slow_receiver.calls.values()) < 10
    assert still_sending, "the receiver answered everything: the test proves nothing"
    # a few sweeps at most (0.3 s here, idle): not the 30 s of ten 3-second calls in a row
    assert took_s < 25 * INTERVAL_S, f"recovery took {took_s:.1f} s behind the webhooks"


async def test_a_webhook_whose_target_is_no_longer_allowed_is_refused_not_posted(
    endpoints: Endpoints, database: str, store: Store, receiver: Receiver
) -> None:
    """The target passed at submit; by the time of delivery the allowed hosts changed."""
    job_ids = await finished_jobs(store, 1, receiver.url)
    settings = worker_settings(endpoints, database, webhook_hosts="hooks.example.com")
    async with WorkerState.open(settings):

        async def tried() -> list[asyncpg.Record] | None:
            rows = await tries(store, job_ids)
            return rows if rows and rows[0]["status"] != "pending" else None

        first = (await eventually(tried, timeout_s=30, what="the first try recorded"))[0]
        job = await store.get_job(job_ids[0])
    assert first["status"] in ("retrying", "failed")
    assert first["status_code"] is None
    assert "allowed" in first["error"]
    assert job is not None and job.deliveries is not None
    assert job.deliveries[0]["error"] == first["error"]  # shown on the job
    assert receiver.started == 0
