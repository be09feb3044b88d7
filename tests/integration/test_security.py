"""Safe to put on the internet: owners kept apart everywhere, the admin gate, origins, limits."""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from jobcast.endpoints import Endpoints
from tests.conftest import DatabaseFactory
from tests.integration.test_errors import assert_error
from tests.support import Stack, eventually, launch, submit, watch

ADMIN_TOKEN = "admin-" + "x" * 40


@pytest.fixture(scope="module")
async def guarded(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """A service with an admin token, an allowed origin and small limits."""
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("guarded"),
        JOBCAST_ADMIN_TOKEN=ADMIN_TOKEN,
        JOBCAST_ALLOWED_ORIGINS="https://app.example.com",
        JOBCAST_MAX_ACTIVE_PER_OWNER="2",
        JOBCAST_SUBMIT_RATE_PER_MIN="60",
        JOBCAST_SUBMIT_BURST="4",
        JOBCAST_MAX_SOCKETS_PER_OWNER="2",
        JOBCAST_MAX_BODY_BYTES="4096",
    )
    try:
        yield stack
    finally:
        stack.close()


async def sessions(stack: Stack, n: int) -> list[str]:
    return [await stack.owner() for _ in range(n)]


# owners


async def test_session_token_is_returned_once_and_stored_only_hashed(guarded: Stack) -> None:
    async with httpx.AsyncClient(base_url=guarded.base_url) as client:
        response = await client.post("/api/sessions")
    token = response.json()["token"]
    cookie = response.headers["set-cookie"]
    assert response.status_code == 201 and len(token) >= 40
    assert f"jobcast_session={token}" in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # served over plain http here
    conn = await asyncpg.connect(guarded.database_url)
    try:
        stored = await conn.fetch("SELECT token_hash, owners::text AS row FROM owners")
    finally:
        await conn.close()
    assert any(r["token_hash"] == hashlib.sha256(token.encode()).digest() for r in stored)
    assert not any(token in r["row"] for r in stored)


async def test_the_cookie_alone_authenticates_a_browser(guarded: Stack) -> None:
    # a browser names the page on every POST (tests/integration/test_cross_site.py)
    page = {"Origin": guarded.base_url}
    async with httpx.AsyncClient(base_url=guarded.base_url, headers=page) as browser:
        await browser.post("/api/sessions")  # the cookie jar keeps the session
        job_id = await submit(browser, "noop")
        assert (await browser.get(f"/api/jobs/{job_id}")).status_code == 200


# the admin gate


async def test_admin_endpoints_need_the_admin_token(guarded: Stack) -> None:
    (owner,) = await sessions(guarded, 1)
    for path in ("/api/admin/stats", "/api/admin/jobs"):
        async with (
            guarded.client() as anonymous,
            guarded.client(owner) as as_owner,
            guarded.client("not-a-token") as stranger,
            guarded.client(ADMIN_TOKEN) as admin,
        ):
            assert_error(await anonymous.get(path), 401, "unauthorized")
            assert_error(await as_owner.get(path), 403, "forbidden")
            assert_error(await stranger.get(path), 401, "unauthorized")
            assert (await admin.get(path)).status_code == 200


async def test_admin_sees_every_owner_and_the_numbers(guarded: Stack) -> None:
    alice, bob = await sessions(guarded, 2)
    async with (
        guarded.client(alice) as a,
        guarded.client(bob) as b,
        guarded.client(ADMIN_TOKEN) as admin,
    ):
        mine = await submit(a, "noop")
        theirs = await submit(b, "demo", duration=0.1, fail_step="fetch")
        for client, job_id in ((a, mine), (b, theirs)):
            await eventually(lambda c=client, j=job_id: _finished(c, j), what="jobs finishing")
        everyone = (await admin.get("/api/admin/jobs", params={"limit": 200})).json()["jobs"]
        only_bob = (
            await admin.get(
                "/api/admin/jobs",
                params={"owner": next(j["owner_id"] for j in everyone if j["id"] == theirs)},
            )
        ).json()["jobs"]
        failed = (await admin.get("/api/admin/jobs", params={"status": "failed"})).json()["jobs"]
        stats = (await admin.get("/api/admin/stats")).json()
        bad = await admin.get("/api/admin/jobs", params={"owner": "nobody"})
    ids = {j["id"] for j in everyone}
    assert {mine, theirs} <= ids
    assert [j["id"] for j in only_bob] == [theirs]
    assert theirs in {j["id"] for j in failed} and mine not in {j["id"] for j in failed}
    assert stats["by_status"]["completed"] >= 1 and stats["by_status"]["failed"] >= 1
    assert stats["by_type"]["demo"]["failed"] >= 1
    demo = stats["last_hour"]["demo"]
    assert demo["failed"] >= 1 and 0 < demo["failure_rate"] <= 1
    noop = stats["last_hour"]["noop"]
    assert noop["p50_s"] is not None and noop["p95_s"] >= noop["p50_s"]
    assert stats["queue"]["depth"] is not None and stats["oldest_pending_s"] >= 0
    assert_error(bad, 400, "bad_request")


async def _finished(client: httpx.AsyncClient, job_id: str) -> bool:
    status = (await client.get(f"/api/jobs/{job_id}")).json()["status"]
    return status in ("completed", "failed", "cancelled")


async def test_admin_endpoints_are_off_without_an_admin_token(stack: Stack) -> None:
    async with stack.client("whatever-token") as client:
        assert_error(await client.get("/api/admin/stats"), 403, "forbidden")


# isolation


async def test_cancel_and_owner_feed_keep_owners_apart(guarded: Stack) -> None:
    alice, bob = await sessions(guarded, 2)
    headers_a = {"Authorization": f"Bearer {alice}"}
    headers_b = {"Authorization": f"Bearer {bob}"}
    async with (
        connect(f"{guarded.ws_base}/ws", additional_headers=headers_a) as feed_a,
        connect(f"{guarded.ws_base}/ws", additional_headers=headers_b) as feed_b,
    ):
        async with guarded.client(alice) as a, guarded.client(bob) as b:
            job_id = await submit(a, "noop")
            assert_error(await b.post(f"/api/jobs/{job_id}/cancel"), 404, "not_found")
            seen_a = await feed_until_completed(feed_a, job_id)
            # the other feed, open all along, gets its own owner's job after every event of
            # the first job was sent: one of those leaking would have come before it
            theirs = await submit(b, "noop")
            seen_b = await feed_until_completed(feed_b, theirs)
        assert {m.get("job_id") for m in seen_a} == {job_id}
        assert {m.get("job_id") for m in seen_b} == {theirs}


async def feed_until_completed(feed: ClientConnection, job_id: str) -> list[dict[str, Any]]:
    """The owner feed's messages up to the one saying the job completed."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while not any(m.get("job_id") == job_id and m.get("status") == "completed" for m in seen):
            seen.append(orjson.loads(await feed.recv()))
    return seen


# websockets


async def test_cookie_websocket_from_a_foreign_origin_is_refused(guarded: Stack) -> None:
    page = {"Origin": guarded.base_url}
    async with httpx.AsyncClient(base_url=guarded.base_url, headers=page) as browser:
        token = (await browser.post("/api/sessions")).json()["token"]
        job_id = await submit(browser, "noop")
    url = f"{guarded.ws_base}/ws/jobs/{job_id}"
    cookie = {"Cookie": f"jobcast_session={token}"}
    host = guarded.base_url.removeprefix("http://")

    async def opens(headers: dict[str, str], origin: str | None) -> bool:
        try:
            async with connect(url, additional_headers=headers, origin=origin) as ws:  # type: ignore[arg-type]
                await ws.recv()
                return True
        except InvalidStatus as refused:
            assert refused.response.status_code == 403
            return False

    assert not await opens(cookie, "https://evil.example")
    assert not await opens(cookie, None)
    assert await opens(cookie, f"http://{host}")
    assert await opens(cookie, "https://app.example.com")
    # a bearer token cannot be sent by a foreign page, so any origin may use one
    assert await opens({"Authorization": f"Bearer {token}"}, "https://evil.example")


async def test_oversized_websocket_message_closes_the_socket(guarded: Stack) -> None:
    (token,) = await sessions(guarded, 1)
    async with guarded.client(token) as client:
        job_id = await submit(client, "demo", duration=5)
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(f"{guarded.ws_base}/ws/jobs/{job_id}", additional_headers=headers) as ws:
        await ws.recv()
        await ws.send("x" * 20_000)
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
    assert ws.close_code == 1009


async def test_open_websockets_per_owner_are_capped(guarded: Stack) -> None:
    (token,) = await sessions(guarded, 1)
    async with guarded.client(token) as client:
        job_id = await submit(client, "demo", duration=5)
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{guarded.ws_base}/ws/jobs/{job_id}"
    async with connect(url, additional_headers=headers), connect(url, additional_headers=headers):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, additional_headers=headers):
                pass
        assert refused.value.response.status_code == 429
    # once the server has seen those two close, a new one is welcome

    async def welcome() -> bool:
        try:
            async with connect(url, additional_headers=headers) as ws:
                return "snapshot" in str(await ws.recv())
        except InvalidStatus as still_full:
            assert still_full.response.status_code == 429
            return False

    assert await eventually(welcome, timeout_s=10, what="a socket after the others closed")


# limits


async def test_a_body_over_the_limit_is_413_and_stores_nothing(guarded: Stack) -> None:
    (token,) = await sessions(guarded, 1)
    big = orjson.dumps({"type": "noop", "input": {}, "pad": "x" * 10_000})
    async with guarded.client(token) as client:
        declared = await client.post(
            "/api/jobs", content=big, headers={"Content-Type": "application/json"}
        )

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(big), 1000):
                yield big[i : i + 1000]

        streamed = await client.post(
            "/api/jobs", content=chunks(), headers={"Content-Type": "application/json"}
        )
        listed = (await client.get("/api/jobs")).json()["jobs"]
    assert_error(declared, 413, "payload_too_large")
    assert_error(streamed, 413, "payload_too_large")
    assert listed == []


async def test_active_jobs_per_owner_are_capped(guarded: Stack) -> None:
    (token,) = await sessions(guarded, 1)
    async with guarded.client(token) as client:
        later = {"type": "noop", "delay_seconds": 600}
        first = [await client.post("/api/jobs", json=later) for _ in range(2)]
        third = await client.post("/api/jobs", json=later)
        assert [r.status_code for r in first] == [202, 202]
        assert_error(third, 429, "too_many_requests")
        assert int(third.headers["retry-after"]) >= 1
        assert len((await client.get("/api/jobs")).json()["jobs"]) == 2
        await client.post(f"/api/jobs/{first[0].json()['id']}/cancel")
        fourth = await client.post("/api/jobs", json=later)
    assert fourth.status_code == 202


async def test_submits_per_owner_are_rate_limited_across_processes(guarded: Stack) -> None:
    (token,) = await sessions(guarded, 1)
    statuses = []
    async with guarded.client(token) as client:
        for _ in range(6):
            response = await client.post("/api/jobs", json={"type": "noop"})
            statuses.append(response.status_code)
            if response.status_code == 202:  # keep under the active-jobs cap
                job_id = response.json()["id"]
                await eventually(
                    functools.partial(_finished, client, job_id), what="noop finishing"
                )
        limited = response
        count = len((await client.get("/api/jobs")).json()["jobs"])
    assert statuses[:4] == [202] * 4 and 429 in statuses[4:]
    assert_error(limited, 429, "too_many_requests")
    assert int(limited.headers["retry-after"]) >= 1
    assert count == statuses.count(202)


async def test_sessions_per_address_are_rate_limited(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("sessions"),
        JOBCAST_SESSION_BURST="3",
        JOBCAST_SESSION_RATE_PER_MIN="10",
    )
    try:
        page = {"Origin": stack.base_url}  # a browser's page: it may replace its session
        async with httpx.AsyncClient(base_url=stack.base_url, headers=page) as client:
            answers = [await client.post("/api/sessions") for _ in range(5)]
    finally:
        stack.close()
    assert [a.status_code for a in answers[:3]] == [201] * 3
    assert_error(answers[3], 429, "too_many_requests")
    assert "retry-after" in answers[3].headers


# headers and logs


@pytest.mark.parametrize("path", ["/", "/jobs/x", "/static/app.js", "/api/jobs", "/healthz"])
async def test_security_headers_on_every_answer(guarded: Stack, path: str) -> None:
    async with httpx.AsyncClient(base_url=guarded.base_url) as client:
        response = await client.get(path)
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_no_token_reaches_the_logs(guarded: Stack) -> None:
    (token,) = await sessions(guarded, 1)
    async with guarded.client(token) as client:
        job_id = await submit(client, "demo", duration=0.2, fail_step="report")
        await watch(guarded, token, job_id)
        await client.get("/api/jobs", params={"limit": "x"})
    async with guarded.client(token + "-wrong") as wrong:
        await wrong.get("/api/jobs")
    async with guarded.client(ADMIN_TOKEN) as admin:
        await admin.get("/api/admin/stats")
    logs = "".join(guarded.logs(name) for name in ("web", "worker-0"))
    assert job_id in logs  # the logs do speak of the job
    assert token not in logs and ADMIN_TOKEN not in logs


async def test_parallel_submits_cannot_race_past_the_active_cap(guarded: Stack) -> None:
    (token,) = await sessions(guarded, 1)
    async with guarded.client(token) as client:
        later = {"type": "noop", "delay_seconds": 600}
        answers = await asyncio.gather(*(client.post("/api/jobs", json=later) for _ in range(4)))
        listed = (await client.get("/api/jobs")).json()["jobs"]
    assert sorted(a.status_code for a in answers) == [202, 202, 429, 429]
    assert len(listed) == 2
