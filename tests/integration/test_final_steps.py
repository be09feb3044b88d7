"""Every end of a job closes its open step, in the stored steps and in the events.

A job can end while one of its steps runs (or waits for a person): its owner or an
operator cancels it, the step fails for good, the job runs out of time, its worker
is lost for the last time, or its question goes unanswered. After each, the job as
``GET /api/jobs/{id}`` shows it has no step left ``running``, the open step carries
the job's end (cancelled or failed), and the events hold a ``step`` event closing
it, numbered before the final ``status`` event with no gap in ``seq``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from jobcast.endpoints import Endpoints
from tests.chaos import chaos_env
from tests.conftest import DatabaseFactory
from tests.support import Stack, eventually, launch, watch

MakeStack = Callable[..., Awaitable[Stack]]
ADMIN_TOKEN = "final-steps-admin-token-0123456789"


@pytest.fixture(scope="module")
async def stack(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    running = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("final-steps"),
        **chaos_env(JOBCAST_ADMIN_TOKEN=ADMIN_TOKEN),
    )
    try:
        yield running
    finally:
        running.close()


async def job_of(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def start(client: httpx.AsyncClient, **body: Any) -> str:
    response = await client.post("/api/jobs", json={"type": "demo", **body})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def running_step(client: httpx.AsyncClient, job_id: str, name: str) -> None:
    """Wait until the job's step ``name`` runs."""

    async def runs() -> bool:
        job = await job_of(client, job_id)
        return any(s["name"] == name and s["status"] == "running" for s in job["steps"])

    await eventually(runs, timeout_s=30, what=f"step {name} running")


async def ended(client: httpx.AsyncClient, job_id: str, status: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        job = await job_of(client, job_id)
        return job if job["status"] == status else None

    return await eventually(done, timeout_s=45, what=f"job {status}")


async def assert_closed(
    client: httpx.AsyncClient, job_id: str, status: str, step: str, state: str
) -> None:
    """The job ended ``status``; its step ``step`` ended ``state``, stored and in an event."""
    job = await ended(client, job_id, status)
    by_name = {s["name"]: s for s in job["steps"]}
    assert [s["name"] for s in job["steps"] if s["status"] == "running"] == [], job["steps"]
    assert by_name[step]["status"] == state, by_name[step]
    assert by_name[step]["finished_at"] is not None, by_name[step]
    response = await client.get(f"/api/jobs/{job_id}/events", params={"after": 0})
    assert response.status_code == 200, response.text
    events = response.json()["events"]
    assert [e["seq"] for e in events] == list(range(1, job["seq"] + 1)), "seq has a gap"
    final = events[-1]
    assert final["kind"] == "status" and final["status"] == status, final
    # the last word on the step, before the final status, closes it
    last_of_step = [e for e in events[:-1] if e["kind"] == "step" and e["step"] == step][-1]
    assert last_of_step["state"] == state, last_of_step


async def test_cancelling_a_running_job_cancels_its_step(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await start(client, input={"duration": 30})
        await running_step(client, job_id, "fetch")
        # a socket open before the cancel gets the step's end live, then the final event
        watching = asyncio.create_task(watch(stack, token, job_id, after=0))
        await eventually(lambda: stack_has_socket(stack), what="the socket open")
        response = await client.post(f"/api/jobs/{job_id}/cancel")
        assert response.status_code == 202, response.text
        await assert_closed(client, job_id, "cancelled", "fetch", "cancelled")
        live = await watching
        last_two = [
            (e["kind"], e.get("step"), e.get("state") or e.get("status")) for e in live.events[-2:]
        ]
        assert last_two == [("step", "fetch", "cancelled"), ("status", None, "cancelled")]
        assert live.close_code == 1000


async def stack_has_socket(stack: Stack) -> bool:
    """Whether the web process holds a job socket (its /metrics count)."""
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        text = (await client.get("/metrics")).text
    return any(
        line.startswith('jobcast_open_websockets{kind="job"}') and float(line.split()[-1]) > 0
        for line in text.splitlines()
    )


async def test_an_operator_cancel_cancels_the_running_step(stack: Stack) -> None:
    async with stack.client(await stack.owner()) as client:
        job_id = await start(client, input={"duration": 30})
        await running_step(client, job_id, "fetch")
        async with stack.client(ADMIN_TOKEN) as admin:
            response = await admin.post("/api/admin/jobs/cancel", json={"ids": [job_id]})
            assert response.status_code == 202, response.text
        await assert_closed(client, job_id, "cancelled", "fetch", "cancelled")


async def test_cancelling_a_waiting_job_cancels_the_step_that_asked(stack: Stack) -> None:
    async with stack.client(await stack.owner()) as client:
        job_id = await start(client, input={"duration": 0.5, "ask": True})
        await ended(client, job_id, "waiting")
        response = await client.post(f"/api/jobs/{job_id}/cancel")
        assert response.status_code == 202, response.text
        await assert_closed(client, job_id, "cancelled", "analyze", "cancelled")


async def test_an_unanswered_question_fails_the_step_that_asked(stack: Stack) -> None:
    async with stack.client(await stack.owner()) as client:
        job_id = await start(client, input={"duration": 0.5, "ask": True, "ask_timeout_s": 1})
        await assert_closed(client, job_id, "failed", "analyze", "failed")


async def test_a_permanent_failure_fails_its_step(stack: Stack) -> None:
    async with stack.client(await stack.owner()) as client:
        job_id = await start(client, input={"duration": 1, "fail_step": "analyze"})
        await assert_closed(client, job_id, "failed", "analyze", "failed")


async def test_running_out_of_time_fails_the_running_step(stack: Stack) -> None:
    async with stack.client(await stack.owner()) as client:
        # the validate step takes 3 s of the 30: the time limit falls within it
        job_id = await start(client, input={"duration": 30}, timeout_seconds=2, max_attempts=1)
        await assert_closed(client, job_id, "failed", "validate", "failed")


async def test_a_stale_attempt_given_up_fails_its_step(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("final-steps-stale"),
        **chaos_env(),
    )
    try:
        async with stack.client(await stack.owner()) as client:
            job_id = await start(client, input={"duration": 30}, max_attempts=1)
            await running_step(client, job_id, "fetch")
            stack.stop("worker-0", signal.SIGKILL)
            stack.start("worker-1")  # its sweep finds the attempt without a heartbeat
            await assert_closed(client, job_id, "failed", "fetch", "failed")
    finally:
        stack.close()
