"""Durable jobs with real processes: checkpointed steps, a person in the loop, pause, drafts.

Every test runs web and worker processes on real Postgres and Redis. How often a step's
work ran is counted by the job itself (tests/durable.py writes it to a file), never read
from jobcast's own records.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from websockets.asyncio.client import connect

from jobcast.endpoints import Endpoints
from jobcast.registry import load_registry
from jobcast.store import Held, Store, apply_schema
from tests.chaos import chaos_env
from tests.conftest import DatabaseFactory
from tests.support import Stack, eventually, launch

MakeStack = Callable[..., Awaitable[Stack]]
MODULES = {"JOBCAST_JOB_MODULES": "tests.durable"}


@pytest.fixture
async def make_stack(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MakeStack]:
    made: list[Stack] = []

    async def make(*, workers: int = 1, **env: str) -> Stack:
        stack = await launch(
            await new_database(),
            endpoints.redis_url,
            tmp_path_factory.mktemp("durable"),
            workers=workers,
            **chaos_env(**MODULES, **env),
        )
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.close()


@pytest.fixture(scope="module")
async def shared(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("durable-shared"),
        **chaos_env(**MODULES),
    )
    try:
        yield stack
    finally:
        stack.close()


async def job_of(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def wait_status(
    client: httpx.AsyncClient, job_id: str, *statuses: str, timeout_s: float = 30.0
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        job = await job_of(client, job_id)
        return job if job["status"] in statuses else None

    return await eventually(reached, timeout_s=timeout_s, what=f"job {job_id} {statuses}")


async def events_of(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/jobs/{job_id}/events")
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    return events


async def create(client: httpx.AsyncClient, job_type: str, **body: Any) -> str:
    expected = 201 if body.get("draft") else 202
    response = await client.post("/api/jobs", json={"type": job_type, **body})
    assert response.status_code == expected, response.text
    job_id: str = response.json()["id"]
    return job_id


def ran(log_path: Path) -> Counter[str]:
    return Counter(log_path.read_text().split()) if log_path.exists() else Counter()


# checkpointed steps


async def test_a_job_killed_in_step_four_runs_steps_one_to_three_once(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    stack = await make_stack()
    log_path = tmp_path / "ran.log"
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await create(
            client, "five_steps", input={"log_path": str(log_path), "hold_in": "four"}
        )
        await eventually(lambda: _true(ran(log_path)["four"] == 1), what="step four started")
        stack.stop("worker-0", signal.SIGKILL)
        stack.start("worker-1")
        job = await wait_status(client, job_id, "completed", "failed", timeout_s=60)
        events = await events_of(client, job_id)
    counts = ran(log_path)
    assert job["status"] == "completed", job
    assert (counts["one"], counts["two"], counts["three"]) == (1, 1, 1), counts
    assert (counts["four"], counts["five"]) == (2, 1), counts
    # the stored results were handed to the second attempt
    assert job["result"] == {"values": [1, 2, 3, 4, 5], "from_checkpoint": 1}
    resumed = [e for e in events if e["kind"] == "resumed"]
    assert len(resumed) == 1 and resumed[0]["step"] == "four", resumed
    assert resumed[0]["skipped"] == ["one", "two", "three"]
    assert resumed[0]["attempt"] == 2 and job["attempts"] == 2
    attempts = {s["name"]: s["attempts"] for s in job["steps"]}
    assert attempts == {"one": 1, "two": 1, "three": 1, "four": 2, "five": 1}
    assert all(s["checkpointed"] for s in job["steps"])
    # no step event of the second attempt is about a step the first completed
    second = events[events.index(resumed[0]) :]
    assert {e["step"] for e in second if e["kind"] == "step"} == {"four", "five"}


async def _true(value: bool) -> bool:
    return value


async def test_a_transient_error_in_step_four_retries_from_step_four(
    shared: Stack, tmp_path: Path
) -> None:
    log_path = tmp_path / "ran.log"
    token = await shared.owner()
    async with shared.client(token) as client:
        job_id = await create(
            client, "five_steps", input={"log_path": str(log_path), "flaky_in": "four"}
        )
        job = await wait_status(client, job_id, "completed", "failed")
        events = await events_of(client, job_id)
    counts = ran(log_path)
    assert job["status"] == "completed" and job["attempts"] == 2, job
    assert counts == Counter(one=1, two=1, three=1, four=2, five=1)
    resumed = [e for e in events if e["kind"] == "resumed"]
    assert [r["step"] for r in resumed] == ["four"]
    progress = [e["progress"] for e in events[events.index(resumed[0]) :] if "progress" in e]
    assert progress == sorted(progress) and progress[0] == 60.0, progress


# a person in the loop


async def ask_job(client: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    job_id = await create(client, "demo", input={"duration": 0.2, "ask": True, **extra})
    return await wait_status(client, job_id, "waiting")


async def test_an_approved_answer_goes_on_at_the_step_that_asked(shared: Stack) -> None:
    token = await shared.owner()
    async with shared.client(token) as client:
        job = await ask_job(client)
        answered = await client.post(
            f"/api/jobs/{job['id']}/input", json={"answer": {"approve": True, "note": "fine"}}
        )
        again = await client.post(
            f"/api/jobs/{job['id']}/input", json={"answer": {"approve": True}}
        )
        done = await wait_status(client, job["id"], "completed", "failed")
        events = await events_of(client, job["id"])
    question = job["input_request"]
    assert question["step"] == "analyze" and question["on_timeout"] == "fail"
    assert question["schema"]["properties"]["approve"] == {
        "type": "boolean",
        "title": "Approve the analysis",
    }
    assert job["step"] == "analyze" and job["attempts"] == 0  # waiting holds no attempt
    assert [s["status"] for s in job["steps"]] == ["completed", "completed", "waiting", "waiting"]
    assert answered.status_code == 202, answered.text
    assert answered.json() == {
        "id": job["id"],
        "status": "pending",
        "step": "analyze",
        "pause_requested": False,
    }
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    assert done["status"] == "completed" and done["input_request"] is None
    kinds = [e["kind"] for e in events]
    asked = events[kinds.index("input_required")]
    given = events[kinds.index("input")]
    resumed = events[kinds.index("resumed")]
    assert asked["status"] == "waiting" and asked["step"] == "analyze"
    assert asked["schema"] == question["schema"] and asked["expires_at"] is None
    assert given["answer"] == {"approve": True, "note": "fine"}
    assert given["answered_by"] and given["expired"] is False
    assert resumed["step"] == "analyze" and resumed["skipped"] == ["validate", "fetch"]
    assert asked["seq"] < given["seq"] < resumed["seq"]
    # validate and fetch ran once: one running event each, over both attempts
    starts = Counter(e["step"] for e in events if e["kind"] == "step" and e["state"] == "running")
    assert starts == Counter(validate=1, fetch=1, analyze=2, report=1)


async def test_a_rejected_answer_fails_the_job_for_good(shared: Stack) -> None:
    token = await shared.owner()
    async with shared.client(token) as client:
        job = await ask_job(client)
        answered = await client.post(
            f"/api/jobs/{job['id']}/input",
            json={"step": "analyze", "answer": {"approve": False, "note": "wrong data"}},
        )
        done = await wait_status(client, job["id"], "completed", "failed")
        late = await client.post(f"/api/jobs/{job['id']}/input", json={"answer": {}})
    assert answered.status_code == 202
    assert done["status"] == "failed" and done["error"]["category"] == "permanent"
    assert "not approved: wrong data" in done["error"]["message"]
    assert late.status_code == 409


async def test_answers_that_do_not_fit_are_refused_naming_the_field(shared: Stack) -> None:
    token = await shared.owner()
    async with shared.client(token) as client:
        job = await ask_job(client)
        url = f"/api/jobs/{job['id']}/input"
        wrong_type = await client.post(url, json={"answer": {"approve": "yes"}})
        missing = await client.post(url, json={"answer": {"note": "hm"}})
        extra = await client.post(url, json={"answer": {"approve": True, "colour": "red"}})
        no_answer = await client.post(url, json={"step": "analyze"})
        other_step = await client.post(url, json={"step": "fetch", "answer": {"approve": True}})
        not_json = await client.post(url, content=b"{", headers={"content-type": "text/plain"})
        still = await job_of(client, job["id"])
        stranger = await shared.owner()
        async with shared.client(stranger) as other:
            foreign = await other.post(url, json={"answer": {"approve": True}})
        not_waiting = await client.post(
            f"/api/jobs/{await create(client, 'noop', input={})}/input",
            json={"answer": {"approve": True}},
        )
    for response, field in (
        (wrong_type, "answer.approve"),
        (missing, "answer.approve"),
        (extra, "answer.colour"),
        (no_answer, "answer"),
    ):
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_input" and error["details"][0]["field"] == field, error
        assert error["message"].startswith(field)
    assert other_step.status_code == 409
    assert not_json.status_code == 400
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "not_found"
    assert not_waiting.status_code in (404, 409) and not_waiting.status_code == 409
    assert still["status"] == "waiting"  # nothing refused changed it


@pytest.mark.parametrize(
    ("on_timeout", "status"), [("fail", "failed"), ("approve", "completed"), ("reject", "failed")]
)
async def test_a_question_past_its_time_limit(shared: Stack, on_timeout: str, status: str) -> None:
    token = await shared.owner()
    async with shared.client(token) as client:
        job = await ask_job(client, ask_timeout_s=1, ask_on_timeout=on_timeout)
        done = await wait_status(client, job["id"], "completed", "failed")
        events = await events_of(client, job["id"])
    assert job["input_request"]["expires_at"] is not None
    assert done["status"] == status, done
    given = [e for e in events if e["kind"] == "input"]
    if on_timeout == "fail":
        assert done["error"]["type"] == "InputExpired" and given == []
    else:
        assert given[0]["expired"] is True and given[0]["answered_by"] is None
        assert given[0]["answer"]["approve"] is (on_timeout == "approve")


async def test_a_waiting_job_can_be_cancelled(shared: Stack) -> None:
    token = await shared.owner()
    async with shared.client(token) as client:
        job = await ask_job(client)
        cancelled = await client.post(f"/api/jobs/{job['id']}/cancel")
        answer = await client.post(
            f"/api/jobs/{job['id']}/input", json={"answer": {"approve": True}}
        )
        after = await job_of(client, job["id"])
    assert cancelled.status_code == 202
    assert answer.status_code == 409
    assert after["status"] == "cancelled" and after["input_request"] is None


# pause, resume and drafts


async def test_pause_stops_at_a_step_boundary_and_resume_goes_on_from_there(
    shared: Stack,
) -> None:
    token = await shared.owner()
    async with shared.client(token) as client:
        job_id = await create(client, "demo", input={"duration": 3})

        async def in_fetch() -> bool:
            return (await job_of(client, job_id))["step"] == "fetch"

        await eventually(in_fetch, what="the fetch step")
        paused = await client.post(f"/api/jobs/{job_id}/pause")
        asked = await job_of(client, job_id)
        stopped = await wait_status(client, job_id, "paused")
        twice = await client.post(f"/api/jobs/{job_id}/pause")
        resumed = await client.post(f"/api/jobs/{job_id}/resume")
        done = await wait_status(client, job_id, "completed", "failed")
        again = await client.post(f"/api/jobs/{job_id}/resume")
        finished = await client.post(f"/api/jobs/{job_id}/pause")
        events = await events_of(client, job_id)
    assert paused.status_code == 202 and paused.json()["pause_requested"] is True
    assert asked["pause_requested"] is True and asked["status"] == "running"
    # it finished the step it was in, and started no other
    assert [s["status"] for s in stopped["steps"]] == [
        "completed",
        "completed",
        "waiting",
        "waiting",
    ]
    assert stopped["attempts"] == 0 and stopped["pause_requested"] is False
    assert twice.status_code == 409
    assert resumed.status_code == 202 and resumed.json()["status"] == "pending"
    assert done["status"] == "completed" and done["attempts"] == 1
    assert again.status_code == 409 and finished.status_code == 409
    resumed_events = [e for e in events if e["kind"] == "resumed"]
    assert [e["step"] for e in resumed_events] == ["analyze"]
    statuses = [e["status"] for e in events if e["kind"] == "status"]
    assert statuses == ["pending", "running", "paused", "pending", "running", "completed"]


async def test_a_pending_job_pauses_at_once(shared: Stack) -> None:
    token = await shared.owner()
    async with shared.client(token) as client:
        job_id = await create(client, "demo", input={"duration": 0.2}, delay_seconds=30)
        paused = await client.post(f"/api/jobs/{job_id}/pause")
        job = await job_of(client, job_id)
        resumed = await client.post(f"/api/jobs/{job_id}/resume")
        done = await wait_status(client, job_id, "completed")
        other = await create(client, "demo", input={}, delay_seconds=30)
        await client.post(f"/api/jobs/{other}/pause")
        cancelled = await client.post(f"/api/jobs/{other}/cancel")
        draft = await create(client, "noop", input={}, draft=True)
        pause_draft = await client.post(f"/api/jobs/{draft}/pause")
        waiting = await ask_job(client)
        pause_waiting = await client.post(f"/api/jobs/{waiting['id']}/pause")
    assert paused.status_code == 202 and paused.json()["status"] == "paused"
    assert job["status"] == "paused"
    assert resumed.status_code == 202 and done["attempts"] == 1
    assert cancelled.status_code == 202
    assert pause_draft.status_code == 409 and pause_waiting.status_code == 409


async def test_drafts_are_stored_edited_and_started(shared: Stack) -> None:
    token = await shared.owner()
    async with shared.client(token) as client:
        job_id = await create(client, "demo", input={"duration": 5}, draft=True)
        draft = await job_of(client, job_id)
        edited = await client.patch(f"/api/jobs/{job_id}", json={"input": {"duration": 0.2}})
        bad = await client.patch(f"/api/jobs/{job_id}", json={"input": {"duration": -1}})
        unknown = await client.patch(f"/api/jobs/{job_id}", json={"input": {}, "type": "noop"})
        started = await client.post(f"/api/jobs/{job_id}/start")
        again = await client.post(f"/api/jobs/{job_id}/start")
        late_edit = await client.patch(f"/api/jobs/{job_id}", json={"input": {"duration": 1}})
        done = await wait_status(client, job_id, "completed")
        never = await create(client, "noop", input={}, draft=True)
        cancelled = await client.post(f"/api/jobs/{never}/cancel")
        not_draft = await client.post(f"/api/jobs/{await create(client, 'noop', input={})}/start")
        stranger = await shared.owner()
        async with shared.client(stranger) as other:
            foreign = await other.patch(f"/api/jobs/{never}", json={"input": {}})
    assert draft["status"] == "draft" and draft["attempts"] == 0
    assert edited.status_code == 200, edited.text
    assert edited.json()["input"]["duration"] == 0.2 and edited.json()["status"] == "draft"
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "duration"
    assert unknown.status_code == 422
    assert started.status_code == 202 and started.json()["status"] == "pending"
    assert again.status_code == 409 and late_edit.status_code == 409
    assert done["input"]["duration"] == 0.2
    assert cancelled.status_code == 202
    assert not_draft.status_code == 409
    assert foreign.status_code == 404


# many waiting jobs, a Redis wipe and restarts


async def _statuses(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        found = await conn.fetch("SELECT status, count(*)::int AS n FROM jobs GROUP BY status")
    finally:
        await conn.close()
    return {r["status"]: r["n"] for r in found}


async def _wipe_redis(stack: Stack, job_ids: list[str]) -> int:
    """Delete every key of the stack's prefix and arq's keys of its jobs."""
    redis = aioredis.Redis.from_url(stack.redis_url)
    try:
        keys = [k async for k in redis.scan_iter(f"{stack.env['JOBCAST_REDIS_PREFIX']}*")]
        keys += [
            f"{prefix}{job_id}"
            for job_id in job_ids
            for prefix in (job_key_prefix, in_progress_key_prefix, result_key_prefix)
        ]
        deleted = 0
        for start in range(0, len(keys), 500):
            deleted += await redis.delete(*keys[start : start + 500])
        return deleted
    finally:
        await redis.aclose()


@pytest.mark.timeout(600)
async def test_a_thousand_waiting_jobs_hold_no_worker_and_survive_a_redis_wipe_and_restarts(
    make_stack: MakeStack,
) -> None:
    waiting_n, running_n, concurrency = 1000, 50, 10
    stack = await make_stack(JOBCAST_WORKER_CONCURRENCY=str(concurrency))
    token = await stack.owner()
    gate = asyncio.Semaphore(16)

    async with stack.client(token) as client:

        async def one(job_input: dict[str, Any]) -> str:
            # a key of its own: a submit whose connection dropped under load is sent again
            # and finds the job it made, if it made one
            body = {"type": "demo", "input": job_input, "idempotency_key": uuid.uuid4().hex}
            async with gate:
                for _ in range(3):
                    try:
                        response = await client.post("/api/jobs", json=body)
                        break
                    except httpx.TransportError:
                        continue
            assert response.status_code in (200, 202), response.text
            job_id: str = response.json()["id"]
            return job_id

        began = time.monotonic()
        asking = [one({"duration": 0, "ask": True}) for _ in range(waiting_n)]
        others = [one({"duration": 0.2}) for _ in range(running_n)]
        ids = await asyncio.gather(*asking, *others)
        submitted_s = time.monotonic() - began
        waiting_ids, other_ids = ids[:waiting_n], ids[waiting_n:]

        async def settled() -> dict[str, int] | None:
            counts = await _statuses(stack.database_url)
            done = counts.get("waiting") == waiting_n and counts.get("completed") == running_n
            return counts if done else None

        counts = await eventually(settled, timeout_s=300, interval_s=0.5, what="all settled")
        settled_s = time.monotonic() - began
        redis = aioredis.Redis.from_url(stack.redis_url)
        try:
            queued = await redis.zcard(f"{stack.env['JOBCAST_REDIS_PREFIX']}:queue")
        finally:
            await redis.aclose()
        others_done = [await job_of(client, i) for i in other_ids]

        # Redis loses everything, and both processes restart: the waiting jobs are in Postgres
        wiped = await _wipe_redis(stack, ids)
        stack.stop("web")
        stack.stop("worker-0")
        stack.start("web")
        stack.start("worker-1")
        await stack.wait_ready()
        answered = waiting_ids[:20]
        for job_id in answered:
            response = await client.post(
                f"/api/jobs/{job_id}/input", json={"answer": {"approve": True}}
            )
            assert response.status_code == 202, response.text
        finished = [await wait_status(client, i, "completed", "failed") for i in answered]
        after = await _statuses(stack.database_url)
    print(
        f"{waiting_n} waiting and {running_n} run to completion with concurrency {concurrency} "
        f"in {settled_s:.1f} s (submitted in {submitted_s:.1f} s); {wiped} Redis keys wiped"
    )
    assert counts == {"waiting": waiting_n, "completed": running_n}
    assert settled_s < 300
    assert queued == 0  # no waiting job is on arq's queue
    assert all(j["status"] == "completed" for j in others_done)
    assert [j["status"] for j in finished] == ["completed"] * len(answered)
    assert after == {"waiting": waiting_n - len(answered), "completed": running_n + len(answered)}


# caps and the schema


async def test_waiting_paused_and_drafts_count_against_no_cap(make_stack: MakeStack) -> None:
    stack = await make_stack(JOBCAST_MAX_ACTIVE_PER_OWNER="2")
    token = await stack.owner()
    async with stack.client(token) as client:
        asking = [await ask_job(client) for _ in range(2)]
        delayed = await create(client, "demo", input={}, delay_seconds=60)
        paused = await client.post(f"/api/jobs/{delayed}/pause")
        drafts = [await create(client, "noop", input={}, draft=True) for _ in range(3)]
        # two waiting, one paused and three drafts: the owner still has room for two
        running = [await create(client, "demo", input={"duration": 30}) for _ in range(2)]
        full = await client.post("/api/jobs", json={"type": "noop", "input": {}})
        start_at_cap = await client.post(f"/api/jobs/{drafts[0]}/start")
        draft_now = await job_of(client, drafts[0])
        # an answer and a resume go on at the cap: that work was admitted already
        answer = await client.post(
            f"/api/jobs/{asking[0]['id']}/input", json={"answer": {"approve": False}}
        )
        resume = await client.post(f"/api/jobs/{delayed}/resume")
        for job_id in running:
            assert (await client.post(f"/api/jobs/{job_id}/cancel")).status_code == 202
    assert paused.status_code == 202
    assert full.status_code == 429 and full.headers["Retry-After"]
    assert start_at_cap.status_code == 429 and draft_now["status"] == "draft"
    assert answer.status_code == 202 and resume.status_code == 202


async def test_the_schema_upgrades_an_older_database_keeping_its_rows(
    new_database: DatabaseFactory,
) -> None:
    dsn = await new_database()
    conn = await asyncpg.connect(dsn)
    try:  # as a database made before durable jobs
        await conn.execute(
            """
            DROP TABLE job_inputs;
            ALTER TABLE jobs DROP COLUMN pause_requested;
            ALTER TABLE job_steps DROP COLUMN result, DROP COLUMN attempts;
            ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
            ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
                CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled'));
            ALTER TABLE job_events DROP CONSTRAINT job_events_kind_check;
            ALTER TABLE job_events ADD CONSTRAINT job_events_kind_check
                CHECK (kind IN ('status', 'step', 'progress'));
            INSERT INTO owners (id, token_hash, webhook_secret)
                VALUES ('00000000-0000-0000-0000-000000000001', '\\x00', 's');
            INSERT INTO jobs (id, owner_id, type, status)
                VALUES ('00000000-0000-0000-0000-0000000000aa',
                        '00000000-0000-0000-0000-000000000001', 'demo', 'completed');
            INSERT INTO job_steps (job_id, position, name, title, weight, status)
                VALUES ('00000000-0000-0000-0000-0000000000aa', 1, 'fetch', 'Fetch', 1,
                        'completed');
            """
        )
        for _ in range(2):  # applying it twice is harmless
            await apply_schema(dsn)
        job = await conn.fetchrow("SELECT status, pause_requested FROM jobs")
        step = await conn.fetchrow("SELECT status, result, attempts FROM job_steps")
        await conn.execute("UPDATE jobs SET status = 'waiting'")  # the new statuses fit
        await conn.execute(
            "INSERT INTO job_events (job_id, seq, kind, payload) "
            "SELECT id, 1, 'input_required', '{}' FROM jobs"
        )
    finally:
        await conn.close()
    assert dict(job) == {"status": "completed", "pause_requested": False}
    assert dict(step) == {"status": "completed", "result": None, "attempts": 0}


async def test_a_step_with_its_own_attempts_is_tried_again_within_the_attempt(
    shared: Stack, tmp_path: Path
) -> None:
    log_path = tmp_path / "ran.log"
    token = await shared.owner()
    async with shared.client(token) as client:
        job_id = await create(
            client, "five_steps", input={"log_path": str(log_path), "flaky_in": "two"}
        )
        job = await wait_status(client, job_id, "completed", "failed")
        events = await events_of(client, job_id)
    assert job["status"] == "completed" and job["attempts"] == 1, job
    assert ran(log_path) == Counter(one=1, two=2, three=1, four=1, five=1)
    assert {s["name"]: s["attempts"] for s in job["steps"]}["two"] == 2
    states = [e["state"] for e in events if e["kind"] == "step" and e["step"] == "two"]
    assert states == ["running", "failed", "running", "completed"]
    assert not any(e["kind"] == "resumed" for e in events)


async def test_a_question_with_a_wrong_schema_fails_the_job_not_the_worker(
    shared: Stack, tmp_path: Path
) -> None:
    token = await shared.owner()
    async with shared.client(token) as client:
        job_id = await create(
            client,
            "five_steps",
            input={"log_path": str(tmp_path / "a.log"), "bad_question": True},
        )
        job = await wait_status(client, job_id, "completed", "failed")
        after = await create(client, "five_steps", input={"log_path": str(tmp_path / "b.log")})
        fine = await wait_status(client, after, "completed", "failed")
    assert job["status"] == "failed" and job["error"]["category"] == "permanent"
    assert "wrong answer schema" in job["error"]["message"]
    assert "a colour" in job["error"]["message"]
    assert fine["status"] == "completed"


async def test_the_owners_feed_says_when_a_job_needs_input(shared: Stack) -> None:
    """What a toast in every tab of the owner is made from: the feed carries the question."""
    token = await shared.owner()
    url = f"{shared.ws_base}/ws"
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        async with shared.client(token) as client:
            job = await ask_job(client)
            await client.post(f"/api/jobs/{job['id']}/input", json={"answer": {"approve": True}})
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(20):
            while not any(m.get("kind") == "input" for m in seen):
                message = orjson.loads(await ws.recv())
                if message.get("job_id") == job["id"]:
                    seen.append(message)
    asked = next(m for m in seen if m.get("kind") == "input_required")
    assert asked["status"] == "waiting" and asked["prompt"] == "Approve the analysis?"
    assert asked["schema"]["required"] == ["approve"]


async def test_the_sweep_neither_queues_nor_deletes_waiting_paused_or_draft_jobs(
    new_database: DatabaseFactory,
) -> None:
    registry = load_registry(["tests.durable"])
    demo = registry.get("demo")
    async with Store.open(await new_database()) as store:
        owner = await store.create_owner(uuid.uuid4().hex)
        made = [
            await store.create_job(owner_id=owner, job_type=demo, params={}, draft=draft)
            for draft in (False, False, True)
        ]
        waiting, paused, draft = (m.job.id for m in made if m is not None)
        claim = await store.claim(waiting)
        assert claim is not None and not isinstance(claim, Held)
        asked = await store.wait_for_input(
            waiting,
            claim.attempt,
            step="analyze",
            prompt="?",
            schema={"type": "object"},
            timeout_s=None,
            on_timeout="fail",
            default=None,
        )
        assert await store.pause(paused, owner) is not False
        await store.pool.execute("UPDATE jobs SET updated_at = now() - interval '30 days'")
        pending = await store.pending(0)
        deleted = await store.delete_expired(0, 0, 0)
        left = {j.id: j.status.value for j in await store.list_jobs(owner)}
    assert asked is not None and asked.kind.value == "input_required"
    assert pending == []
    assert deleted == 0
    assert left == {waiting: "waiting", paused: "paused", draft: "draft"}
