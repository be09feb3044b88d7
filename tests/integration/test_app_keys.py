"""App keys and the browser tokens minted from them, against a real web process and worker.

An app key submits on behalf of its users (subject, tenant) and sees every job it
submitted; a browser token sees only its scope, on every surface; bad tokens, revoked
keys and an operator's place are refused in the one error shape.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import jwt
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from jobcast.endpoints import Endpoints
from jobcast.store import NewAppKey, Store
from tests.conftest import DatabaseFactory
from tests.integration.test_errors import assert_error
from tests.support import Stack, eventually, launch, run_cli

ADMIN_TOKEN = "admin-" + "y" * 40
MAX_TTL_S = 3600
SHOP = "https://shop.example.org"  # the app's own origin, another site than jobcast's


@pytest.fixture(scope="module")
async def app_stack(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("app-keys"),
        JOBCAST_ADMIN_TOKEN=ADMIN_TOKEN,
        JOBCAST_TOKEN_MAX_TTL_S=str(MAX_TTL_S),
        JOBCAST_MAX_SOCKETS_PER_OWNER="2",
        JOBCAST_ALLOWED_ORIGINS=SHOP,
    )
    try:
        yield stack
    finally:
        stack.close()


async def new_key(stack: Stack, name: str = "shop") -> NewAppKey:
    async with Store.open(stack.database_url, max_size=1) as store:
        return await store.create_app_key(name)


def mint(key: NewAppKey, ttl_s: float = 600, secret: str | None = None, **claims: Any) -> str:
    claims.setdefault("exp", int(time.time() + ttl_s))
    return jwt.encode(
        claims, secret or key.signing_secret, algorithm="HS256", headers={"kid": key.key.id}
    )


async def submit_as(client: httpx.AsyncClient, **extra: Any) -> str:
    body = {"type": "demo", "input": {"duration": 30}, **extra}
    response = await client.post("/api/jobs", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


async def test_keys_cli_makes_lists_and_revokes_a_key_stored_hashed(app_stack: Stack) -> None:
    env = {**os.environ, "DATABASE_URL": app_stack.database_url}

    def jobcast(*args: str) -> str:
        done = run_cli(*args, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    shown = dict(
        line.split(":", 1) for line in jobcast("keys", "create", "--name", "cli-shop").splitlines()
    )
    key_id, bearer = shown["id"].strip(), shown["key"].strip()
    assert bearer.startswith("jck_") and shown["signing secret"].strip().startswith("jcs_")
    conn = await asyncpg.connect(app_stack.database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM app_keys WHERE id = $1", key_id)
    finally:
        await conn.close()
    assert row is not None and bearer not in repr(dict(row))  # only its hash is kept
    listed = jobcast("keys", "list")
    assert key_id in listed and "cli-shop" in listed and bearer not in listed

    async with app_stack.client(bearer) as app:
        await submit_as(app, subject="user-1")
        jobcast("keys", "revoke", key_id)
        refused = assert_error(await app.get("/api/jobs/" + "0" * 32), 401, "unauthorized")
        assert "revoked" in refused["message"]
    [before] = [line.split() for line in listed.splitlines() if key_id in line]
    [after] = [line.split() for line in jobcast("keys", "list").splitlines() if key_id in line]
    assert (len(before), len(after)) == (3, 4)  # the time it was revoked, in its own column


async def test_an_app_key_submits_for_its_users_and_sees_what_it_submitted(
    app_stack: Stack,
) -> None:
    key, other = await new_key(app_stack), await new_key(app_stack, "other")
    owner = await app_stack.owner()
    async with (
        app_stack.client(key.bearer) as app,
        app_stack.client(other.bearer) as stranger,
        app_stack.client(owner) as person,
    ):
        job_id = await submit_as(
            app, subject="user-7", tenant="org-42", tags=["org:42", "report"], metadata={"n": 1}
        )
        job = (await app.get(f"/api/jobs/{job_id}")).json()
        assert (job["subject"], job["tenant"], job["tags"]) == (
            "user-7",
            "org-42",
            ["org:42", "report"],
        )
        assert job["metadata"] == {"n": 1}
        assert_error(await stranger.get(f"/api/jobs/{job_id}"), 404, "not_found")
        assert_error(await person.get(f"/api/jobs/{job_id}"), 404, "not_found")
        assert (await app.post(f"/api/jobs/{job_id}/cancel")).status_code == 202

        # an owner token names no subject or tenant; caps are refused, nothing stored
        before = len((await app.get("/api/jobs")).json()["jobs"])
        assert_error(
            await person.post("/api/jobs", json={"type": "noop", "subject": "u"}), 403, "forbidden"
        )
        for bad in (
            {"subject": "u" * 201},
            {"tenant": ""},
            {"tags": [f"t{i}" for i in range(11)]},
            {"tags": ["t" * 101]},
            {"metadata": {"blob": "x" * 70_000}},
        ):
            error = assert_error(
                await app.post("/api/jobs", json={"type": "noop", **bad}), 422, "invalid_input"
            )
            assert next(iter(bad)) in error["message"], error
        assert len((await app.get("/api/jobs")).json()["jobs"]) == before

        # where only the operator may act, an app key is refused (403), not unknown (401)
        assert_error(await app.get("/api/admin/stats"), 403, "forbidden")


async def test_a_token_scoped_to_one_job_finds_no_other_on_any_surface(app_stack: Stack) -> None:
    key = await new_key(app_stack)
    async with app_stack.client(key.bearer) as app:
        job_a = await submit_as(app, subject="alice")
        job_b = await submit_as(app, subject="alice")
        token = mint(key, jobs=[job_a], can=["read", "input", "cancel"])
        async with app_stack.client(token) as browser:
            assert (await browser.get(f"/api/jobs/{job_a}")).status_code == 200
            for method, path in (
                ("GET", ""),
                ("GET", "/events"),
                ("GET", "/result"),
                ("POST", "/cancel"),
                ("POST", "/input"),
            ):
                body = {"json": {"answer": {}}} if method == "POST" else {}
                answer = await browser.request(method, f"/api/jobs/{job_b}{path}", **body)
                assert_error(answer, 404, "not_found")
            # the list is its scope's, not the app's; it is no way to submit
            listed = (await browser.get("/api/jobs")).json()["jobs"]
            assert [job["id"] for job in listed] == [job_a]
            assert_error(await browser.post("/api/jobs", json={"type": "noop"}), 403, "forbidden")
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{app_stack.ws_base}/ws/jobs/{job_b}?token={token}"):
                pass
        assert refused.value.response.status_code == 404

        # the job socket of A works; the feed sends A's events and never B's
        async with connect(f"{app_stack.ws_base}/ws?token={token}") as feed:
            async with connect(f"{app_stack.ws_base}/ws/jobs/{job_a}?token={token}") as ws:
                snapshot = orjson.loads(await ws.recv())
                assert snapshot["job"]["id"] == job_a
            first = orjson.loads(await feed.recv())
            assert [job["id"] for job in first["jobs"]] == [job_a]  # the scope's snapshot
            assert (await app.post(f"/api/jobs/{job_b}/cancel")).status_code == 202
            assert (await app.post(f"/api/jobs/{job_a}/cancel")).status_code == 202
            while True:  # B's cancel came first, and is never sent
                event = orjson.loads(await asyncio.wait_for(feed.recv(), 10))
                if event.get("type") == "resync":  # pub/sub was interrupted: a client reloads
                    reloaded = (await app.get(f"/api/jobs/{job_a}")).json()
                    if reloaded["status"] == "cancelled":
                        break
                    continue
                assert event["job_id"] == job_a, event
                if event.get("status") == "cancelled":
                    break


async def test_a_token_may_do_only_what_it_was_given(app_stack: Stack) -> None:
    key = await new_key(app_stack)
    async with app_stack.client(key.bearer) as app:
        mine = await submit_as(app, subject="bob", tenant="acme", tags=["org:1"])
        theirs = await submit_as(app, subject="carol", tenant="acme", tags=["org:1"])
        reader = mint(key, sub="bob")
        async with app_stack.client(reader) as browser:
            assert (await browser.get(f"/api/jobs/{mine}")).status_code == 200
            assert_error(await browser.get(f"/api/jobs/{theirs}"), 404, "not_found")
            assert_error(await browser.post(f"/api/jobs/{mine}/cancel"), 403, "forbidden")
        team = mint(key, tenant="acme", tags=["org:1"], can=["cancel", "read"])
        async with app_stack.client(team) as browser:
            assert (await browser.post(f"/api/jobs/{theirs}/cancel")).status_code == 202
        # asked of jobcast rather than minted: the same kind of token
        asked = await app.post(
            "/api/tokens", json={"jobs": [mine], "can": ["read"], "expires_in": 60}
        )
        assert asked.status_code == 201, asked.text
        async with app_stack.client(asked.json()["token"]) as browser:
            assert (await browser.get(f"/api/jobs/{mine}")).status_code == 200
            assert_error(await browser.get(f"/api/jobs/{theirs}"), 404, "not_found")
            assert_error(
                await browser.post("/api/tokens", json={"expires_in": 5}), 403, "forbidden"
            )
        for bad in ({"can": ["read"], "expires_in": 60}, {"jobs": [mine], "expires_in": 10**9}):
            assert_error(await app.post("/api/tokens", json=bad), 422, "invalid_input")


async def test_bad_tokens_are_refused_each_with_its_reason(app_stack: Stack) -> None:
    key, other = await new_key(app_stack), await new_key(app_stack, "other")
    async with app_stack.client(key.bearer) as app:
        job_id = await submit_as(app)
    forged = jwt.encode(
        {"jobs": [job_id], "exp": int(time.time() + 60)},
        other.signing_secret,
        algorithm="HS256",
        headers={"kid": key.key.id},
    )
    unsigned = jwt.encode({"jobs": [job_id], "exp": int(time.time() + 60)}, None, algorithm="none")
    cases = {
        "bad signature": (mint(key, secret="jcs_" + "g" * 43, jobs=[job_id]), "signature"),
        "another key's signature": (forged, "signature"),
        "no exp": (
            jwt.encode({"jobs": [job_id]}, key.signing_secret, headers={"kid": key.key.id}),
            "exp",
        ),
        "exp too far out": (mint(key, ttl_s=MAX_TTL_S * 2, jobs=[job_id]), "at most"),
        "a scope naming nothing": (mint(key, can=["read"]), "names nothing"),
        "an unknown action": (mint(key, jobs=[job_id], can=["delete"]), "delete"),
        "alg none": (unsigned, "HS256"),
        "unknown key": (
            jwt.encode(
                {"jobs": [job_id], "exp": int(time.time() + 60)},
                key.signing_secret,
                headers={"kid": "ak_0000000000000000"},
            ),
            "no known app key",
        ),
        "a cut signature": (mint(key, jobs=[job_id])[:-10], "cannot be read"),
    }
    for what, (token, says) in cases.items():
        async with app_stack.client(token) as browser:
            error = assert_error(await browser.get(f"/api/jobs/{job_id}"), 401, "unauthorized")
        assert says in error["message"], (what, error)
    expired = mint(key, ttl_s=-5, jobs=[job_id])
    async with app_stack.client(expired) as browser:
        assert_error(await browser.get(f"/api/jobs/{job_id}"), 401, "token_expired")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{app_stack.ws_base}/ws/jobs/{job_id}?token={expired}"):
            pass
    assert refused.value.response.status_code == 401

    # revoking the key ends every token minted from it, at once
    good = mint(key, jobs=[job_id])
    async with app_stack.client(good) as browser:
        assert (await browser.get(f"/api/jobs/{job_id}")).status_code == 200
        async with Store.open(app_stack.database_url, max_size=1) as store:
            await store.revoke_app_key(key.key.id)
        error = assert_error(await browser.get(f"/api/jobs/{job_id}"), 401, "unauthorized")
        assert "revoked" in error["message"]


async def test_an_open_socket_is_closed_when_its_token_expires(app_stack: Stack) -> None:
    key = await new_key(app_stack)
    async with app_stack.client(key.bearer) as app:
        job_id = await submit_as(app)
    for path in (f"/ws/jobs/{job_id}", "/ws"):
        token = mint(key, ttl_s=2, jobs=[job_id])
        opened = time.monotonic()
        async with connect(f"{app_stack.ws_base}{path}?token={token}") as ws:
            try:
                async for _ in ws:
                    pass
            except ConnectionClosed:
                pass
            assert (ws.close_code, ws.close_reason) == (4401, "token expired")
        assert 0.5 < time.monotonic() - opened < 10  # closed at its exp, not at once


async def test_browser_tokens_are_not_held_to_the_per_owner_socket_cap(app_stack: Stack) -> None:
    """An app's browsers share its key's owner: the cap of 2 per owner would starve them."""
    key = await new_key(app_stack)
    async with app_stack.client(key.bearer) as app:
        job_id = await submit_as(app)
    token = mint(key, jobs=[job_id])
    url = f"{app_stack.ws_base}/ws/jobs/{job_id}?token={token}"
    async with connect(url) as a, connect(url) as b, connect(url) as c:
        for ws in (a, b, c):
            assert orjson.loads(await ws.recv())["type"] == "snapshot"


async def test_a_token_in_a_url_reaches_no_log_line(app_stack: Stack) -> None:
    key = await new_key(app_stack)
    async with app_stack.client(key.bearer) as app:
        job_id = await submit_as(app)
    token = mint(key, jobs=[job_id])
    async with connect(f"{app_stack.ws_base}/ws/jobs/{job_id}?token={token}") as ws:
        await ws.recv()
    signature = token.rsplit(".", 1)[1]

    async def logged() -> bool:
        return f"/ws/jobs/{job_id}" in app_stack.logs("web")

    await eventually(logged, what="the socket's log line")
    assert signature not in app_stack.logs("web")


async def test_the_apps_pages_call_with_a_token_across_origins(app_stack: Stack) -> None:
    """CORS lets the app's origin call with a token; a bearer needs no cookie's Origin check;
    a foreign origin is told nothing, and the cookie keeps its check."""
    key = await new_key(app_stack)
    async with app_stack.client(key.bearer) as app:
        job_id = await submit_as(app)
    token = mint(key, jobs=[job_id], can=["read", "cancel"])
    async with httpx.AsyncClient(base_url=app_stack.base_url) as browser:
        preflight = await browser.options(
            f"/api/jobs/{job_id}/cancel",
            headers={
                "Origin": SHOP,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == SHOP
        bearer = {"Origin": SHOP, "Authorization": f"Bearer {token}"}
        read = await browser.get(f"/api/jobs/{job_id}", headers=bearer)
        assert read.status_code == 200 and read.headers["access-control-allow-origin"] == SHOP
        foreign = {**bearer, "Origin": "https://elsewhere.example"}
        cancelled = await browser.post(f"/api/jobs/{job_id}/cancel", headers=foreign)
        assert cancelled.status_code == 202, cancelled.text  # no cookie: nothing to forge
        assert "access-control-allow-origin" not in cancelled.headers  # its page reads nothing
        refused = await browser.options(
            f"/api/jobs/{job_id}",
            headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in refused.headers
        session = await browser.post("/api/sessions", headers={"Origin": app_stack.base_url})
        assert session.status_code == 201
        forged = await browser.post(
            "/api/jobs",
            json={"type": "noop"},
            headers={"Origin": "https://elsewhere.example"},
        )
        assert_error(forged, 403, "forbidden")
    # a websocket with a token is opened from any page: the token is the credential
    async with connect(
        f"{app_stack.ws_base}/ws/jobs/{job_id}?token={token}",
        additional_headers={"Origin": "https://elsewhere.example"},
    ) as ws:
        assert orjson.loads(await ws.recv())["type"] == "snapshot"
