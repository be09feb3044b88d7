"""The whole path with real processes: submit over HTTP, run on arq, watch over a websocket."""

from __future__ import annotations

import uuid

import httpx

from tests.support import Stack, eventually, submit, watch


async def test_demo_job_runs_to_completion_over_a_websocket(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=0.5)
        seen = await watch(stack, token, job_id)

    assert seen.snapshot["type"] == "snapshot"
    assert seen.snapshot["job"]["id"] == job_id
    assert seen.close_code == 1000
    # the snapshot may already hold some events; the socket replays every one from seq 1
    seqs = [e["seq"] for e in seen.events]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    kinds = {e["kind"] for e in seen.events}
    assert kinds == {"status", "step", "progress"}
    statuses = [e["status"] for e in seen.events if e["kind"] == "status"]
    assert statuses == ["pending", "running", "completed"]
    final = seen.events[-1]
    assert final["status"] == "completed" and final["result"]["summary"]
    steps_done = [
        e["step"] for e in seen.events if e["kind"] == "step" and e["state"] == "completed"
    ]
    assert steps_done == ["validate", "fetch", "analyze", "report"]
    progress = [e["progress"] for e in seen.events if "progress" in e and e["kind"] != "status"]
    assert progress == sorted(progress), "progress went backwards"
    assert all(e["job_id"] == job_id and e["at"] for e in seen.events)


async def test_events_endpoint_matches_what_the_socket_carried(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=0.3)
        seen = await watch(stack, token, job_id)
        response = await client.get(f"/api/jobs/{job_id}/events")
    assert response.status_code == 200
    assert response.json()["events"] == seen.events


async def test_resume_after_n_gets_exactly_the_events_after_n(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=0.3)
        full = await watch(stack, token, job_id)
        n = len(full.events) // 2
        resumed = await watch(stack, token, job_id, after=n)
        page = (await client.get(f"/api/jobs/{job_id}/events", params={"after": n})).json()
    assert [e["seq"] for e in resumed.events] == list(range(n + 1, len(full.events) + 1))
    assert resumed.events == full.events[n:]
    assert page["events"] == full.events[n:]
    assert resumed.snapshot["job"]["status"] == "completed"


async def test_resume_while_running_has_no_gap_and_no_duplicate(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=2)

        async def some_progress() -> int | None:
            job = (await client.get(f"/api/jobs/{job_id}")).json()
            return job["seq"] if job["seq"] >= 5 and job["status"] == "running" else None

        n = await eventually(some_progress, what="a few events")
        resumed = await watch(stack, token, job_id, after=n)
    seqs = [e["seq"] for e in resumed.events]
    assert seqs == list(range(n + 1, n + 1 + len(seqs)))
    assert resumed.events[-1]["status"] == "completed"


async def test_result_is_202_until_the_end_then_200(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=1.5)
        early = await client.get(f"/api/jobs/{job_id}/result")
        assert early.status_code == 202
        assert early.json()["status"] in ("pending", "running")
        await watch(stack, token, job_id)
        late = await client.get(f"/api/jobs/{job_id}/result")
    assert late.status_code == 200
    assert late.json()["result"]["duration"] == 1.5


async def test_job_view_etag_answers_304_until_it_changes(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "noop")
        await watch(stack, token, job_id)
        first = await client.get(f"/api/jobs/{job_id}")
        etag = first.headers["etag"]
        again = await client.get(f"/api/jobs/{job_id}", headers={"If-None-Match": etag})
    assert first.json()["status"] == "completed"
    assert again.status_code == 304
    assert again.headers["etag"] == etag and again.content == b""


async def test_a_stale_or_foreign_etag_gets_the_job_or_a_404_never_a_304(stack: Stack) -> None:
    token, stranger = await stack.owner(), await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=0.3)
        pending = await client.get(f"/api/jobs/{job_id}")
        await watch(stack, token, job_id)
        stale = await client.get(
            f"/api/jobs/{job_id}", headers={"If-None-Match": pending.headers["etag"]}
        )
        unknown = await client.get(f"/api/jobs/{uuid.uuid4()}", headers={"If-None-Match": "x"})
    async with stack.client(stranger) as client:
        foreign = await client.get(
            f"/api/jobs/{job_id}", headers={"If-None-Match": stale.headers["etag"]}
        )
    assert stale.status_code == 200 and stale.json()["status"] == "completed"
    assert stale.headers["etag"] != pending.headers["etag"]
    assert unknown.status_code == 404 and foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "not_found"


async def test_permanent_failure_fails_at_once_with_a_readable_error(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=0.2, fail_step="analyze")
        seen = await watch(stack, token, job_id)
        job = (await client.get(f"/api/jobs/{job_id}")).json()
        result = await client.get(f"/api/jobs/{job_id}/result")
    assert seen.events[-1]["status"] == "failed"
    assert job["status"] == "failed" and job["attempts"] == 1
    assert job["error"]["category"] == "permanent"
    assert "analyze" in job["error"]["message"] and "Traceback" not in job["error"]["message"]
    assert [s["status"] for s in job["steps"]] == ["completed", "completed", "failed", "waiting"]
    assert result.status_code == 409
    assert result.json()["error"]["code"] == "conflict"


async def test_flaky_job_succeeds_within_the_default_attempts(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "demo", duration=0.2, flaky=2)
        seen = await watch(stack, token, job_id)
        job = (await client.get(f"/api/jobs/{job_id}")).json()
    assert job["status"] == "completed" and job["attempts"] == 3
    waits = [e for e in seen.events if e["kind"] == "status" and e["status"] == "pending"][1:]
    assert len(waits) == 2
    assert waits[0]["message"].startswith("Retrying in") and "attempt 2 of 3" in waits[0]["message"]
    seqs = [e["seq"] for e in seen.events]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_list_shows_own_jobs_newest_first(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        first = await submit(client, "noop")
        second = await submit(client, "noop")
        listed = (await client.get("/api/jobs")).json()["jobs"]
        only_demo = (await client.get("/api/jobs", params={"type": "demo"})).json()["jobs"]
    assert [j["id"] for j in listed] == [second, first]
    assert only_demo == []


async def test_readyz_and_healthz(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as client:
        ready = await client.get("/readyz")
        health = await client.get("/healthz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["postgres"] == "ok" and ready.json()["checks"]["redis"] == "ok"
    assert health.status_code == 200
