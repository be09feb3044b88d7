"""Debounce against the running service: submits with one key make one job, exactly, however
many arrive at once; it runs once, after the window, with the last input; the window
restarts at each submit up to its maximum; bad debounces are refused; a Redis wipe during
the window loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from jobcast.client import AsyncClient, BadRequest
from jobcast.endpoints import Endpoints
from tests.conftest import DatabaseFactory
from tests.integration.test_cli import jobcast
from tests.integration.test_durable import _wipe_redis
from tests.integration.test_errors import assert_error
from tests.integration.test_metrics import scrape, value
from tests.integration.test_reliability import events_of, job_of, wait_status
from tests.support import Stack, launch, parse_at

CAP_S = 60


@pytest.fixture(scope="module")
async def debounce_stack(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("debounce"),
        JOBCAST_JOB_MODULES="tests.pending_jobtypes",
        JOBCAST_DEBOUNCE_MAX_S=str(CAP_S),
        JOBCAST_REAPER_INTERVAL_S="0.3",
        JOBCAST_OUTBOX_GRACE_S="0.5",
    )
    try:
        yield stack
    finally:
        stack.close()


def _body(n: int, key: str, seconds: float, **more: Any) -> dict[str, Any]:
    return {"type": "echo", "input": {"n": n}, "debounce": {"key": key, "seconds": seconds, **more}}


async def _submitted(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/api/jobs", json=body)
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    assert set(answer) == {"id", "status", "status_url", "ws_url", "estimated_seconds"}
    assert response.headers["location"] == answer["status_url"]
    return answer


async def _jobs_of_type(stack: Stack, job_type: str) -> int:
    conn = await asyncpg.connect(stack.database_url)
    try:
        n: int = await conn.fetchval("SELECT count(*) FROM jobs WHERE type = $1", job_type)
    finally:
        await conn.close()
    return n


def _joins(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "status" and e.get("debounced")]


async def test_twenty_submits_at_once_make_one_job_that_runs_once_with_the_last_input(
    debounce_stack: Stack,
) -> None:
    stack = debounce_stack
    token = await stack.owner()
    before = await _jobs_of_type(stack, "echo")
    joined_before = value(await scrape(stack), "jobcast_jobs_debounced_total", type="echo")
    async with stack.client(token) as client:
        answers = await asyncio.gather(
            *(_submitted(client, _body(n, "report:42", 3)) for n in range(20))
        )
        ids = {a["id"] for a in answers}
        assert len(ids) == 1, ids
        [job_id] = ids
        assert {a["status"] for a in answers} == {"pending"}
        done = await wait_status(client, job_id, "completed", "failed", timeout_s=60)
        events = await events_of(client, job_id)
    assert done["status"] == "completed"
    assert await _jobs_of_type(stack, "echo") == before + 1
    # one job, run once, with the input the last submit to commit gave it
    assert done["attempts"] == 1
    assert done["result"] == {"n": done["input"]["n"], "attempt": 1}
    joins = _joins(events)
    assert len(joins) == 19
    joined = value(await scrape(stack), "jobcast_jobs_debounced_total", type="echo")
    assert joined - joined_before == 19
    starts = [e for e in events if e["kind"] == "status" and e["status"] == "running"]
    assert len(starts) == 1
    # the window restarted at the last submit: the job started at least 3 s after it
    assert (parse_at(starts[0]["at"]) - parse_at(joins[-1]["at"])).total_seconds() >= 3 - 0.05
    assert parse_at(done["started_at"]) >= parse_at(joins[-1]["run_at"])


async def test_the_window_restarts_at_each_submit_up_to_its_maximum(
    debounce_stack: Stack,
) -> None:
    token = await debounce_stack.owner()
    async with debounce_stack.client(token) as client:
        first = await _submitted(client, _body(1, "search", 2))
        run_at_1 = parse_at((await job_of(client, first["id"]))["run_at"])
        second = await _submitted(client, _body(2, "search", 2))
        third = await _submitted(client, _body(3, "search", 2))
        assert first["id"] == second["id"] == third["id"]
        job = await job_of(client, first["id"])
        assert job["input"] == {"n": 3}
        assert parse_at(job["run_at"]) > run_at_1  # pushed back by each submit
        done = await wait_status(client, first["id"], "completed", timeout_s=30)
        assert done["result"] == {"n": 3, "attempt": 1}

        # capped: held back no later than max_seconds after the first submit
        capped = await _submitted(client, _body(1, "capped", 2, max_seconds=2))
        capped_at = parse_at((await job_of(client, capped["id"]))["run_at"])
        again = await _submitted(client, _body(2, "capped", 2, max_seconds=2))
        assert again["id"] == capped["id"]
        assert parse_at((await job_of(client, capped["id"]))["run_at"]) == capped_at

        # a key joins only a job that has not started: after it ran, a new job
        later = await _submitted(client, _body(4, "search", 2))
        assert later["id"] != first["id"]


async def test_a_paused_job_takes_no_more_submits_and_resumes_beside_the_next(
    debounce_stack: Stack,
) -> None:
    token = await debounce_stack.owner()
    async with debounce_stack.client(token) as client:
        paused = await _submitted(client, _body(1, "paused", 30))
        assert (await client.post(f"/api/jobs/{paused['id']}/pause")).status_code == 202
        fresh = await _submitted(client, _body(2, "paused", 30))
        assert fresh["id"] != paused["id"]
        # both pending with the key's history: the resumed one no longer holds the key
        assert (await client.post(f"/api/jobs/{paused['id']}/resume")).status_code == 202
        joined = await _submitted(client, _body(3, "paused", 30))
        assert joined["id"] == fresh["id"]
        assert (await job_of(client, paused["id"]))["input"] == {"n": 1}
        assert (await job_of(client, fresh["id"]))["input"] == {"n": 3}


async def test_the_key_is_per_owner_and_type(debounce_stack: Stack) -> None:
    one, two = await debounce_stack.owner(), await debounce_stack.owner()
    async with debounce_stack.client(one) as first, debounce_stack.client(two) as second:
        a = await _submitted(first, _body(1, "shared", 5))
        b = await _submitted(second, _body(2, "shared", 5))
        c = await _submitted(first, {**_body(3, "shared", 5), "type": "slot_report"})
        assert len({a["id"], b["id"], c["id"]}) == 3
        assert (await job_of(first, a["id"]))["input"] == {"n": 1}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_body(1, "k", CAP_S + 1), "debounce.seconds"),
        (_body(1, "k", 5, max_seconds=CAP_S + 1), "debounce.max_seconds"),
        (_body(1, "k", 5, max_seconds=2), "debounce.max_seconds"),
        (_body(1, "k" * 201, 5), "debounce.key"),
        (_body(1, "k", 0), "debounce.seconds"),
        ({**_body(1, "k", 5), "draft": True}, "debounce"),
        ({**_body(1, "k", 5), "delay_seconds": 3}, "debounce"),
        ({**_body(1, "k", 5), "idempotency_key": "once"}, "debounce"),
    ],
)
async def test_a_bad_debounce_is_a_422_naming_it(
    debounce_stack: Stack, body: dict[str, Any], field: str
) -> None:
    token = await debounce_stack.owner()
    async with debounce_stack.client(token) as client:
        error = assert_error(await client.post("/api/jobs", json=body), 422, "invalid_input")
        assert error["details"][0]["field"] == field, error
        batch = await client.post("/api/jobs/batch", json={"jobs": [_body(1, "k", 5)]})
        assert assert_error(batch, 422, "invalid_input")["details"][0]["field"] == (
            "jobs.0.debounce"
        )
        assert (await client.get("/api/jobs")).json()["jobs"] == []


async def test_a_redis_wipe_during_the_window_loses_nothing(debounce_stack: Stack) -> None:
    token = await debounce_stack.owner()
    async with debounce_stack.client(token) as client:
        first = await _submitted(client, _body(1, "wiped", 2))
        assert await _wipe_redis(debounce_stack, [first["id"]]) >= 1
        joined = await _submitted(client, _body(2, "wiped", 2))
        assert joined["id"] == first["id"]
        done = await wait_status(client, first["id"], "completed", timeout_s=30)
        assert done["result"] == {"n": 2, "attempt": 1}
        assert parse_at(done["started_at"]) >= parse_at(done["run_at"])


async def test_the_command_line_and_the_client_debounce(
    debounce_stack: Stack, tmp_path: Path
) -> None:
    args = ("submit", "echo", "--input", '{"n": 7}', "--debounce-key", "cli", "--debounce-s", "30")
    runs = [await asyncio.to_thread(jobcast, debounce_stack, tmp_path, *args) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    assert runs[0].stdout.strip() == runs[1].stdout.strip()
    half = await asyncio.to_thread(
        jobcast, debounce_stack, tmp_path, "submit", "echo", "--debounce-key", "cli"
    )
    assert half.returncode == 2 and "--debounce-s" in half.stderr

    async with AsyncClient(debounce_stack.base_url) as owner:
        await owner.create_session()
        made = [
            await owner.submit("echo", {"n": n}, debounce={"key": "client", "seconds": 30})
            for n in (1, 2)
        ]
        assert made[0].id == made[1].id
        assert (await owner.get(made[0].id)).input == {"n": 2}
        with pytest.raises(BadRequest, match="debounce"):
            await owner.submit("echo", {}, debounce={"key": "client", "seconds": CAP_S + 1})
