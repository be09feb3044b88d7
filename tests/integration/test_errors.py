"""Every error answer of the API, in the one error shape; and owners kept apart."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support import Stack, submit, watch


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


async def count_jobs(client: httpx.AsyncClient) -> int:
    return len((await client.get("/api/jobs")).json()["jobs"])


async def test_missing_or_unknown_token_is_401(stack: Stack) -> None:
    async with stack.client() as anonymous, stack.client("not-a-token") as stranger:
        assert_error(await anonymous.get("/api/jobs"), 401, "unauthorized")
        assert_error(await anonymous.post("/api/jobs", json={"type": "noop"}), 401, "unauthorized")
        assert_error(await stranger.get("/api/job-types"), 401, "unauthorized")


@pytest.mark.parametrize(
    ("body", "status", "code", "names"),
    [
        (b"{not json", 400, "bad_request", "JSON"),
        (b"[1, 2]", 400, "bad_request", "object"),
        (b'"noop"', 400, "bad_request", "object"),
        (b'{"type": "nope"}', 422, "invalid_input", "nope"),
        (b'{"input": {}}', 422, "invalid_input", "type"),
        (b'{"type": "demo", "input": {"duration": "slow"}}', 422, "invalid_input", "duration"),
        (b'{"type": "demo", "input": {"duration": -1}}', 422, "invalid_input", "duration"),
        (b'{"type": "demo", "input": {"colour": "red"}}', 422, "invalid_input", "colour"),
        (b'{"type": "demo", "input": []}', 422, "invalid_input", "input"),
        (b'{"type": "noop", "priority": "high"}', 422, "invalid_input", "priority"),
        (b'{"type": "noop", "priority": 11}', 422, "invalid_input", "priority"),
        (b'{"type": "noop", "surprise": 1}', 422, "invalid_input", "surprise"),
        (
            b'{"type": "demo", "input": {"fail_step": "a\\u0000"}}',
            422,
            "invalid_input",
            "input.fail_step",
        ),
        (b'{"type": "noop", "input": {"\\u0000": 1}}', 422, "invalid_input", "U+0000"),
    ],
)
async def test_bad_submit_gets_a_clear_4xx_and_stores_nothing(
    stack: Stack, body: bytes, status: int, code: str, names: str
) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        response = await client.post(
            "/api/jobs", content=body, headers={"Content-Type": "application/json"}
        )
        error = assert_error(response, status, code)
        assert names in error["message"]
        assert await count_jobs(client) == 0


@pytest.mark.parametrize(
    "path",
    ["/api/jobs/{id}", "/api/jobs/{id}/events", "/api/jobs/{id}/result"],
)
async def test_another_owners_job_is_a_plain_404(stack: Stack, path: str) -> None:
    alice, bob = await stack.owner(), await stack.owner()
    async with stack.client(alice) as a, stack.client(bob) as b:
        job_id = await submit(a, "noop")
        theirs = await b.get(path.format(id=job_id))
        missing = await b.get(path.format(id="00000000-0000-0000-0000-000000000000"))
        malformed = await b.get(path.format(id="not-a-uuid"))
        mine = await a.get(path.format(id=job_id))
        assert (await b.get("/api/jobs")).json()["jobs"] == []
    for response in (theirs, missing, malformed):
        assert_error(response, 404, "not_found")
    assert theirs.json()["error"]["message"].replace(job_id, "X") == missing.json()["error"][
        "message"
    ].replace("00000000-0000-0000-0000-000000000000", "X")
    assert mine.status_code in (200, 202)


@pytest.mark.parametrize(
    ("params", "names"),
    [({"limit": "lots"}, "limit"), ({"limit": "0"}, "limit"), ({"status": "sleeping"}, "status")],
)
async def test_bad_list_parameters_are_400(
    stack: Stack, params: dict[str, str], names: str
) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        error = assert_error(await client.get("/api/jobs", params=params), 400, "bad_request")
    assert names in error["message"]


async def test_bad_events_cursor_is_400(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "noop")
        assert_error(await client.get(f"/api/jobs/{job_id}/events?after=-1"), 400, "bad_request")
        assert_error(await client.get(f"/api/jobs/{job_id}/events?after=x"), 400, "bad_request")


async def test_unknown_route_and_method_use_the_error_shape(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        assert_error(await client.get("/api/nothing-here"), 404, "not_found")
        assert_error(await client.delete("/api/jobs"), 405, "method_not_allowed")


async def test_websocket_needs_a_token(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        job_id = await submit(client, "noop")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{stack.ws_base}/ws/jobs/{job_id}"):
            pass
    assert refused.value.response.status_code == 401


async def test_websocket_on_another_owners_job_closes_4404(stack: Stack) -> None:
    alice, bob = await stack.owner(), await stack.owner()
    async with stack.client(alice) as client:
        job_id = await submit(client, "noop")
    headers = {"Authorization": f"Bearer {bob}"}
    async with connect(f"{stack.ws_base}/ws/jobs/{job_id}", additional_headers=headers) as ws:
        first = await ws.recv()
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert b"not_found" in (first if isinstance(first, bytes) else first.encode())
    assert ws.close_code == 4404
    # and the owner still sees it
    seen = await watch(stack, alice, job_id)
    assert seen.snapshot["job"]["id"] == job_id
