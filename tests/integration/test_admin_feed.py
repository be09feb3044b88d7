"""The admin feed: a snapshot, then status changes and bulk progress; resume by cursor."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.integration.test_admin_api import ADMIN, OPERATOR, admined  # noqa: F401
from tests.support import Stack, eventually, submit


async def _until(ws: ClientConnection, wanted: Any, timeout_s: float = 20.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while True:
            message: dict[str, Any] = orjson.loads(await ws.recv())
            if wanted(message):
                return message


def _finished(job_id: str) -> Any:
    return lambda m: (
        m["type"] == "jobs"
        and any(c["job_id"] == job_id and c["status"] == "completed" for c in m["changes"])
    )


async def test_the_feed_sends_a_snapshot_then_status_changes_and_progress(
    admined: Stack,  # noqa: F811
) -> None:
    owner = await admined.owner()
    url = f"{admined.ws_base}/ws/admin?token={OPERATOR}"
    async with connect(url) as ws, admined.client(owner) as mine, admined.client(ADMIN) as admin:
        snapshot = orjson.loads(await ws.recv())
        assert snapshot["type"] == "snapshot" and snapshot["stats"]["role"] == "operator"
        job_id = await submit(mine, "noop")
        change = await _until(ws, _finished(job_id))
        doomed = await submit(mine, "noop")
        await _until(ws, _finished(doomed))
        accepted = await admin.post("/api/admin/jobs/delete", json={"ids": [doomed]})
        action_id = accepted.json()["action_id"]
        done = await _until(
            ws, lambda m: m["type"] == "action" and m["id"] == action_id and m["finished"]
        )
        assert done["done"] == 1 and done["action"] == "delete"
    # a console that lost its socket resumes after the cursor it had, missing nothing
    before = snapshot["cursor"]
    async with connect(f"{admined.ws_base}/ws/admin?token={ADMIN}&since={quote(before)}") as again:
        await again.recv()  # the snapshot
        replayed = await _until(again, _finished(job_id))
    assert {c["job_id"] for c in replayed["changes"]} >= {c["job_id"] for c in change["changes"]}


async def test_the_feeds_push_the_live_counts_each_with_its_role(
    admined: Stack,  # noqa: F811
) -> None:
    """Every feed of the process gets the stats of one read a period, as the console asks
    for them: the jobs not finished counted, and each socket's own role."""
    owner = await admined.owner()
    async with admined.client(owner) as mine:
        job_id = await submit(mine, "noop")

        async def completed() -> bool:
            return bool((await mine.get(f"/api/jobs/{job_id}")).json()["status"] == "completed")

        await eventually(completed, what="the noop job completed")
    base = f"{admined.ws_base}/ws/admin?token="
    async with connect(base + OPERATOR) as operator, connect(base + ADMIN) as admin:
        pushed = [
            await _until(ws, lambda m: m["type"] == "stats", timeout_s=15)
            for ws in (operator, admin)
        ]
    assert [p["stats"]["role"] for p in pushed] == ["operator", "admin"]
    for p in pushed:
        assert "completed" not in p["stats"]["by_status"]
        assert p["stats"]["last_hour"]["noop"]["finished"] >= 1


@pytest.mark.parametrize(("token", "status"), [("", 401), ("nobody-" + "z" * 40, 401)])
async def test_the_feed_needs_an_admin_token(
    admined: Stack,  # noqa: F811
    token: str,
    status: int,
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{admined.ws_base}/ws/admin?token={token}"):
            pass
    assert refused.value.response.status_code == status
