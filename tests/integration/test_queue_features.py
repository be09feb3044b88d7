"""Queue features against the running service: priority, schedules, idempotency, expiry,
children, per-type caps, recurring jobs, webhooks, uploads, and job types of one's own
(examples/wordcount.py loaded by JOBCAST_JOB_MODULES, as docs/job-types.md starts)."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as aioredis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from jobcast.endpoints import Endpoints, free_port
from jobcast.schedules import SCHEDULER_OWNER, Schedule
from jobcast.webhooks import SIGNATURE_HEADER, verify
from tests.conftest import DatabaseFactory
from tests.integration.test_errors import assert_error
from tests.integration.test_reliability import wait_status
from tests.support import ROOT, Stack, eventually, launch, submit, watch

EXTRA = {
    "JOBCAST_JOB_MODULES": "tests.jobtypes,wordcount",
    "PYTHONPATH": str(ROOT / "examples"),
    "JOBCAST_WEBHOOK_HOSTS": "127.0.0.1",
    "JOBCAST_WEBHOOK_RETRY_BASE_S": "0.3",
    "JOBCAST_REAPER_INTERVAL_S": "0.3",
    "JOBCAST_MAX_UPLOAD_BYTES": "65536",
    "JOBCAST_SCHEDULES": orjson.dumps(
        [
            {"name": "every-minute", "cron": "* * * * *", "type": "noop"},
        ]
    ).decode(),
}


@pytest.fixture(scope="module")
async def featured(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """A service with the test job types, a schedule, webhooks to loopback, and two workers."""
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("featured"),
        workers=2,
        **EXTRA,
    )
    try:
        yield stack
    finally:
        stack.close()


# priority


async def test_under_a_backlog_higher_priority_starts_first(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("priority"),
        workers=0,
        JOBCAST_WORKER_CONCURRENCY="1",
    )
    try:
        token = await stack.owner()
        submitted: list[tuple[int, str]] = []
        async with stack.client(token) as client:
            # the backlog builds up while no worker runs
            for priority in (0, 0, 5, 0, 10, -5, 5, 0, 10, -5):
                response = await client.post(
                    "/api/jobs", json={"type": "noop", "priority": priority}
                )
                assert response.status_code == 202
                submitted.append((priority, response.json()["id"]))
            stack.start("worker-0")
            jobs = [await wait_status(client, job_id, "completed") for _, job_id in submitted]
    finally:
        stack.close()
    started = sorted(zip(submitted, jobs, strict=True), key=lambda pair: pair[1]["started_at"])
    order = [priority for (priority, _), _ in started]
    assert order == sorted(order, reverse=True), order
    # within one priority, submit order
    for level in (10, 5, 0, -5):
        ids = [job_id for (priority, job_id), _ in started if priority == level]
        assert ids == [job_id for priority, job_id in submitted if priority == level]


# scheduled jobs


async def test_a_running_job_is_off_arqs_queue_and_a_finished_one_leaves_nothing(
    stack: Stack,
) -> None:
    """arq keeps a job on its queue until it ends, and each worker's poll (every 0.05 s)
    looks at every due job there: a claimed job is taken off, so the jobs running cost
    the polls nothing."""
    queue = f"{stack.env['JOBCAST_REDIS_PREFIX']}:queue"
    redis = aioredis.Redis.from_url(stack.redis_url)
    token = await stack.owner()
    try:
        async with stack.client(token) as client:
            job_id = await submit(client, "demo", duration=30)
            await wait_status(client, job_id, "running")

            async def off_queue() -> bool:  # taken off just after the claim is written
                return await redis.zscore(queue, job_id) is None

            await eventually(off_queue, what="the running job off arq's queue")
            assert (await client.get(f"/api/jobs/{job_id}")).json()["status"] == "running"
            assert (await client.post(f"/api/jobs/{job_id}/cancel")).status_code == 202
            await wait_status(client, job_id, "cancelled")

        async def nothing_left() -> bool:  # arq's keys go as its run of the job ends
            return [k async for k in redis.scan_iter(f"*{job_id}*")] == []

        await eventually(nothing_left, what="no key of the job left in Redis")
    finally:
        await redis.aclose()


async def test_a_delayed_job_waits_pending_with_its_time_shown(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        response = await client.post("/api/jobs", json={"type": "noop", "delay_seconds": 1.5})
        job = (await client.get(f"/api/jobs/{response.json()['id']}")).json()
        assert job["status"] == "pending" and job["message"].startswith("Scheduled")
        run_at = datetime.fromisoformat(job["run_at"])
        created = datetime.fromisoformat(job["created_at"])
        assert 1.4 <= (run_at - created).total_seconds() <= 1.6
        done = await wait_status(client, job["id"], "completed")
    assert datetime.fromisoformat(done["started_at"]) >= run_at


async def test_run_at_schedules_a_job(stack: Stack) -> None:
    token = await stack.owner()
    start = datetime.now(UTC) + timedelta(seconds=1)
    async with stack.client(token) as client:
        response = await client.post(
            "/api/jobs", json={"type": "noop", "run_at": start.isoformat()}
        )
        assert response.status_code == 202
        done = await wait_status(client, response.json()["id"], "completed")
        both = await client.post(
            "/api/jobs", json={"type": "noop", "run_at": start.isoformat(), "delay_seconds": 3}
        )
        far = await client.post(
            "/api/jobs", json={"type": "noop", "run_at": (start + timedelta(days=40)).isoformat()}
        )
        naive = await client.post("/api/jobs", json={"type": "noop", "run_at": "2030-01-01T00:00"})
    assert datetime.fromisoformat(done["started_at"]) >= start
    for answer in (both, far, naive):
        assert_error(answer, 422, "invalid_input")


# idempotency


async def test_the_same_idempotency_key_returns_the_same_job(stack: Stack) -> None:
    alice, bob = await stack.owner(), await stack.owner()
    body = {"type": "demo", "input": {"duration": 0.2}, "idempotency_key": "order-42"}
    async with stack.client(alice) as a, stack.client(bob) as b:
        first = await a.post("/api/jobs", json=body)
        again = await a.post("/api/jobs", json=body)
        assert first.status_code == 202 and again.status_code == 200
        assert again.json() | {"status": first.json()["status"]} == first.json()
        # the key is the owner's: the same key from another owner makes that owner's own job
        theirs = await b.post("/api/jobs", json=body)
        assert theirs.status_code == 202, theirs.text
        mine, their_id = first.json()["id"], theirs.json()["id"]
        theirs_again = await b.post("/api/jobs", json=body)
        # and the first owner's key still finds the first owner's job
        mine_after = await a.post("/api/jobs", json=body)
        listed_a = [j["id"] for j in (await a.get("/api/jobs")).json()["jobs"]]
        listed_b = [j["id"] for j in (await b.get("/api/jobs")).json()["jobs"]]
        crossed = await a.get(f"/api/jobs/{their_id}")
    assert their_id != mine
    assert theirs_again.status_code == 200 and theirs_again.json()["id"] == their_id
    assert mine_after.status_code == 200 and mine_after.json()["id"] == mine
    assert listed_a == [mine] and listed_b == [their_id]
    assert crossed.status_code == 404


async def test_an_idempotency_key_is_free_again_after_24_hours(stack: Stack) -> None:
    token = await stack.owner()
    body = {"type": "noop", "idempotency_key": "nightly"}
    async with stack.client(token) as client:
        first = (await client.post("/api/jobs", json=body)).json()["id"]
        conn = await asyncpg.connect(stack.database_url)
        try:
            await conn.execute(
                "UPDATE jobs SET created_at = now() - interval '25 hours' WHERE id = $1", first
            )
        finally:
            await conn.close()
        second = await client.post("/api/jobs", json=body)
    assert second.status_code == 202 and second.json()["id"] != first


# result expiry


async def test_an_expired_result_answers_410(featured: Stack) -> None:
    token = await featured.owner()
    async with featured.client(token) as client:
        job_id = await submit(client, "short_lived", seconds=0)
        await wait_status(client, job_id, "completed")

        async def expired() -> httpx.Response | None:
            response = await client.get(f"/api/jobs/{job_id}/result")
            return response if response.status_code == 410 else None

        gone = await eventually(expired, what="the result expiring")
        swept = await eventually(
            lambda: _job_field(client, job_id, "result_expired_at"), what="the sweep"
        )
        job = (await client.get(f"/api/jobs/{job_id}")).json()
    error = assert_error(gone, 410, "gone")
    assert "expired" in error["message"] and "1 seconds" in error["message"]
    assert swept and job["result"] is None


async def _job_field(client: httpx.AsyncClient, job_id: str, field: str) -> Any:
    return (await client.get(f"/api/jobs/{job_id}")).json()[field]


# children


async def test_a_parent_waits_for_its_children_and_counts_their_progress(featured: Stack) -> None:
    token = await featured.owner()
    async with featured.client(token) as client:
        job_id = await submit(client, "parent", children=3, duration=1)
        seen = await watch(featured, token, job_id)
        job = (await client.get(f"/api/jobs/{job_id}")).json()
    assert job["status"] == "completed"
    assert job["result"] == {"children": ["completed"] * 3}
    assert len(job["children"]) == 3 and all(c["type"] == "demo" for c in job["children"])
    waiting = [e for e in seen.events if e["kind"] == "progress" and e["step"] == "wait"]
    assert len({round(e["progress"]) for e in waiting}) >= 3  # it moved while children ran
    assert any("child jobs done" in (e["message"] or "") for e in waiting)
    async with featured.client(token) as client:
        child = (await client.get(f"/api/jobs/{job['children'][0]['id']}")).json()
    assert child["parent_id"] == job_id


async def test_cancelling_a_parent_cancels_its_children(featured: Stack) -> None:
    token = await featured.owner()
    async with featured.client(token) as client:
        job_id = await submit(client, "parent", children=2, duration=20)

        async def children() -> list[dict[str, Any]] | None:
            kids = (await client.get(f"/api/jobs/{job_id}")).json()["children"]
            return kids if len(kids) == 2 else None

        kids = await eventually(children, what="the children starting")
        assert (await client.post(f"/api/jobs/{job_id}/cancel")).status_code == 202
        statuses = [(await client.get(f"/api/jobs/{k['id']}")).json()["status"] for k in kids]
    assert statuses == ["cancelled", "cancelled"]


# per-type concurrency caps


async def test_a_type_capped_at_one_runs_one_at_a_time(featured: Stack) -> None:
    token = await featured.owner()
    async with featured.client(token) as client:
        ids = [await submit(client, "capped", seconds=0.6) for _ in range(3)]

        async def one_waits() -> str | None:
            for job_id in ids:
                job = (await client.get(f"/api/jobs/{job_id}")).json()
                if job["status"] == "pending" and "at most 1 capped job" in (job["message"] or ""):
                    return str(job["message"])
            return None

        message = await eventually(one_waits, what="a job saying why it waits")
        jobs = [await wait_status(client, job_id, "completed") for job_id in ids]
    spans = sorted((j["started_at"], j["finished_at"]) for j in jobs)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, spans  # never two at once
    assert message.startswith("Waiting")


# recurring jobs


async def test_a_schedule_makes_one_job_per_tick_with_two_workers(featured: Stack) -> None:
    schedule = Schedule.model_validate(orjson.loads(EXTRA["JOBCAST_SCHEDULES"])[0])
    interval_s = float(EXTRA["JOBCAST_REAPER_INTERVAL_S"])
    conn = await asyncpg.connect(featured.database_url)
    try:

        async def scheduled() -> list[asyncpg.Record] | None:
            rows = await conn.fetch(
                "SELECT id, status, created_at FROM jobs WHERE owner_id = $1", SCHEDULER_OWNER
            )
            return rows or None

        await eventually(scheduled, what="the scheduled job")
        # sweeps go on after the tick's job exists: each sweep takes the lease for three
        # intervals from its start, so an expiry three intervals on means three more sweeps
        lease_then = await conn.fetchval("SELECT max(expires_at) FROM leases")

        async def three_more_sweeps() -> bool:
            lease_now = await conn.fetchval("SELECT max(expires_at) FROM leases")
            return bool((lease_now - lease_then).total_seconds() >= 3 * interval_s)

        await eventually(three_more_sweeps, what="three more sweeps")
        rows = await scheduled()
    finally:
        await conn.close()
    assert rows
    # every tick from a minute before the first scheduled job was made, to now
    moments = [min(r["created_at"] for r in rows) - timedelta(minutes=1)]
    now = datetime.now(UTC)
    while moments[-1] < now:
        moments.append(min(moments[-1] + timedelta(minutes=1), now))
    ticks = {schedule.last_tick(moment) for moment in moments}
    ids = [str(r["id"]) for r in rows]
    assert len(ids) <= len(ticks), (rows, ticks)
    # each job's id is its tick's, so however many workers see a tick, one job is made
    assert set(ids) <= {str(schedule.job_id(tick)) for tick in ticks}, (ids, ticks)


# webhooks


class Receiver:
    """A loopback web server that records webhook calls and answers as told."""

    def __init__(self) -> None:
        self.port = free_port()
        self.calls: list[tuple[bytes, dict[str, str]]] = []
        self.answers: list[int] = []

        async def hook(request: Request) -> Response:
            self.calls.append((await request.body(), dict(request.headers)))
            return Response(status_code=self.answers.pop(0) if self.answers else 200)

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
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


async def test_a_finished_job_calls_its_signed_webhook_and_retries(
    featured: Stack, receiver: Receiver
) -> None:
    async with httpx.AsyncClient(base_url=featured.base_url) as anonymous:
        session = (await anonymous.post("/api/sessions")).json()
    receiver.answers = [500]  # the first try fails
    async with featured.client(session["token"]) as client:
        response = await client.post(
            "/api/jobs", json={"type": "noop", "callback_url": receiver.url}
        )
        job_id = response.json()["id"]

        async def delivered() -> dict[str, Any] | None:
            webhook = (await client.get(f"/api/jobs/{job_id}")).json()["webhook"]
            return (
                webhook
                if webhook["deliveries"][-1:] and webhook["deliveries"][-1]["status"] == "delivered"
                else None
            )

        webhook = await eventually(delivered, what="the webhook delivered")
        refused = await client.post(
            "/api/jobs", json={"type": "noop", "callback_url": "http://10.0.0.1/hook"}
        )
    assert [d["status"] for d in webhook["deliveries"]] == ["retrying", "delivered"]
    assert webhook["deliveries"][0]["status_code"] == 500
    assert len(receiver.calls) == 2
    body, headers = receiver.calls[-1]
    assert verify(session["webhook_secret"], body, headers[SIGNATURE_HEADER.lower()])
    assert not verify("another-secret", body, headers[SIGNATURE_HEADER.lower()])
    payload = orjson.loads(body)
    assert payload["job"]["id"] == job_id and payload["job"]["status"] == "completed"
    assert_error(refused, 422, "invalid_input")


# uploads


async def test_uploads_are_owner_scoped_and_capped(featured: Stack) -> None:
    alice, bob = await featured.owner(), await featured.owner()
    files = {"file": ("data.csv", b"a,b\n1,2\n", "text/csv")}
    async with featured.client(alice) as a, featured.client(bob) as b:
        uploaded = await a.post("/api/uploads", files=files)
        not_multipart = await a.post("/api/uploads", json={"file": "x"})
        empty_form = await a.post("/api/uploads", files={"other": ("x", b"1")})
        too_big = await a.post(
            "/api/uploads", files={"file": ("big.csv", b"x" * 100_000, "text/csv")}
        )
        async with httpx.AsyncClient(base_url=featured.base_url) as nobody:
            anonymous = await nobody.post("/api/uploads", files=files)
        assert (await b.get("/api/jobs")).status_code == 200
    assert uploaded.status_code == 201
    (one,) = uploaded.json()["uploads"]
    assert one["filename"] == "data.csv" and one["size"] == 8
    assert_error(not_multipart, 400, "bad_request")
    assert_error(empty_form, 400, "bad_request")
    assert_error(too_big, 413, "payload_too_large")
    assert_error(anonymous, 401, "unauthorized")


# a job type of one's own


async def test_an_apps_own_job_type_appears_and_runs(featured: Stack) -> None:
    token = await featured.owner()
    async with featured.client(token) as client:
        types = {t["type"]: t for t in (await client.get("/api/job-types")).json()["job_types"]}
        job_id = await submit(client, "word_count", text="the cat and the hat and the bat", top=2)
        seen = await watch(featured, token, job_id)
        empty = await submit(client, "word_count", text="...")
        failed = await wait_status(client, empty, "failed")
    assert types["word_count"]["title"] == "Word count"
    assert [s["name"] for s in types["word_count"]["steps"]] == ["split", "count", "report"]
    assert types["word_count"]["concurrency"] == 4
    result = seen.events[-1]["result"]
    assert result["words"] == 8 and result["top"][0] == {"word": "the", "count": 3}
    assert failed["error"]["category"] == "permanent" and "no words" in failed["error"]["message"]


def test_a_module_that_cannot_be_imported_is_a_clear_error() -> None:
    from jobcast.errors import ConfigError
    from jobcast.registry import load_registry

    with pytest.raises(ConfigError, match="cannot import 'no_such_module'"):
        load_registry(["no_such_module"])
    assert os.environ.get("JOBCAST_JOB_MODULES") is None
