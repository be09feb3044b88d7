"""Retry policies against the running service: the backoff shapes (measured from the job's
own events), a submit's policy within the type's bounds, an upstream's Retry-After, the
error classes retried at most once, and job types restricted to app keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from jobcast.endpoints import Endpoints
from jobcast.store import Store
from tests.conftest import DatabaseFactory
from tests.integration.test_errors import assert_error
from tests.integration.test_reliability import events_of, wait_status
from tests.support import Stack, launch

# Postgres stamps both events; the next start may only come later than asked
_CLOCK_SLACK_S = 0.02


@pytest.fixture(scope="module")
async def retry_stack(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("retries"),
        JOBCAST_JOB_MODULES="tests.retry_jobtypes",
    )
    try:
        yield stack
    finally:
        stack.close()


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["at"].replace("Z", "+00:00"))


def retries_and_starts(
    events: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The job's retry events (pending, with ``retry_in_s``) and its starts, in order."""
    status = [e for e in events if e["kind"] == "status"]
    retries = [e for e in status if e["status"] == "pending" and "retry_in_s" in e]
    starts = [e for e in status if e["status"] == "running"]
    return retries, starts


def assert_waited(events: list[dict[str, Any]], at_least_s: list[float]) -> None:
    """Each retry was scheduled as asked, and the next start came no earlier than that."""
    retries, starts = retries_and_starts(events)
    assert [r["retry_in_s"] for r in retries] == pytest.approx(at_least_s)
    assert len(starts) == len(retries) + 1
    for retry, start, wait_s in zip(retries, starts[1:], at_least_s, strict=True):
        waited = (_at(start) - _at(retry)).total_seconds()
        assert waited >= wait_s - _CLOCK_SLACK_S, (retry, start)


async def _submit(stack: Stack, token: str, body: dict[str, Any]) -> str:
    async with stack.client(token) as client:
        response = await client.post("/api/jobs", json=body)
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        await wait_status(client, job_id, "failed", "completed", timeout_s=30)
        return job_id


@pytest.mark.parametrize(
    ("retry", "waits"),
    [
        (None, [0.4, 0.8, 1.2]),  # the type's own: linear from 0.4 s
        ({"backoff": "fixed", "base_s": 0.3}, [0.3, 0.3, 0.3]),
        ({"backoff": "linear", "base_s": 0.3}, [0.3, 0.6, 0.9]),
        ({"backoff": "exponential", "base_s": 0.3}, [0.3, 0.6, 1.2]),
        ({"backoff": "exponential", "base_s": 0.3, "max_s": 0.5}, [0.3, 0.5, 0.5]),
    ],
)
async def test_each_backoff_shape_schedules_the_next_attempts_it_says(
    retry_stack: Stack, retry: dict[str, Any] | None, waits: list[float]
) -> None:
    token = await retry_stack.owner()
    body: dict[str, Any] = {"type": "always_fails"}
    if retry is not None:
        body["retry"] = retry
    job_id = await _submit(retry_stack, token, body)
    async with retry_stack.client(token) as client:
        job = (await client.get(f"/api/jobs/{job_id}")).json()
        events = await events_of(client, job_id)
    assert (job["status"], job["attempts"]) == ("failed", len(waits) + 1)
    assert_waited(events, waits)
    conn = await asyncpg.connect(retry_stack.database_url)
    try:
        stored = await conn.fetchval("SELECT policy FROM job_retries WHERE job_id = $1", job_id)
    finally:
        await conn.close()
    if retry is None:
        assert stored is None  # the type's policy, read from the type
    else:
        assert '"jitter": 0' in stored  # the type's jitter, kept where the submit gave none


@pytest.mark.parametrize(
    ("retry", "field"),
    [
        ({"base_s": 5}, "retry.base_s"),  # the type allows 0.2-2
        ({"base_s": 0.1}, "retry.base_s"),
        ({"max_s": 20}, "retry.max_s"),  # at most 10
        ({"max_attempts": 6}, "retry.max_attempts"),  # at most 5
        ({"backoff": "quadratic"}, "retry.backoff"),
        ({"jitter": 1.5}, "retry.jitter"),
        ({"base_s": 2, "max_s": 1}, "retry"),
        ({"wait": 1}, "retry.wait"),
    ],
)
async def test_a_policy_outside_the_types_bounds_is_refused_naming_the_field(
    retry_stack: Stack, retry: dict[str, Any], field: str
) -> None:
    token = await retry_stack.owner()
    async with retry_stack.client(token) as client:
        response = await client.post("/api/jobs", json={"type": "always_fails", "retry": retry})
        error = assert_error(response, 422, "invalid_input")
        assert error["details"][0]["field"] == field, error
        assert field in error["message"]
        assert (await client.get("/api/jobs")).json()["jobs"] == []


async def test_a_policy_within_bounds_sets_the_attempts(retry_stack: Stack) -> None:
    token = await retry_stack.owner()
    retry = {"backoff": "fixed", "base_s": 0.2, "max_attempts": 2}
    job_id = await _submit(retry_stack, token, {"type": "always_fails", "retry": retry})
    async with retry_stack.client(token) as client:
        job = (await client.get(f"/api/jobs/{job_id}")).json()
    assert (job["status"], job["attempts"], job["max_attempts"]) == ("failed", 2, 2)


async def test_retry_after_holds_the_next_attempt_back_as_long_as_asked(
    retry_stack: Stack,
) -> None:
    token = await retry_stack.owner()
    asked_s = 1.5  # the type's own backoff is 0.2 s
    job_id = await _submit(retry_stack, token, {"type": "rate_limited", "input": {"seconds": 1.5}})
    async with retry_stack.client(token) as client:
        job = (await client.get(f"/api/jobs/{job_id}")).json()
        events = await events_of(client, job_id)
    assert (job["status"], job["attempts"]) == ("completed", 2)
    assert_waited(events, [asked_s])
    retries, _ = retries_and_starts(events)
    assert retries[0]["message"].startswith("Retrying at ")
    assert "the service asked us to wait" in retries[0]["message"]
    assert "the upstream answered 429" in retries[0]["message"]


async def test_a_job_shows_the_wait_the_service_asked_for_while_it_waits(
    retry_stack: Stack,
) -> None:
    token = await retry_stack.owner()
    async with retry_stack.client(token) as client:
        response = await client.post(
            "/api/jobs", json={"type": "rate_limited", "input": {"seconds": 5}}
        )
        job_id = response.json()["id"]
        job = await wait_status(client, job_id, "pending", attempts=1)
        assert "the service asked us to wait" in job["message"]
        await client.post(f"/api/jobs/{job_id}/cancel")


async def test_an_error_class_retried_once_fails_the_job_the_second_time(
    retry_stack: Stack,
) -> None:
    token = await retry_stack.owner()
    job_id = await _submit(retry_stack, token, {"type": "parse_fails"})
    async with retry_stack.client(token) as client:
        job = (await client.get(f"/api/jobs/{job_id}")).json()
        events = await events_of(client, job_id)
    retries, starts = retries_and_starts(events)
    # max_attempts is 5: only the once-only rule stops it after the second
    assert (job["status"], job["attempts"], job["max_attempts"]) == ("failed", 2, 5)
    assert (len(retries), len(starts)) == (1, 2)
    assert job["error"]["type"] == "ParseError"


async def test_a_type_for_app_keys_is_refused_to_an_owner_and_hidden_from_its_list(
    retry_stack: Stack,
) -> None:
    owner = await retry_stack.owner()
    async with Store.open(retry_stack.database_url, max_size=1) as store:
        key = await store.create_app_key("backend")
    async with retry_stack.client(owner) as person, retry_stack.client(key.bearer) as app:
        error = assert_error(
            await person.post("/api/jobs", json={"type": "reindex"}), 403, "forbidden"
        )
        assert "app key" in error["message"] and "reindex" in error["message"]
        listed = {t["type"] for t in (await person.get("/api/job-types")).json()["job_types"]}
        assert "reindex" not in listed and "always_fails" in listed
        assert (await person.get("/api/jobs")).json()["jobs"] == []

        response = await app.post("/api/jobs", json={"type": "reindex"})
        assert response.status_code == 202, response.text
        types = (await app.get("/api/job-types")).json()["job_types"]
        reindex = next(t for t in types if t["type"] == "reindex")
        assert reindex["access"] == "app"
        await wait_status(app, response.json()["id"], "completed")


async def test_the_types_policy_gives_its_attempts_alone_and_in_a_batch(
    retry_stack: Stack,
) -> None:
    token = await retry_stack.owner()
    job_id = await _submit(retry_stack, token, {"type": "two_tries"})  # JobType default: 3
    async with retry_stack.client(token) as client:
        job = (await client.get(f"/api/jobs/{job_id}")).json()
        assert (job["status"], job["attempts"], job["max_attempts"]) == ("failed", 2, 2)
        response = await client.post("/api/jobs/batch", json={"jobs": [{"type": "two_tries"}]})
        assert response.status_code == 202, response.text
        batch = (await client.get("/api/jobs", params={"type": "two_tries"})).json()["jobs"]
        assert sorted(j["max_attempts"] for j in batch) == [2, 2]


async def test_a_batch_neither_bypasses_access_nor_changes_the_policy(retry_stack: Stack) -> None:
    token = await retry_stack.owner()
    async with retry_stack.client(token) as client:
        response = await client.post("/api/jobs/batch", json={"jobs": [{"type": "reindex"}]})
        assert "app key" in assert_error(response, 403, "forbidden")["message"]
        body = {"jobs": [{"type": "always_fails", "retry": {"base_s": 0.5}}]}
        error = assert_error(await client.post("/api/jobs/batch", json=body), 422, "invalid_input")
        assert error["details"][0]["field"] == "jobs.0.retry"
        assert (await client.get("/api/jobs")).json()["jobs"] == []
