"""The admin API: roles, the filtered search, bulk actions by ids or filter, pausing a type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from jobcast.endpoints import Endpoints
from tests.conftest import DatabaseFactory
from tests.integration.test_errors import assert_error
from tests.support import Stack, eventually, launch, submit

ADMIN = "admin-" + "a" * 40
OPERATOR = "operator-" + "o" * 40


@pytest.fixture(scope="module")
async def admined(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("admined"),
        JOBCAST_ADMIN_TOKEN=ADMIN,
        JOBCAST_OPERATOR_TOKEN=OPERATOR,
    )
    try:
        yield stack
    finally:
        stack.close()


async def _status(client: httpx.AsyncClient, job_id: str) -> str:
    status: str = (await client.get(f"/api/jobs/{job_id}")).json()["status"]
    return status


async def _finished(client: httpx.AsyncClient, job_id: str) -> bool:
    return await _status(client, job_id) in ("completed", "failed", "cancelled")


async def _all_finished(client: httpx.AsyncClient, ids: list[str]) -> bool:
    return all([await _finished(client, j) for j in ids])


async def _action_done(stack: Stack, action_id: str) -> dict[str, Any] | None:
    conn = await asyncpg.connect(stack.database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM admin_actions WHERE id = $1::uuid", action_id)
    finally:
        await conn.close()
    return dict(row) if row is not None and row["finished_at"] is not None else None


async def test_the_operator_sees_everything_and_acts_on_nothing(admined: Stack) -> None:
    owner = await admined.owner()
    async with (
        admined.client(owner) as mine,
        admined.client(OPERATOR) as operator,
        admined.client(ADMIN) as admin,
        admined.client("nobody-" + "x" * 40) as stranger,
    ):
        job_id = await submit(mine, "noop")
        assert (await operator.get("/api/admin/stats")).json()["role"] == "operator"
        assert (await admin.get("/api/admin/stats")).json()["role"] == "admin"
        seen = (await operator.get("/api/admin/jobs")).json()["jobs"]
        assert job_id in {j["id"] for j in seen}
        assert (await operator.get(f"/api/admin/jobs/{job_id}")).json()["job"]["id"] == job_id
        for path, body in (
            ("/api/admin/jobs/cancel", {"ids": [job_id]}),
            ("/api/admin/jobs/retry", {"filter": "all"}),
            ("/api/admin/types/noop/pause", {}),
            ("/api/admin/types/noop/resume", {}),
        ):
            assert_error(await operator.post(path, json=body), 403, "forbidden")
            assert_error(await mine.post(path, json=body), 403, "forbidden")
            assert_error(await stranger.post(path, json=body), 401, "unauthorized")
        assert_error(await mine.get("/api/admin/jobs"), 403, "forbidden")


async def test_a_filter_finds_exactly_its_jobs_a_page_at_a_time(admined: Stack) -> None:
    owner = await admined.owner()
    async with admined.client(owner) as mine, admined.client(ADMIN) as admin:
        failed = [await submit(mine, "demo", duration=0.05, fail_step="fetch") for _ in range(3)]
        done = [await submit(mine, "noop") for _ in range(2)]
        await eventually(lambda: _all_finished(mine, failed + done), what="jobs finishing")
        owner_id = (await admin.get(f"/api/admin/jobs/{done[0]}")).json()["job"]["owner_id"]
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params = {"owner": owner_id, "status": "failed", "type": "demo", "limit": "2"}
            if cursor:
                params["cursor"] = cursor
            page = (await admin.get("/api/admin/jobs", params=params)).json()
            seen += [j["id"] for j in page["jobs"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(failed)
        error_class = (await admin.get(f"/api/admin/jobs/{failed[0]}")).json()["job"]["error"]
        by_class = (
            await admin.get(
                "/api/admin/jobs", params={"owner": owner_id, "error_class": error_class["type"]}
            )
        ).json()["jobs"]
        assert sorted(j["id"] for j in by_class) == sorted(failed)
        words = error_class["message"].split()[0]
        by_text = (
            await admin.get("/api/admin/jobs", params={"owner": owner_id, "q": words.upper()})
        ).json()["jobs"]
        assert sorted(j["id"] for j in by_text) == sorted(failed)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"colour": "red"}, 422),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, 422),
        ({"type": "bad\x00type"}, 422),
        ({"since": "yesterday"}, 400),
        ({"cursor": "not-a-cursor"}, 400),
    ],
)
async def test_a_bad_search_is_refused(admined: Stack, params: dict[str, str], status: int) -> None:
    async with admined.client(ADMIN) as admin:
        response = await admin.get("/api/admin/jobs", params=params)
    assert_error(response, status, "invalid_input" if status == 422 else "bad_request")


@pytest.mark.parametrize(
    "body",
    [{}, {"filter": {"colour": "red"}}, {"filter": "everything"}, {"ids": [], "filter": "all"}],
)
async def test_a_bulk_action_needs_ids_or_a_filter(admined: Stack, body: dict[str, Any]) -> None:
    async with admined.client(ADMIN) as admin:
        response = await admin.post("/api/admin/jobs/cancel", json=body)
    assert_error(response, 422, "invalid_input")


async def test_unknown_actions_and_types_are_404(admined: Stack) -> None:
    async with admined.client(ADMIN) as admin:
        assert_error(
            await admin.post("/api/admin/jobs/explode", json={"filter": "all"}), 404, "not_found"
        )
        assert_error(await admin.post("/api/admin/types/no-such-type/pause"), 404, "not_found")
        assert_error(await admin.post("/api/admin/types/no-such-type/resume"), 404, "not_found")


async def test_bulk_retry_by_filter_retries_exactly_the_failed_jobs_of_one_type(
    admined: Stack,
) -> None:
    owner = await admined.owner()
    async with admined.client(owner) as mine, admined.client(ADMIN) as admin:
        failed = [await submit(mine, "demo", duration=0.05, fail_step="fetch") for _ in range(3)]
        fine = await submit(mine, "demo", duration=0.05)
        await eventually(lambda: _all_finished(mine, [*failed, fine]), what="jobs finishing")
        owner_id = (await admin.get(f"/api/admin/jobs/{fine}")).json()["job"]["owner_id"]
        body = {"filter": {"owner": owner_id, "type": "demo", "status": "failed"}}
        accepted = await admin.post("/api/admin/jobs/retry", json=body)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["matched"] == len(failed)
        await eventually(lambda: _action_done(admined, accepted.json()["action_id"]))
        jobs = (await admin.get("/api/admin/jobs", params={"owner": owner_id})).json()["jobs"]
        retries = [j for j in jobs if j["retry_of"]]
        assert sorted(j["retry_of"] for j in retries) == sorted(failed)
        assert all(j["type"] == "demo" for j in retries)
        # a retry runs: its steps were copied, a worker took it
        await eventually(lambda: _all_finished(mine, [j["id"] for j in retries]))
        again = await admin.post("/api/admin/jobs/retry", json={"ids": failed})
        await eventually(lambda: _action_done(admined, again.json()["action_id"]))
        jobs = (await admin.get("/api/admin/jobs", params={"owner": owner_id})).json()["jobs"]
        assert len([j for j in jobs if j["retry_of"] in failed]) == len(failed), "retried twice"


async def test_bulk_delete_by_ids_leaves_unfinished_jobs(admined: Stack) -> None:
    owner = await admined.owner()
    async with admined.client(owner) as mine, admined.client(ADMIN) as admin:
        finished = await submit(mine, "noop")
        await eventually(lambda: _finished(mine, finished))
        draft = await mine.post("/api/jobs", json={"type": "noop", "input": {}, "draft": True})
        draft_id = draft.json()["id"]
        accepted = await admin.post("/api/admin/jobs/delete", json={"ids": [finished, draft_id]})
        assert accepted.json()["matched"] == 2
        done = await eventually(lambda: _action_done(admined, accepted.json()["action_id"]))
        assert done["done"] == 1 and done["actor"].startswith("admin@")
        assert (await mine.get(f"/api/jobs/{finished}")).status_code == 404
        assert (await mine.get(f"/api/jobs/{draft_id}")).status_code == 200


async def test_a_paused_type_waits_and_resumes(admined: Stack) -> None:
    owner = await admined.owner()
    async with admined.client(owner) as mine, admined.client(ADMIN) as admin:
        assert (await admin.post("/api/admin/types/noop/pause")).status_code == 202
        try:
            held = await submit(mine, "noop")
            other = await submit(mine, "demo", duration=0.05)
            await eventually(lambda: _finished(mine, other), what="the other type running")
            stats = (await admin.get("/api/admin/stats")).json()
            assert [p["type"] for p in stats["paused"]] == ["noop"]
            # a paused type's jobs wait on purpose: no alert on the oldest wait for them
            assert stats["oldest_pending_s"] == 0
            assert await _status(mine, held) == "pending"
        finally:
            resumed = await admin.post("/api/admin/types/noop/resume")
        assert resumed.status_code == 202
        assert await eventually(lambda: _finished(mine, held), what="the held job running")
        assert (await admin.get("/api/admin/stats")).json()["paused"] == []


async def test_metrics_give_what_the_alerts_watch(admined: Stack) -> None:
    """The gauges deploy/prometheus/alerts.yml reads, as a healthy stack shows them."""

    async def scraped() -> dict[str, float] | None:
        async with admined.client() as client:
            text = (await client.get("/metrics")).text
        values = {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("jobcast_") and " " in line
        }
        wanted = ("jobcast_workers_alive", "jobcast_pubsub_up", "jobcast_sweep_overdue_seconds")
        return values if all(name in values for name in wanted) else None

    values = await eventually(scraped, timeout_s=30, what="the operating gauges")
    assert values["jobcast_workers_alive"] >= 1
    assert values["jobcast_pubsub_up"] == 1
    assert values["jobcast_sweep_overdue_seconds"] == 0
    assert values["jobcast_notify_fallback_listeners"] == 0


async def test_the_queue_depth_counts_the_jobs_that_wait_not_those_running(
    admined: Stack,
) -> None:
    """A job a worker took stays on arq's queue until it ends: the depth leaves it out, so
    it agrees with the pending count (a scheduled job waits too, not yet due)."""
    owner = await admined.owner()
    async with admined.client(owner) as mine, admined.client(ADMIN) as admin:
        running = await submit(mine, "demo", duration=10)
        await eventually(lambda: _status_is(mine, running, "running"), what="the demo job running")
        body = {"type": "noop", "input": {}, "delay_seconds": 300}
        later = (await mine.post("/api/jobs", json=body)).json()["id"]
        stats = (await admin.get("/api/admin/stats")).json()
        for job_id in (running, later):
            assert (await mine.post(f"/api/jobs/{job_id}/cancel")).status_code == 202
    assert stats["by_status"]["running"] == 1 and stats["by_status"]["pending"] == 1
    assert stats["queue"] == {"depth": 1, "due": 0}


async def test_the_live_counts_leave_the_finished_jobs_out(admined: Stack) -> None:
    """What the console asks for: the jobs not finished, counted as in the full counts."""
    unfinished = {"pending", "running", "waiting", "paused", "draft"}

    def part(counts: dict[str, int]) -> dict[str, int]:
        return {status: n for status, n in counts.items() if status in unfinished}

    async def both(admin: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]] | None:
        every = (await admin.get("/api/admin/stats")).json()
        live = (await admin.get("/api/admin/stats", params={"counts": "live"})).json()
        by_type = {t: part(c) for t, c in every["by_type"].items() if part(c)}
        agree = live["by_status"] == part(every["by_status"]) and live["by_type"] == by_type
        return (every, live) if agree else None  # a job of another test moved between them

    owner = await admined.owner()
    async with admined.client(owner) as mine, admined.client(ADMIN) as admin:
        done = await submit(mine, "noop")
        await eventually(lambda: _status_is(mine, done, "completed"), what="the noop job done")
        body = {"type": "noop", "input": {}, "delay_seconds": 300}
        later = (await mine.post("/api/jobs", json=body)).json()["id"]
        every, live = await eventually(lambda: both(admin), what="the counts agreeing")
        bad = await admin.get("/api/admin/stats", params={"counts": "finished"})
        unknown = await admin.get("/api/admin/stats", params={"count": "live"})
        assert (await mine.post(f"/api/jobs/{later}/cancel")).status_code == 202
    assert every["by_status"]["completed"] >= 1 and "completed" not in live["by_status"]
    assert live["by_status"]["pending"] >= 1 and live["by_type"]["noop"]["pending"] >= 1
    assert live["last_hour"]["noop"]["finished"] >= 1  # the windows as in the full counts
    assert_error(bad, 400, "bad_request")
    assert_error(unknown, 422, "invalid_input")


async def _status_is(client: httpx.AsyncClient, job_id: str, status: str) -> bool:
    return await _status(client, job_id) == status
