"""The operator's job page through the admin API: which worker ran each attempt, the
checkpoints a later attempt skips, every webhook try with its time and the next one, and a
bulk cancel that takes the children of the jobs it cancels with them."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobcast.endpoints import Endpoints
from tests.conftest import DatabaseFactory
from tests.integration.test_errors import assert_error
from tests.integration.test_queue_features import Receiver
from tests.support import Stack, eventually, launch, submit

ADMIN = "admin-" + "p" * 40
OPERATOR = "operator-" + "q" * 40
FINAL = ("completed", "failed", "cancelled")


@pytest.fixture(scope="module")
async def paged(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("paged"),
        workers=2,
        JOBCAST_ADMIN_TOKEN=ADMIN,
        JOBCAST_OPERATOR_TOKEN=OPERATOR,
        JOBCAST_JOB_MODULES="tests.jobtypes,tests.durable",
        JOBCAST_WEBHOOK_HOSTS="127.0.0.1",
        JOBCAST_WEBHOOK_RETRY_BASE_S="0.3",
    )
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


async def _detail(stack: Stack, job_id: str, token: str = ADMIN) -> dict[str, Any]:
    async with stack.client(token) as admin:
        response = await admin.get(f"/api/admin/jobs/{job_id}")
    assert response.status_code == 200, response.text
    detail: dict[str, Any] = response.json()
    return detail


async def _final(stack: Stack, job_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        detail = await _detail(stack, job_id)
        return detail if detail["job"]["status"] in FINAL else None

    return await eventually(done, timeout_s=60, what=f"job {job_id} finished")


async def test_each_attempt_names_its_worker_and_the_checkpoints_show_what_it_skipped(
    paged: Stack, tmp_path: Path
) -> None:
    token = await paged.owner()
    async with paged.client(token) as mine:
        # step three fails the first attempt; the second resumes from two's checkpoint
        job_id = await submit(
            mine, "five_steps", log_path=str(tmp_path / "ran.log"), flaky_in="three"
        )
    detail = await _final(paged, job_id)
    assert detail["job"]["status"] == "completed", detail["job"]
    workers = {
        f"{socket.gethostname()}:{proc.pid}"
        for name, proc in paged.procs.items()
        if name.startswith("worker")
    }
    claims = detail["claims"]
    assert [c["attempt"] for c in claims] == [1, 2]
    assert {c["worker"] for c in claims} <= workers, (claims, workers)
    assert claims[0]["claimed_at"] < claims[1]["claimed_at"]
    # the attempts the events tell of are the ones claimed
    attempts = {e["attempt"] for e in detail["events"] if e.get("attempt") is not None}
    assert attempts - {0} == {1, 2}  # 0: the submit, before any claim
    checkpoints = {c["step"]: c for c in detail["checkpoints"]}
    assert list(checkpoints) == ["one", "two", "three", "four", "five"]
    assert [c["result"] for c in checkpoints.values()] == [1, 2, 3, 4, 5]
    # one and two ran once (attempt 2 skipped them); three was started by both attempts
    assert (checkpoints["one"]["attempts"], checkpoints["three"]["attempts"]) == (1, 2)
    assert (tmp_path / "ran.log").read_text().split().count("one") == 1
    # the read-only operator sees the same page
    assert (await _detail(paged, job_id, OPERATOR))["claims"] == claims


async def test_a_job_with_no_checkpoint_and_no_claim_shows_none(paged: Stack) -> None:
    token = await paged.owner()
    async with paged.client(token) as mine:
        draft = await mine.post("/api/jobs", json={"type": "noop", "draft": True})
    assert draft.status_code == 201, draft.text
    detail = await _detail(paged, draft.json()["id"])
    assert (detail["claims"], detail["checkpoints"]) == ([], [])
    async with paged.client(ADMIN) as admin:
        assert_error(
            await admin.get("/api/admin/jobs/00000000-0000-0000-0000-000000000000"),
            404,
            "not_found",
        )


async def test_every_webhook_try_is_listed_with_its_time_code_error_and_next_try(
    paged: Stack, receiver: Receiver
) -> None:
    receiver.answers = [500, 503]  # two failed tries, then delivered
    token = await paged.owner()
    async with paged.client(token) as mine:
        response = await mine.post("/api/jobs", json={"type": "noop", "callback_url": receiver.url})
    job_id = response.json()["id"]

    async def delivered() -> list[dict[str, Any]] | None:
        tries: list[dict[str, Any]] = (await _detail(paged, job_id))["job"]["webhook"]["deliveries"]
        return tries if tries and tries[-1]["status"] == "delivered" else None

    tries = await eventually(delivered, timeout_s=60, what="the webhook delivered")
    assert [(d["attempt"], d["status"], d["status_code"]) for d in tries] == [
        (1, "retrying", 500),
        (2, "retrying", 503),
        (3, "delivered", 200),
    ]
    assert len(receiver.calls) == 3
    assert all(d["tried_at"] is not None for d in tries)
    assert tries[0]["tried_at"] < tries[1]["tried_at"] < tries[2]["tried_at"]
    # each failed try says when the next one was due; the last has none
    assert [d["next_at"] is not None for d in tries] == [True, True, False]
    assert tries[0]["next_at"] <= tries[1]["tried_at"]
    assert tries[0]["error"] and "500" in tries[0]["error"]


async def test_a_bulk_cancel_cancels_the_children_of_the_jobs_it_cancels(paged: Stack) -> None:
    token = await paged.owner()
    async with paged.client(token) as mine:
        parents = [await submit(mine, "parent", children=3, duration=30) for _ in range(2)]
        spared = await submit(mine, "parent", children=2, duration=30)

        async def spawned() -> list[str] | None:
            ids = [
                c["id"]
                for p in (*parents, spared)
                for c in (await mine.get(f"/api/jobs/{p}")).json()["children"] or []
            ]
            return ids if len(ids) == 8 else None

        children = await eventually(spawned, timeout_s=60, what="the children spawned")
    async with paged.client(ADMIN) as admin:
        accepted = await admin.post("/api/admin/jobs/cancel", json={"ids": parents})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["matched"] == 2

    async def cancelled() -> list[dict[str, Any]] | None:
        found = [(await _detail(paged, j))["job"] for j in children[:6]]
        return found if all(j["status"] == "cancelled" for j in found) else None

    found = await eventually(cancelled, timeout_s=30, what="the children cancelled")
    assert {j["message"] for j in found} == {"Cancelled with its parent job"}
    for child in found:
        events = (await _detail(paged, child["id"]))["events"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert events[-1]["status"] == "cancelled"
    # the parent not asked for and its children run on
    assert (await _detail(paged, spared))["job"]["status"] == "running"
    for child in children[6:]:
        assert (await _detail(paged, child))["job"]["status"] not in FINAL
    async with paged.client(ADMIN) as admin:
        await admin.post("/api/admin/jobs/cancel", json={"ids": [spared]})
