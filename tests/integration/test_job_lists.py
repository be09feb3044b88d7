"""Lists and feeds over many jobs: by tag, subject, tenant, status, type and age, a page at a
time, for owners, app keys and browser tokens; ``/ws?tag=`` and a token's feed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import jwt
import orjson
import pytest
from websockets.asyncio.client import connect

from jobcast.endpoints import Endpoints
from jobcast.store import NewAppKey, Store
from tests.conftest import DatabaseFactory
from tests.integration.test_errors import assert_error
from tests.support import Stack, eventually, launch

# (subject, tenant, tags) of the app's jobs; each is pending for ten minutes
JOBS = [
    ("ann", "acme", ["org:1", "report"]),
    ("ann", "acme", ["org:1"]),
    ("bob", "acme", ["report"]),
    ("bob", "umbrella", ["org:2", "report"]),
    ("cat", "umbrella", []),
    ("cat", "acme", ["org:1", "export"]),
    ("dan", "initech", ["report"]),
]


@pytest.fixture(scope="module")
async def lists_stack(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    stack = await launch(
        await new_database(), endpoints.redis_url, tmp_path_factory.mktemp("job-lists")
    )
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="module")
async def app(lists_stack: Stack) -> AsyncIterator[tuple[NewAppKey, dict[str, tuple[Any, ...]]]]:
    """An app key and its jobs: id -> (subject, tenant, tags)."""
    async with Store.open(lists_stack.database_url, max_size=1) as store:
        key = await store.create_app_key("lists")
    made: dict[str, tuple[Any, ...]] = {}
    async with lists_stack.client(key.bearer) as client:
        for subject, tenant, tags in JOBS:
            body = {
                "type": "noop",
                "delay_seconds": 600,
                "subject": subject,
                "tenant": tenant,
                "tags": tags,
            }
            response = await client.post("/api/jobs", json=body)
            assert response.status_code == 202, response.text
            made[response.json()["id"]] = (subject, tenant, tags)
    yield key, made


def mint(key: NewAppKey, **claims: Any) -> str:
    claims["exp"] = int(time.time() + 600)
    return jwt.encode(claims, key.signing_secret, algorithm="HS256", headers={"kid": key.key.id})


async def every_page(client: httpx.AsyncClient, **params: Any) -> list[str]:
    """Every job id of a list, following its cursor two at a time."""
    ids: list[str] = []
    cursor = None
    while True:
        query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/jobs", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def test_an_app_key_lists_its_jobs_by_each_filter_page_by_page(
    lists_stack: Stack, app: tuple[NewAppKey, dict[str, tuple[Any, ...]]]
) -> None:
    key, made = app
    newest_first = list(reversed(made))
    async with lists_stack.client(key.bearer) as client:
        assert await every_page(client) == newest_first  # no job twice, none left out
        for params, keep in (
            ({"tag": "org:1"}, lambda s, t, tags: "org:1" in tags),
            ({"subject": "bob"}, lambda s, t, tags: s == "bob"),
            (
                {"tenant": "acme", "tag": "report"},
                lambda s, t, tags: t == "acme" and "report" in tags,
            ),
            ({"status": "pending", "type": "noop"}, lambda s, t, tags: True),
        ):
            expected = [i for i in newest_first if keep(*made[i])]
            assert await every_page(client, **params) == expected, params
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert await every_page(client, since=future) == []
        assert await every_page(client, type="demo") == []
        assert_error(await client.get("/api/jobs", params={"cursor": "nope"}), 400, "bad_request")
        assert_error(await client.get("/api/jobs", params={"tag": "t" * 101}), 400, "bad_request")
        assert_error(await client.get("/api/jobs", params={"tag": "a\x00"}), 422, "invalid_input")
        assert_error(
            await client.get("/api/jobs", params={"since": "yesterday"}), 400, "bad_request"
        )
    # an owner sees its own jobs only, whatever it filters by
    owner = await lists_stack.owner()
    async with lists_stack.client(owner) as client:
        mine = await client.post(
            "/api/jobs", json={"type": "noop", "tags": ["org:1"], "delay_seconds": 600}
        )
        assert await every_page(client, tag="org:1") == [mine.json()["id"]]


async def test_a_token_lists_only_its_scope(
    lists_stack: Stack, app: tuple[NewAppKey, dict[str, tuple[Any, ...]]]
) -> None:
    key, made = app
    newest_first = list(reversed(made))
    token = mint(key, tenant="acme", tags=["org:1", "export"])
    async with lists_stack.client(token) as browser:
        expected = [
            i
            for i in newest_first
            if made[i][1] == "acme" and {"org:1", "export"} & set(made[i][2])
        ]
        assert await every_page(browser) == expected and expected
        assert await every_page(browser, tenant="umbrella") == []
        assert await every_page(browser, subject="cat") == [
            i for i in expected if made[i][0] == "cat"
        ]


async def test_a_feed_over_a_tag_starts_with_its_jobs_and_sends_only_theirs(
    lists_stack: Stack, app: tuple[NewAppKey, dict[str, tuple[Any, ...]]]
) -> None:
    key, made = app
    async with lists_stack.client(key.bearer) as client:
        tagged = (
            await client.post(
                "/api/jobs", json={"type": "noop", "tags": ["live"], "delay_seconds": 600}
            )
        ).json()["id"]
        other = (
            await client.post("/api/jobs", json={"type": "noop", "delay_seconds": 600})
        ).json()["id"]
        headers = {"Authorization": f"Bearer {key.bearer}"}
        async with connect(
            f"{lists_stack.ws_base}/ws?tag=live", additional_headers=headers
        ) as feed:
            snapshot = orjson.loads(await feed.recv())
            assert snapshot["type"] == "snapshot"
            assert [job["id"] for job in snapshot["jobs"]] == [tagged]
            assert (await client.post(f"/api/jobs/{other}/cancel")).status_code == 202
            assert (await client.post(f"/api/jobs/{tagged}/cancel")).status_code == 202
            event = orjson.loads(await asyncio.wait_for(feed.recv(), 10))
            assert (event["job_id"], event["status"]) == (tagged, "cancelled"), event

    # a token scoped to a tenant: a snapshot of the tenant's jobs, nothing of the others
    token = mint(key, tenant="umbrella")
    async with connect(f"{lists_stack.ws_base}/ws?token={token}") as feed:
        snapshot = orjson.loads(await feed.recv())
        expected = [i for i in reversed(made) if made[i][1] == "umbrella"]
        assert [job["id"] for job in snapshot["jobs"]] == expected


async def test_a_tag_feed_cut_off_resumes_from_its_position_with_nothing_missed(
    lists_stack: Stack, app: tuple[NewAppKey, dict[str, tuple[Any, ...]]]
) -> None:
    key, _ = app
    headers = {"Authorization": f"Bearer {key.bearer}"}
    got: dict[str, list[int]] = {}  # job id -> seqs received, in order

    def note(message: dict[str, Any]) -> str:
        assert message["type"] == "event", message
        got.setdefault(message["job_id"], []).append(message["seq"])
        return str(message["at"])

    async with lists_stack.client(key.bearer) as client:
        async with connect(
            f"{lists_stack.ws_base}/ws?tag=resume", additional_headers=headers
        ) as feed:
            position = orjson.loads(await feed.recv())["position"]
            ids = []
            for _ in range(3):
                body = {"type": "demo", "input": {"duration": 2}, "tags": ["resume"]}
                ids.append((await client.post("/api/jobs", json=body)).json()["id"])
            while sum(len(seqs) for seqs in got.values()) < 2:
                position = note(orjson.loads(await asyncio.wait_for(feed.recv(), 20)))
            feed.transport.abort()  # the connection cut, no closing handshake

        async def ended() -> bool:
            jobs = [(await client.get(f"/api/jobs/{i}")).json() for i in ids]
            return all(job["status"] in ("completed", "failed", "cancelled") for job in jobs)

        await eventually(ended, timeout_s=60)  # every job's end falls within the cut
        conn = await asyncpg.connect(lists_stack.database_url)
        try:
            rows = await conn.fetch(
                "SELECT job_id::text, seq FROM job_events"
                " WHERE job_id = ANY($1::uuid[]) AND kind <> 'progress'",
                ids,
            )
        finally:
            await conn.close()
        stored: dict[str, set[int]] = {}
        for row in rows:
            stored.setdefault(row["job_id"], set()).add(row["seq"])
        missed_before = sum(len(stored[i] - set(got.get(i, []))) for i in ids)

        resumed: dict[str, list[int]] = {}
        url = f"{lists_stack.ws_base}/ws?tag=resume&since={quote(position)}"
        async with connect(url, additional_headers=headers) as feed:
            snapshot = orjson.loads(await feed.recv())
            assert sorted(job["id"] for job in snapshot["jobs"]) == sorted(ids)
            while any(stored[i] - set(got.get(i, [])) for i in ids):
                message = orjson.loads(await asyncio.wait_for(feed.recv(), 20))
                note(message)
                resumed.setdefault(message["job_id"], []).append(message["seq"])

    assert missed_before > 0  # the cut did cost the feed events, which the resume brought
    assert {i: set(got[i]) for i in ids} == stored
    assert all(seqs == sorted(seqs) for seqs in resumed.values()), resumed
