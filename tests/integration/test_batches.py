"""Batches: many jobs in one request, all stored or none, followed together."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from jobcast.endpoints import Endpoints
from jobcast.store import Store
from tests.conftest import DatabaseFactory
from tests.integration.test_errors import assert_error
from tests.support import Stack, declared_steps, eventually, launch

OWNER_CAP = 10


@pytest.fixture(scope="module")
async def batch_stack(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("batches"),
        JOBCAST_MAX_ACTIVE_PER_OWNER=str(OWNER_CAP),
    )
    try:
        yield stack
    finally:
        stack.close()


async def job_count(stack: Stack) -> int:
    async with Store.open(stack.database_url, max_size=1) as store:
        count: int = await store.pool.fetchval("SELECT count(*) FROM jobs")
    return count


async def test_a_batch_runs_and_is_followed_together(batch_stack: Stack) -> None:
    owner = await batch_stack.owner()
    jobs = [{"type": "demo", "input": {"duration": 0.3}} for _ in range(3)]
    async with batch_stack.client(owner) as client:
        response = await client.post("/api/jobs/batch", json={"jobs": jobs})
        assert response.status_code == 202, response.text
        accepted = response.json()
        batch_id = accepted["batch_id"]
        assert len({j["id"] for j in accepted["jobs"]}) == len(jobs)
        messages: list[dict[str, Any]] = []
        headers = {"Authorization": f"Bearer {owner}"}
        async with connect(
            f"{batch_stack.ws_base}/ws/batches/{batch_id}", additional_headers=headers
        ) as ws:
            try:
                async for raw in ws:
                    messages.append(orjson.loads(raw))
            except ConnectionClosed:
                pass
            assert (ws.close_code, ws.close_reason) == (1000, "batch finished")
        assert messages[0]["type"] == "snapshot" and messages[0]["batch"]["size"] == len(jobs)
        ended = {
            m["job_id"]
            for m in messages[1:]
            if m.get("kind") == "status" and m["status"] == "completed"
        }
        snapshot_done = {
            j["id"] for j in messages[0]["batch"]["jobs"] if j["status"] == "completed"
        }
        assert ended | snapshot_done == {j["id"] for j in accepted["jobs"]}
        view = (await client.get(f"/api/batches/{batch_id}")).json()
        assert view["counts"] == {"completed": len(jobs)}
        assert (view["progress"], view["finished"]) == (100.0, True)
        assert [j["id"] for j in view["jobs"]] == [j["id"] for j in accepted["jobs"]]
    async with batch_stack.client(await batch_stack.owner()) as stranger:
        assert_error(await stranger.get(f"/api/batches/{batch_id}"), 404, "not_found")


async def test_a_bad_batch_is_refused_whole_naming_the_job_and_field(batch_stack: Stack) -> None:
    owner = await batch_stack.owner()
    before = await job_count(batch_stack)
    good = {"type": "noop", "delay_seconds": 600}
    async with batch_stack.client(owner) as client:
        bad = [good, good, {"type": "demo", "input": {"duration": "long"}}, good]
        error = assert_error(
            await client.post("/api/jobs/batch", json={"jobs": bad}), 422, "invalid_input"
        )
        assert error["details"][0]["field"] == "jobs.2.input.duration", error
        unknown = [good, {"type": "nope"}]
        error = assert_error(
            await client.post("/api/jobs/batch", json={"jobs": unknown}), 422, "invalid_input"
        )
        assert error["details"][0]["field"] == "jobs.1.type", error
        too_many = {"jobs": [good] * 1001}
        error = assert_error(
            await client.post("/api/jobs/batch", json=too_many), 422, "invalid_input"
        )
        assert error["details"][0]["field"] == "jobs", error
        assert_error(await client.post("/api/jobs/batch", json={"jobs": []}), 422, "invalid_input")
        tagged = [good, {**good, "tags": [f"t{i}" for i in range(11)]}]
        error = assert_error(
            await client.post("/api/jobs/batch", json={"jobs": tagged}), 422, "invalid_input"
        )
        assert error["details"][0]["field"] == "jobs.1.tags", error
        twice = [{**good, "idempotency_key": "k"}, {**good, "idempotency_key": "k"}]
        error = assert_error(
            await client.post("/api/jobs/batch", json={"jobs": twice}), 422, "invalid_input"
        )
        assert error["details"][0]["field"] == "jobs.1.idempotency_key", error
        # past the owner's cap part way: nothing of the batch is stored
        over = {"jobs": [good] * (OWNER_CAP + 1)}
        assert_error(await client.post("/api/jobs/batch", json=over), 429, "too_many_requests")
    assert await job_count(batch_stack) == before


async def test_idempotency_keys_hold_per_job_in_a_batch(batch_stack: Stack) -> None:
    owner = await batch_stack.owner()
    jobs = [{"type": "noop", "delay_seconds": 600, "idempotency_key": f"k{i}"} for i in range(3)]
    async with batch_stack.client(owner) as client:
        single = await client.post("/api/jobs", json=jobs[1])
        first = (await client.post("/api/jobs/batch", json={"jobs": jobs})).json()
        again = (await client.post("/api/jobs/batch", json={"jobs": jobs})).json()
    ids = [j["id"] for j in first["jobs"]]
    assert ids[1] == single.json()["id"]  # the job its key had made
    assert [j["id"] for j in again["jobs"]] == ids and again["batch_id"] != first["batch_id"]


async def test_a_batch_of_a_thousand_is_one_request(batch_stack: Stack) -> None:
    async with Store.open(batch_stack.database_url, max_size=1) as store:
        key = await store.create_app_key("bulk")
    jobs = [{"type": "noop", "input": {}, "tags": ["bulk"]} for _ in range(1000)]
    async with batch_stack.client(key.bearer) as client:
        started = time.perf_counter()
        response = await client.post("/api/jobs/batch", json={"jobs": jobs}, timeout=60)
        accept_s = time.perf_counter() - started
        assert response.status_code == 202, response.text
        batch_id = response.json()["batch_id"]
        assert len({j["id"] for j in response.json()["jobs"]}) == len(jobs)

        async def finished() -> dict[str, Any] | None:
            view: dict[str, Any] = (await client.get(f"/api/batches/{batch_id}")).json()
            return view if view["finished"] else None

        view = await eventually(finished, timeout_s=120, interval_s=0.5, what="the batch finished")
    assert view["counts"] == {"completed": len(jobs)}
    print(f"a batch of {len(jobs)} accepted in {accept_s:.2f} s")


async def test_each_job_of_a_batch_is_stored_with_its_own_fields(batch_stack: Stack) -> None:
    async with Store.open(batch_stack.database_url, max_size=1) as store:
        key = await store.create_app_key("fields")
    jobs = [
        {
            "type": "demo",
            "input": {"duration": i + 1},
            "delay_seconds": 600 + i,
            "priority": i - 1,
            "tags": [f"t{i}", "all"],
            "metadata": {"i": i},
            "subject": f"user-{i}",
            "tenant": "org" if i else None,
        }
        for i in range(3)
    ]
    async with batch_stack.client(key.bearer) as client:
        steps = await declared_steps(client, "demo")
        response = await client.post("/api/jobs/batch", json={"jobs": jobs})
        assert response.status_code == 202, response.text
        ids = [j["id"] for j in response.json()["jobs"]]
        views = [(await client.get(f"/api/jobs/{i}")).json() for i in ids]
    stored = [
        {
            "type": v["type"],
            "duration": v["input"]["duration"],
            "priority": v["priority"],
            "tags": v["tags"],
            "metadata": v["metadata"],
            "subject": v["subject"],
            "tenant": v["tenant"],
            "steps": [s["name"] for s in v["steps"]],
            "status": v["status"],
            "message": v["message"],
        }
        for v in views
    ]
    assert stored == [
        {
            **{k: job[k] for k in ("type", "priority", "tags", "metadata", "subject")},
            "duration": job["input"]["duration"],
            "tenant": job["tenant"],
            "steps": steps,
            "status": "pending",
            "message": f"Scheduled to start in {job['delay_seconds']} s",
        }
        for job in jobs
    ]
