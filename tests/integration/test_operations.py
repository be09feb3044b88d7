"""Operating jobcast: JSON logs with job and request context, the worker health check."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from jobcast.endpoints import Endpoints
from jobcast.settings import ROOT
from tests.conftest import DatabaseFactory
from tests.support import Stack, eventually, launch, submit, watch


@pytest.fixture(scope="module")
async def logged(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("logged"),
        JOBCAST_LOG_FORMAT="json",
    )
    try:
        yield stack
    finally:
        stack.close()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


async def test_every_log_line_is_json_with_job_and_request_context(logged: Stack) -> None:
    token = await logged.owner()
    async with logged.client(token) as client:
        response = await client.post(
            "/api/jobs",
            json={"type": "demo", "input": {"duration": 0.1, "flaky": 1}},
            headers={"X-Request-ID": "req-abc-123"},
        )
        job_id = response.json()["id"]
        await watch(logged, token, job_id)
    assert response.headers["x-request-id"] == "req-abc-123"

    async def worker_wrote() -> list[dict[str, Any]] | None:
        lines = [
            line for line in json_lines(logged.logs("worker-0")) if line.get("job_id") == job_id
        ]
        return lines if any("completed" in line["message"] for line in lines) else None

    worker_lines = await eventually(worker_wrote, what="the worker's lines about the job")
    web_lines = json_lines(logged.logs("web"))  # every line parses, uvicorn's included
    submitted = [line for line in web_lines if line.get("request_id") == "req-abc-123"]
    access = [line for line in submitted if "POST /api/jobs" in line["message"]]
    assert len(access) == 1  # one access line per request: jobcast's, not uvicorn's as well
    assert access[0]["logger"] == "jobcast.access"
    assert "POST /api/jobs 202" in access[0]["message"]
    assert access[0].get("job_id") == job_id  # the access line of the submit names its job
    assert {line["attempt"] for line in worker_lines} == {1, 2}  # the flaky first attempt too
    assert all(line["job_type"] == "demo" and line["process"] == "worker" for line in worker_lines)
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in web_lines)
    assert token not in logged.logs("web") + logged.logs("worker-0")


async def test_with_the_access_log_off_no_line_is_written_per_request(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path: Any
) -> None:
    stack = await launch(
        await new_database(), endpoints.redis_url, tmp_path, workers=0, JOBCAST_ACCESS_LOG="false"
    )
    try:
        async with stack.client() as client:
            answers = [
                await client.get("/healthz", headers={"X-Request-ID": f"quiet-{i}"})
                for i in range(3)
            ]
        # a cancel writes a line of its own, after any line of the requests before it
        async with stack.client(await stack.owner()) as owner:
            job_id = await submit(owner, "noop")
            cancel = await owner.post(f"/api/jobs/{job_id}/cancel")
        assert [answer.status_code for answer in answers] == [200, 200, 200]
        assert cancel.status_code == 202, cancel.text

        async def cancel_logged() -> bool:
            return job_id in stack.logs("web")

        await eventually(cancel_logged, what="the cancel's log line")
        logs = stack.logs("web")
        assert "Application startup complete" in logs  # the process does log
        assert "quiet-" not in logs and "GET /healthz" not in logs and "POST /api" not in logs
    finally:
        stack.close()


async def test_a_request_without_an_id_gets_one(logged: Stack) -> None:
    async with logged.client() as client:
        first = await client.get("/healthz")
        second = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert len(first.headers["x-request-id"]) == 32
    assert second.headers["x-request-id"] != "bad id with spaces"


def check(stack: Stack, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers", "--check", *extra],
        env=stack.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_worker_health_check_for_process_managers(logged: Stack) -> None:
    async def healthy() -> subprocess.CompletedProcess[str] | None:
        result = await asyncio.to_thread(check, logged)
        return result if result.returncode == 0 else None

    ok = await eventually(healthy, what="the worker saying it is alive")
    pid = logged.procs["worker-0"].pid
    assert "healthy" in ok.stdout
    assert (await asyncio.to_thread(check, logged, "--pid", str(pid))).returncode == 0
    gone = await asyncio.to_thread(check, logged, "--pid", "1")
    assert gone.returncode == 1 and "unhealthy" in gone.stderr


async def test_readyz_names_each_dependency(stack: Stack) -> None:
    async with stack.client() as client:
        body = (await client.get("/readyz")).json()
    assert body["status"] == "ready"
    checks = body["checks"]
    dependencies = ("postgres", "redis", "pubsub", "listen")
    assert {name: checks.get(name) for name in dependencies} == dict.fromkeys(dependencies, "ok")
    assert checks.get("redis_circuit") == "closed", checks
