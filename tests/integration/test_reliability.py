"""Nothing lost, nothing stuck: real processes broken on purpose.

Each test that breaks a service uses a private one (its own redis-server, or its
own Postgres), so breaking it harms nothing else. Deadlines, not sleeps.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from arq.constants import in_progress_key_prefix

from jobcast.endpoints import Endpoints
from jobcast.errors import StorageUnavailable
from jobcast.model import Claim, Event
from jobcast.queue import IN_PROGRESS_TTL_MS
from jobcast.registry import load_registry
from jobcast.sql import NOTIFY_CHANNEL
from jobcast.store import Store, apply_schema
from jobcast.store.reports import ProgressReport
from tests.chaos import PrivatePostgres, PrivateRedis, Watcher, chaos_env
from tests.conftest import DatabaseFactory
from tests.support import (
    Stack,
    declared_steps,
    eventually,
    launch,
    progress_by_step,
    submit,
)
from workers.persistence import persist_event

MakeStack = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MakeStack]:
    made: list[Stack] = []

    async def make(
        *,
        redis_url: str | None = None,
        database_url: str | None = None,
        workers: int = 1,
        **env: str,
    ) -> Stack:
        stack = await launch(
            database_url or await new_database(),
            redis_url or endpoints.redis_url,
            tmp_path_factory.mktemp("chaos"),
            workers=workers,
            **chaos_env(**env),
        )
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.close()


async def job_of(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def wait_status(
    client: httpx.AsyncClient, job_id: str, *statuses: str, timeout_s: float = 30, **extra: Any
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        job = await job_of(client, job_id)
        ok = job["status"] in statuses and all(job.get(k) == v for k, v in extra.items())
        return job if ok else None

    return await eventually(check, timeout_s=timeout_s, what=f"job {job_id} {statuses} {extra}")


async def events_of(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    return (await client.get(f"/api/jobs/{job_id}/events")).json()["events"]  # type: ignore[no-any-return]


def running_starts(events: list[dict[str, Any]]) -> int:
    return sum(1 for e in events if e["kind"] == "status" and e["status"] == "running")


# cancel and time limits


async def test_cancel_a_pending_job_at_once(make_stack: MakeStack) -> None:
    stack = await make_stack()
    token = await stack.owner()
    async with stack.client(token) as client:
        response = await client.post("/api/jobs", json={"type": "noop", "delay_seconds": 60})
        job_id = response.json()["id"]
        cancel = await client.post(f"/api/jobs/{job_id}/cancel")
        again = await client.post(f"/api/jobs/{job_id}/cancel")
        job = await job_of(client, job_id)
        events = await events_of(client, job_id)
    assert cancel.status_code == 202 and cancel.json()["status"] == "cancelled"
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    assert job["status"] == "cancelled" and job["attempts"] == 0 and job["finished_at"]
    assert [e["status"] for e in events] == ["pending", "cancelled"]


async def test_cancel_a_running_job_stops_it_within_two_seconds(make_stack: MakeStack) -> None:
    stack = await make_stack()
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=30)
        watcher = Watcher(stack, token, job_id)
        watching = asyncio.create_task(watcher.run())
        await wait_status(client, job_id, "running")
        cancelled_at = time.monotonic()
        assert (await client.post(f"/api/jobs/{job_id}/cancel")).status_code == 202

        def stopped() -> Awaitable[bool]:
            async def check() -> bool:
                # the worker's beat finds it, or the job's next report meets the fence first
                logs = stack.logs("worker-0")
                return "stopped: cancelled or taken over" in logs or "is no longer ours" in logs

            return check()

        await eventually(stopped, timeout_s=2.0, what="the worker stopping the job")
        stopped_after_s = time.monotonic() - cancelled_at
        await watching
        # arq drops its in-progress mark once the worker's code for the job has returned:
        # from then on nothing of that attempt can write, so the events are all there are
        await eventually(
            partial(arq_is_done_with, stack, job_id), what="the worker done with the job"
        )
        events = await events_of(client, job_id)
        assert (await client.post(f"/api/jobs/{job_id}/cancel")).status_code == 409
    assert stopped_after_s < 2.0
    assert events[-1]["kind"] == "status" and events[-1]["status"] == "cancelled"
    assert watcher.events == events and watcher.closes[-1] == 1000
    watcher.assert_gap_free()


async def test_a_cancel_reaches_a_running_job_before_its_workers_next_beat(
    make_stack: MakeStack,
) -> None:
    """The cancelled job's event goes to the workers' channel too: the worker running it
    beats at once, and stops it, long before its heartbeat's interval (20 s here) ends."""
    stack = await make_stack(JOBCAST_HEARTBEAT_S="20", JOBCAST_STALE_AFTER_S="120")
    token = await stack.owner()
    async with stack.client(token) as client:
        # a job that says nothing while it runs: no write of its own meets the cancel
        job_id = await submit(client, "noop", sleep_s=30)
        await wait_status(client, job_id, "running")
        await asyncio.sleep(0.5)  # the worker's first beat (at its start) is behind it
        assert (await client.post(f"/api/jobs/{job_id}/cancel")).status_code == 202

        async def stopped() -> bool:
            return "stopped: cancelled or taken over" in stack.logs("worker-0")

        await eventually(stopped, timeout_s=5.0, what="the worker stopping the job")
        await eventually(
            partial(arq_is_done_with, stack, job_id), what="the worker done with the job"
        )
        events = await events_of(client, job_id)
    assert events[-1]["kind"] == "status" and events[-1]["status"] == "cancelled"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def arq_is_done_with(stack: Stack, job_id: str) -> bool:
    redis = aioredis.Redis.from_url(stack.redis_url)
    try:
        return not await redis.exists(in_progress_key_prefix + job_id)
    finally:
        await redis.aclose()


async def test_cancel_a_missing_or_foreign_job_is_404(make_stack: MakeStack) -> None:
    stack = await make_stack()
    alice, bob = await stack.owner(), await stack.owner()
    async with stack.client(alice) as a, stack.client(bob) as b:
        job_id = await submit(a, "demo", duration=5)
        foreign = await b.post(f"/api/jobs/{job_id}/cancel")
        missing = await b.post("/api/jobs/00000000-0000-0000-0000-000000000000/cancel")
        assert (await job_of(a, job_id))["status"] in ("pending", "running")
    assert foreign.status_code == 404 and missing.status_code == 404


async def test_a_job_over_its_time_limit_fails_with_a_clear_error(make_stack: MakeStack) -> None:
    stack = await make_stack()
    token = await stack.owner()
    async with stack.client(token) as client:
        response = await client.post(
            "/api/jobs", json={"type": "demo", "input": {"duration": 20}, "timeout_seconds": 0.5}
        )
        assert response.status_code == 202, response.text
        job = await wait_status(client, response.json()["id"], "failed")
        too_long = await client.post(
            "/api/jobs", json={"type": "demo", "input": {}, "timeout_seconds": 10**6}
        )
    assert job["attempts"] == 1
    assert job["error"]["type"] == "JobTimeout" and "time limit of 0.5 s" in job["error"]["message"]
    assert too_long.status_code == 422 and "timeout_seconds" in too_long.json()["error"]["message"]


async def test_unknown_errors_are_retried_up_to_max_attempts(make_stack: MakeStack) -> None:
    stack = await make_stack()
    token = await stack.owner()
    async with stack.client(token) as client:
        response = await client.post(
            "/api/jobs",
            json={"type": "demo", "input": {"duration": 0.1, "flaky": 5}, "max_attempts": 2},
        )
        job = await wait_status(client, response.json()["id"], "failed")
        events = await events_of(client, job["id"])
    assert job["attempts"] == 2 and job["max_attempts"] == 2
    assert job["error"]["category"] == "transient"
    assert running_starts(events) == 2
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


# crashes


async def test_sigkilled_worker_job_runs_again_within_seconds(make_stack: MakeStack) -> None:
    stack = await make_stack()
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=3)
        watcher = Watcher(stack, token, job_id)
        watching = asyncio.create_task(watcher.run())
        await wait_status(client, job_id, "running", attempts=1)
        stack.stop("worker-0", signal.SIGKILL)
        killed_at = time.monotonic()
        stack.start("worker-1")
        await wait_status(client, job_id, "running", attempts=2)
        recovered_s = time.monotonic() - killed_at
        await watching
        job = await job_of(client, job_id)
    assert recovered_s < 30, recovered_s
    assert job["status"] == "completed" and job["attempts"] == 2
    watcher.assert_gap_free()
    assert watcher.final_statuses == ["completed"]
    assert any("stopped" in (e.get("message") or "") for e in watcher.events)


async def test_a_job_taken_by_a_worker_that_died_before_claiming_it_runs_within_seconds(
    make_stack: MakeStack,
) -> None:
    """A worker killed after arq handed it a job but before its claim reached Postgres
    leaves arq's in-progress marker behind, which holds the job back for arq's whole job
    timeout (days); the job is still pending, so no heartbeat goes stale for it."""
    stack = await make_stack(workers=0)
    token = await stack.owner()
    redis = aioredis.Redis.from_url(stack.redis_url)
    try:
        async with stack.client(token) as client:
            job_id = await submit(client, "demo", duration=0.1)
            # what arq's dequeue writes, and such a worker leaves behind
            await redis.psetex(in_progress_key_prefix + job_id, IN_PROGRESS_TTL_MS, b"1")
            stack.start("worker-0")
            job = await wait_status(client, job_id, "completed", timeout_s=30)
    finally:
        await redis.aclose()
    assert job["attempts"] == 1  # its first attempt: it never started


async def test_frozen_worker_cannot_complete_or_write_after_its_lease(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack()
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=3)
        await wait_status(client, job_id, "running", attempts=1)
        frozen = stack.procs["worker-0"]
        frozen.send_signal(signal.SIGSTOP)
        stack.start("worker-1")
        try:
            await wait_status(client, job_id, "running", attempts=2)
        finally:
            frozen.send_signal(signal.SIGCONT)
        job = await wait_status(client, job_id, "completed")

        async def frozen_worker_gave_up() -> bool:
            return "no longer ours" in stack.logs("worker-0") or "taken over" in stack.logs(
                "worker-0"
            )

        await eventually(frozen_worker_gave_up, what="the thawed worker noticing")
        events = await events_of(client, job_id)
    assert job["attempts"] == 2
    finals = [e for e in events if e["kind"] == "status" and e["status"] == "completed"]
    assert len(finals) == 1
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    # every event after the takeover belongs to the second attempt's run
    takeover = next(
        i
        for i, e in enumerate(events)
        if e["kind"] == "status" and e["status"] == "running" and e["attempt"] == 2
    )
    assert all(e.get("attempt", 2) == 2 for e in events[takeover:] if e["kind"] == "status")


async def test_sigterm_hands_running_jobs_back_without_burning_an_attempt(
    make_stack: MakeStack,
) -> None:
    stack = await make_stack(JOBCAST_SHUTDOWN_GRACE_S="0.3")
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=2)
        await wait_status(client, job_id, "running", attempts=1)
        stack.stop("worker-0", signal.SIGTERM)
        handed_back = await wait_status(client, job_id, "pending", timeout_s=5)
        stack.start("worker-1")
        job = await wait_status(client, job_id, "completed")
    assert handed_back["attempts"] == 0
    assert "worker stopped" in handed_back["message"]
    assert job["attempts"] == 1


async def test_sigterm_gives_up_an_attempt_it_finds_still_starting(
    make_stack: MakeStack,
) -> None:
    """The stop can find an attempt as it starts, its claim (which reads the job's
    checkpoints) held up here by a lock on a table that read needs: the claim is given
    up, and the job stays pending with no attempt counted, not left 'running' for the
    sweep to count as a lost attempt (nor started once the lock is gone)."""
    stack = await make_stack(JOBCAST_SHUTDOWN_GRACE_S="0.3")
    token = await stack.owner()
    conn = await asyncpg.connect(stack.database_url)
    try:
        async with stack.client(token) as client:
            held = conn.transaction()
            await held.start()
            await conn.execute("LOCK TABLE job_inputs IN ACCESS EXCLUSIVE MODE")
            try:
                job_id = await submit(client, "demo", duration=2)

                async def claiming() -> bool:  # the API's job read waits too
                    await conn.execute("SELECT pg_stat_clear_snapshot()")  # read afresh
                    waiting = await conn.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND query LIKE '%jobcast_admit(%'"
                    )
                    return bool(waiting)

                await eventually(claiming, what="the attempt held up as it starts")
                worker = stack.procs["worker-0"]
                worker.send_signal(signal.SIGTERM)

                async def read_given_up() -> bool:  # past the grace, the stop cancelled it
                    return not await claiming()

                await eventually(read_given_up, what="the stop cancelling the held attempt")
            finally:
                await held.rollback()
            await asyncio.to_thread(worker.wait, 15)
            job = await job_of(client, job_id)
    finally:
        await conn.close()
    assert worker.returncode == 0, stack.logs("worker-0")[-3000:]
    assert job["status"] == "pending" and job["attempts"] == 0, job


async def test_sigterm_lets_a_short_job_finish_within_the_grace(make_stack: MakeStack) -> None:
    stack = await make_stack(JOBCAST_SHUTDOWN_GRACE_S="5")
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=1.5)
        await wait_status(client, job_id, "running")
        stack.stop("worker-0", signal.SIGTERM)
        job = await job_of(client, job_id)
    assert job["status"] == "completed" and job["attempts"] == 1


async def test_web_sigterm_closes_websockets_with_1001(make_stack: MakeStack) -> None:
    stack = await make_stack()
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=10)
        await wait_status(client, job_id, "running")
    watcher = Watcher(stack, token, job_id)
    watching = asyncio.create_task(watcher.run())
    await eventually(lambda: _true_if(watcher.events), what="a few events")
    stack.stop("web", signal.SIGTERM)
    await eventually(lambda: _true_if(watcher.closes), what="the socket closing")
    watching.cancel()
    assert watcher.closes[0] == 1001


async def _true_if(value: object) -> bool:
    return bool(value)


# outages


async def test_redis_down_at_submit_the_job_is_accepted_and_runs_later(
    make_stack: MakeStack, private_redis: PrivateRedis
) -> None:
    stack = await make_stack(redis_url=private_redis.url)
    token = await stack.owner()
    private_redis.kill()
    async with stack.client(token) as client:
        response = await client.post("/api/jobs", json={"type": "noop"})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        assert (await job_of(client, job_id))["status"] == "pending"
        private_redis.start()  # empty: the outbox must queue it
        job = await wait_status(client, job_id, "completed", timeout_s=30)
    assert job["attempts"] == 1


async def test_redis_restarted_empty_loses_no_queued_or_running_job(
    make_stack: MakeStack, private_redis: PrivateRedis
) -> None:
    stack = await make_stack(redis_url=private_redis.url, JOBCAST_WORKER_CONCURRENCY="2")
    token = await stack.owner()
    async with stack.client(token) as client:
        ids = [await submit(client, "demo", duration=1) for _ in range(6)]
        watcher = Watcher(stack, token, ids[0])
        watching = asyncio.create_task(watcher.run())
        await wait_status(client, ids[0], "running")
        private_redis.kill()
        await eventually(
            partial(pubsub_is_down, client), timeout_s=10, what="the web process seeing Redis go"
        )
        private_redis.start()
        jobs = [await wait_status(client, i, "completed", timeout_s=60) for i in ids]
        await watching
        all_events = [await events_of(client, i) for i in ids]
    assert all(j["status"] == "completed" for j in jobs)
    for events in all_events:
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert sum(1 for e in events if e["kind"] == "status" and e["status"] == "completed") == 1
    watcher.assert_gap_free()
    assert watcher.final_statuses == ["completed"]


async def pubsub_is_down(client: httpx.AsyncClient) -> bool:
    """The web process has noticed its Redis subscription is gone (its /readyz says so)."""
    checks: dict[str, str] = (await client.get("/readyz")).json()["checks"]
    return checks["redis"] != "ok" and checks["pubsub"] != "ok"


async def test_watchers_get_every_event_while_redis_pubsub_is_down(
    make_stack: MakeStack, private_redis: PrivateRedis
) -> None:
    stack = await make_stack(redis_url=private_redis.url)
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=3)
        watcher = Watcher(stack, token, job_id)
        watching = asyncio.create_task(watcher.run())
        await wait_status(client, job_id, "running")
        private_redis.kill()  # pub/sub gone: events arrive through NOTIFY and job_events
        seen_before = len(watcher.events)

        async def more_events() -> bool:
            return len(watcher.events) >= seen_before + 5

        await eventually(more_events, timeout_s=10, what="events while Redis is down")
        asks_while_down = await fallback_asks(stack)
        private_redis.start()
        await watching
        events = await events_of(client, job_id)

        async def withdrawn() -> bool:
            return await fallback_asks(stack) == 0

        await eventually(withdrawn, timeout_s=10, what="the ask for NOTIFYs withdrawn")
    assert asks_while_down == 1  # the web process asked writers for NOTIFYs
    watcher.assert_gap_free()
    assert watcher.events == events
    assert watcher.final_statuses == ["completed"]


async def fallback_asks(stack: Stack) -> int:
    """How many server processes ask writers for NOTIFYs now."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        asks: int = await conn.fetchval(
            "SELECT count(*) FROM fallback_listeners WHERE expires_at > now()"
        )
        return asks
    finally:
        await conn.close()


async def test_with_pubsub_up_no_notify_is_sent(stack: Stack) -> None:
    """NOTIFY holds a cluster-wide lock through each commit: it is sent only when needed."""
    heard: list[str] = []
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.add_listener(NOTIFY_CHANNEL, lambda *args: heard.append(str(args[-1])))
        token = await stack.owner()

        async def nobody_asks() -> bool:  # a web process asks until its pub/sub is up
            return await fallback_asks(stack) == 0

        await eventually(nobody_asks, what="no process asking for NOTIFYs")
        async with stack.client(token) as client:
            job_id = await submit(client, "demo", duration=0.2)
            await wait_status(client, job_id, "completed")
        assert await fallback_asks(stack) == 0
        await conn.execute("INSERT INTO fallback_listeners VALUES ('test', now() + interval '1 h')")
        async with stack.client(token) as client:  # one asks: every change is announced
            asked = await submit(client, "demo", duration=0.2)
            await wait_status(client, asked, "completed")
            stored = [e["seq"] for e in await events_of(client, asked)]
        await conn.execute("DELETE FROM fallback_listeners WHERE holder = 'test'")

        def heard_seqs(of: str) -> list[int]:
            # a payload is "job_id seq owner_id kind"
            return sorted(int(h.split()[1]) for h in heard if h.startswith(of))

        async def all_heard() -> bool:
            return len(heard_seqs(asked)) >= len(stored)

        # notifications arrive after their commit, in commit order: once the asked job's
        # last one is here, any of the first job's would be too
        await eventually(all_heard, what="a NOTIFY for every event of the asked job")
    finally:
        await conn.close()
    assert heard_seqs(job_id) == []
    assert heard_seqs(asked) == stored == list(range(1, len(stored) + 1))  # each event, once


async def test_cut_pubsub_connection_is_noticed_and_leaves_no_gap(
    make_stack: MakeStack, private_redis: PrivateRedis
) -> None:
    stack = await make_stack(redis_url=private_redis.url)
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=2)
        watcher = Watcher(stack, token, job_id)
        watching = asyncio.create_task(watcher.run())
        await wait_status(client, job_id, "running")
        killer = private_redis.client()
        killed = killer.client_kill_filter(_type="pubsub")
        killer.close()
        await watching
    assert killed >= 1
    watcher.assert_gap_free()
    assert watcher.final_statuses == ["completed"]


async def test_a_write_that_landed_before_its_answer_was_lost_is_not_made_again(
    new_database: DatabaseFactory,
) -> None:
    """Postgres committed the event, then the connection died before the answer came
    back (an immediate stop lands there now and then): trying the write again would
    store the same progress twice, or fence off a finish that did happen."""
    async with Store.open(await new_database()) as store:
        owner = await store.create_owner(uuid.uuid4().hex)
        created = await store.create_job(
            owner_id=owner, job_type=load_registry().get("noop"), params={}
        )
        assert created is not None
        claim = await store.claim(created.job.id)
        assert isinstance(claim, Claim)
        answers_lost = 0

        async def progress_whose_answer_is_lost() -> Event | None:
            nonlocal answers_lost
            events = await store.record_reports(
                [ProgressReport(created.job.id, claim.attempt, 40, None, "40 %")]
            )
            event = events.get(created.job.id)
            if answers_lost == 0:
                answers_lost += 1
                raise StorageUnavailable("the connection dropped after the commit")
            return event

        event = await persist_event(
            store,
            created.job.id,
            claim.event.seq,
            progress_whose_answer_is_lost,
            deadline_s=5,
            what="test",
        )
        stored = await store.events_after(created.job.id, 0)
    assert answers_lost == 1
    assert event is not None and event.seq == claim.event.seq + 1
    assert [e.seq for e in stored] == [1, 2, 3]  # pending, running, one progress
    assert event.data["progress"] == 40


async def test_postgres_outage_submits_503_and_workers_keep_their_events(
    make_stack: MakeStack,
) -> None:
    pg = PrivatePostgres()
    try:
        dsn = pg.start()
        await apply_schema(dsn)
        stack = await make_stack(database_url=dsn)
        token = await stack.owner()
        async with stack.client(token) as client:
            job_id = await submit(client, "demo", duration=3)
            await wait_status(client, job_id, "running")
            pg.stop()
            refused = await client.post("/api/jobs", json={"type": "noop"})

            async def kept_reporting() -> bool:
                return "Postgres unavailable; keeping it" in stack.logs("worker-0")

            await eventually(kept_reporting, what="the worker reporting into the outage")
            pg.restart()
            # the same job with nothing broken, run meanwhile: what "none dropped" means
            untroubled = await submit(client, "demo", duration=3)
            job = await wait_status(client, job_id, "completed", timeout_s=60)
            await wait_status(client, untroubled, "completed", timeout_s=60)
            events = await events_of(client, job_id)
            reference = await events_of(client, untroubled)
            steps = await declared_steps(client, "demo")
            after = await client.post("/api/jobs", json={"type": "noop"})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "storage_unavailable"
        assert after.status_code == 202
        assert job["attempts"] == 1
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        # every declared step reported its progress, none of it dropped
        assert list(progress_by_step(reference)) == steps
        assert progress_by_step(events) == progress_by_step(reference)
    finally:
        pg.destroy()


# retention


async def test_retention_deletes_finished_jobs_past_their_period(make_stack: MakeStack) -> None:
    import asyncpg

    stack = await make_stack()
    token = await stack.owner()
    async with stack.client(token) as client:
        ids = [await submit(client, "noop") for _ in range(4)]
        for job_id in ids:
            await wait_status(client, job_id, "completed")
        conn = await asyncpg.connect(stack.database_url)
        try:
            ages = {
                ids[0]: ("completed", 31),
                ids[1]: ("completed", 29),
                ids[2]: ("failed", 8),
                ids[3]: ("failed", 6),
            }
            for job_id, (status, days) in ages.items():
                await conn.execute(
                    "UPDATE jobs SET status = $2, finished_at = now() - $3 * interval '1 day' "
                    "WHERE id = $1",
                    job_id,
                    status,
                    days,
                )

            async def swept() -> bool:
                left = await conn.fetchval(
                    "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[])", ids
                )
                return left == 2

            await eventually(swept, what="the retention sweep")
            events_left = await conn.fetchval(
                "SELECT count(*) FROM job_events WHERE job_id = ANY($1::uuid[])", ids[:1] + ids[2:3]
            )
        finally:
            await conn.close()
        statuses = {i: (await client.get(f"/api/jobs/{i}")).status_code for i in ids}
    assert statuses == {ids[0]: 404, ids[1]: 200, ids[2]: 404, ids[3]: 200}
    assert events_left == 0


# everything at once


async def test_sixty_jobs_through_three_worker_kills_and_a_redis_wipe(
    make_stack: MakeStack, private_redis: PrivateRedis, artifacts: str
) -> None:
    import json
    from datetime import datetime
    from pathlib import Path

    stack = await make_stack(redis_url=private_redis.url, workers=2, JOBCAST_WORKER_CONCURRENCY="6")
    token = await stack.owner()
    async with stack.client(token) as client:
        ids: list[str] = []

        async def submit_all() -> None:
            for _ in range(60):
                response = await client.post(
                    "/api/jobs", json={"type": "demo", "input": {"duration": 0.8}}
                )
                assert response.status_code == 202, response.text
                ids.append(response.json()["id"])
                await asyncio.sleep(0.12)

        submitting = asyncio.create_task(submit_all())
        workers_started = 2

        def kill_a_worker() -> None:
            nonlocal workers_started
            victim = next(name for name in stack.procs if name.startswith("worker"))
            stack.stop(victim, signal.SIGKILL)
            stack.start(f"worker-{workers_started}")
            workers_started += 1

        def wipe_redis() -> None:
            private_redis.kill()  # it comes back with its data gone
            private_redis.start()

        # the chaos runs while jobs are being submitted, queued and run
        for pause_s, action in (
            (1.5, kill_a_worker),
            (2.0, kill_a_worker),
            (1.5, wipe_redis),
            (1.5, kill_a_worker),
        ):
            await asyncio.sleep(pause_s)
            action()
        await submitting
        jobs = [
            await wait_status(client, i, "completed", "failed", "cancelled", timeout_s=90)
            for i in ids
        ]
        histories = [await events_of(client, i) for i in ids]

    completed = sum(1 for j in jobs if j["status"] == "completed")
    ran_twice = sum(1 for h in histories if running_starts(h) > 1)
    recoveries: list[float] = []
    for history in histories:
        for i, event in enumerate(history):
            if (
                event["kind"] == "status"
                and event["status"] == "pending"  # a retry (a job out of attempts fails)
                and "worker running this job stopped" in (event.get("message") or "")
            ):
                before = datetime.fromisoformat(history[i - 1]["at"])
                rerun = next(
                    (e for e in history[i:] if e["kind"] == "status" and e["status"] == "running"),
                    None,
                )
                if rerun is not None:
                    recoveries.append(
                        (datetime.fromisoformat(rerun["at"]) - before).total_seconds()
                    )
    summary = {
        "submitted": len(ids),
        "completed": completed,
        "ran_more_than_once": ran_twice,
        "worker_kills": 3,
        "redis_wipes": 1,
        "recovered_jobs": len(recoveries),
        "max_recovery_s": round(max(recoveries, default=0.0), 2),
        "thresholds": {"heartbeat_s": 0.3, "stale_after_s": 2},
    }
    Path(artifacts, "chaos-summary.json").write_text(json.dumps(summary, indent=2))
    print(summary)
    unfinished = [
        (j["id"], j["status"], j["attempts"], j["message"])
        for j in jobs
        if j["status"] != "completed"
    ]
    assert completed == 60, (summary, unfinished)
    for history in histories:
        assert [e["seq"] for e in history] == list(range(1, len(history) + 1))
        assert sum(1 for e in history if e["kind"] == "status" and e["status"] == "completed") == 1
    assert all(r < 30 for r in recoveries), recoveries
