"""Concurrency keys and throttles against real workers, Postgres and Redis.

Limits are checked from outside (sampling the running rows in Postgres) and from
inside (each run appends "+" and "-" lines to a file, replayed in order); held jobs
are parked off arq's queue and released as slots free, also after killed workers and
a Redis wipe.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from jobcast.endpoints import Endpoints
from tests import support
from tests.chaos import PrivateRedis, chaos_env
from tests.conftest import DatabaseFactory
from tests.integration.test_errors import assert_error
from tests.integration.test_reliability import job_of, wait_status
from tests.support import Stack, eventually, launch

KEYED_ENV = {"JOBCAST_JOB_MODULES": "tests.jobtypes", **chaos_env()}
ADMIN = "admin-" + "k" * 40
OPERATOR = "operator-" + "r" * 40


@pytest.fixture(scope="module")
async def three(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """Three workers, each taking up to four jobs at once."""
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("keys"),
        workers=3,
        JOBCAST_WORKER_CONCURRENCY="4",
        JOBCAST_ADMIN_TOKEN=ADMIN,
        JOBCAST_OPERATOR_TOKEN=OPERATOR,
        **KEYED_ENV,
    )
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture
async def one_worker(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Callable[..., Awaitable[Stack]]]:
    """Makes a stack of one worker taking four jobs at once (on its own Redis, if given)."""
    made: list[Stack] = []

    async def make(redis_url: str | None = None) -> Stack:
        stack = await launch(
            await new_database(),
            redis_url or endpoints.redis_url,
            tmp_path_factory.mktemp("keys-one"),
            JOBCAST_WORKER_CONCURRENCY="4",
            **KEYED_ENV,
        )
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.close()


def most_at_once(log: Path) -> int:
    """The most runs open at once, replaying the runs' own start and end lines."""
    running = peak = 0
    for line in log.read_text().splitlines():
        running += 1 if line.startswith("+") else -1
        peak = max(peak, running)
    return peak


class Sampler:
    """Counts the running jobs holding a key in Postgres, every few milliseconds."""

    def __init__(self, dsn: str, job_type: str, group: str) -> None:
        self._dsn, self._type, self._group = dsn, job_type, group
        self.peak = 0
        self.samples = 0

    async def run(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            while not stop.is_set():
                n = await conn.fetchval(
                    "SELECT count(*) FROM jobs WHERE type = $1 AND status = 'running'"
                    " AND input->>'group' = $2",
                    self._type,
                    self._group,
                )
                self.peak, self.samples = max(self.peak, n), self.samples + 1
                await asyncio.sleep(0.01)
        finally:
            await conn.close()


async def submit_keyed(client: httpx.AsyncClient, job_type: str = "keyed", **body: Any) -> str:
    job_input = {k: body.pop(k) for k in ("group", "seconds", "log") if k in body}
    response = await client.post("/api/jobs", json={"type": job_type, "input": job_input, **body})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def test_a_key_of_limit_two_never_runs_three_across_three_workers(
    three: Stack, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    token = await three.owner()
    sampler, stop = Sampler(three.database_url, "keyed", "a"), asyncio.Event()
    sampling = asyncio.create_task(sampler.run(stop))
    async with three.client(token) as client:
        ids = [await submit_keyed(client, group="a", seconds=0.4, log=str(log)) for _ in range(12)]

        async def a_reason() -> str | None:
            for job_id in ids:
                job = await job_of(client, job_id)
                if job["status"] == "pending" and job["waiting_reason"]:
                    return str(job["waiting_reason"])
            return None

        reason = await eventually(a_reason, what="a held job saying why it waits")
        # another group is not blocked behind the held jobs of group a
        other = await submit_keyed(client, group="b", seconds=0)
        other_done = await wait_status(client, other, "completed")
        jobs = [await wait_status(client, i, "completed", timeout_s=60) for i in ids]
    stop.set()
    await sampling
    assert "group:a" in reason and "at most 2" in reason
    assert sampler.samples > 20 and sampler.peak == 2, (sampler.peak, sampler.samples)
    assert most_at_once(log) == 2
    assert other_done["finished_at"] < max(j["finished_at"] for j in jobs)
    assert all(j["waiting_reason"] is None for j in jobs)


async def test_a_held_job_is_parked_off_the_queue_and_does_not_spin(three: Stack) -> None:
    token = await three.owner()
    redis = aioredis.Redis.from_url(three.redis_url)
    conn = await asyncpg.connect(three.database_url)
    try:
        async with three.client(token) as client:
            holders = [await submit_keyed(client, group="p", seconds=4) for _ in range(2)]
            for job_id in holders:
                await wait_status(client, job_id, "running")
            held = [await submit_keyed(client, group="p", seconds=0) for _ in range(10)]

            async def all_parked() -> bool:
                n = await conn.fetchval(
                    "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[]) AND parked_on = $2",
                    held,
                    "group:p",
                )
                return bool(n == len(held))

            await eventually(all_parked, what="ten jobs parked on group:p")
            queue = three.env["JOBCAST_REDIS_PREFIX"] + ":queue"
            seqs = {i: (await job_of(client, i))["seq"] for i in held}
            await asyncio.sleep(1.0)  # an interval to watch: a spinning job would change
            queued = await redis.zmscore(queue, held)
            seqs_after = {i: (await job_of(client, i))["seq"] for i in held}
            jobs = [await wait_status(client, i, "completed", timeout_s=60) for i in held]
    finally:
        await conn.close()
        await redis.aclose()
    assert queued == [None] * len(held)  # off arq's queue while held
    assert seqs_after == seqs  # no event, no write, while parked
    assert all(j["attempts"] == 1 for j in jobs)


async def test_bad_keys_and_throttles_are_422_in_the_one_error_shape(three: Stack) -> None:
    token = await three.owner()
    bad_bodies = [
        {"concurrency": [{"key": "k" * 201, "limit": 1}]},
        {"concurrency": [{"key": "tenant:1", "limit": 0}]},
        {"concurrency": [{"key": "tenant:1", "limit": -3}]},
        {"concurrency": [{"key": f"k:{i}", "limit": 1} for i in range(9)]},
        {"concurrency": [{"key": "type:keyed", "limit": 1}]},
        {"concurrency": [{"key": "has space", "limit": 1}]},
        {"throttle": {"key": "api", "limit": 1, "period_s": 0.5}},
        {"throttle": {"key": "api", "limit": 1, "period_s": 100_000}},
        {"throttle": {"key": "api", "limit": 0, "period_s": 10}},
    ]
    async with three.client(token) as client:
        for body in bad_bodies:
            response = await client.post("/api/jobs", json={"type": "noop", **body})
            assert_error(response, 422, "invalid_input")
        # a type may forbid keys from a submit
        forbidden = await client.post(
            "/api/jobs",
            json={"type": "throttled", "concurrency": [{"key": "x", "limit": 1}]},
        )
        error = assert_error(forbidden, 422, "invalid_input")
        # the type's declared keys, with more from the submit, stay within the cap
        too_many = await client.post(
            "/api/jobs",
            json={
                "type": "keyed",
                "concurrency": [{"key": f"k:{i}", "limit": 1} for i in range(8)],
            },
        )
        assert_error(too_many, 422, "invalid_input")
        listed = (await client.get("/api/jobs")).json()["jobs"]
    assert "throttled" in error["message"]
    assert listed == []  # nothing stored


async def test_submit_keys_hold_any_type_and_the_stricter_limit_wins(
    three: Stack, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    token = await three.owner()
    async with three.client(token) as client:
        # the type says 2 per group; the submit's own key on the group says 1
        ids = [
            await submit_keyed(
                client,
                group="s",
                seconds=0.3,
                log=str(log),
                concurrency=[{"key": "group:s", "limit": 1}, {"key": "tenant:7", "limit": 5}],
            )
            for _ in range(4)
        ]
        jobs = [await wait_status(client, i, "completed", timeout_s=60) for i in ids]
    assert most_at_once(log) == 1
    assert len(jobs) == 4


async def test_a_throttle_spaces_starts_and_fails_nothing(three: Stack, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    token = await three.owner()
    async with three.client(token) as client:
        ids = [
            await submit_keyed(client, "throttled", group="t", seconds=0, log=str(log))
            for _ in range(6)
        ]
        held = await eventually(
            lambda: _reason_of_any(client, ids), what="a throttled job saying so"
        )
        jobs = [await wait_status(client, i, "completed", timeout_s=60) for i in ids]
    starts = sorted(
        float(line.split()[2]) for line in log.read_text().splitlines() if line[0] == "+"
    )
    assert len(starts) == 6 and all(j["attempts"] == 1 for j in jobs)
    # at most 2 starts in any 2 s window (a little slack for the clocks of two processes)
    for i in range(len(starts) - 2):
        assert starts[i + 2] - starts[i] >= 1.95, starts
    assert "throttled by rate:t" in held


async def _reason_of_any(client: httpx.AsyncClient, ids: list[str]) -> str | None:
    for job_id in ids:
        reason = (await job_of(client, job_id))["waiting_reason"]
        if reason:
            return str(reason)
    return None


# limits changed at run time


async def test_an_operator_changes_a_keys_limit_at_run_time(three: Stack, tmp_path: Path) -> None:
    token = await three.owner()
    logs = [tmp_path / f"runs-{n}.log" for n in range(2)]
    async with (
        three.client(token) as client,
        three.client(ADMIN) as admin,
        three.client(OPERATOR) as operator,
    ):
        # lowered to 1: the type's 2 per group no longer holds
        lowered = await admin.put("/api/admin/limits/group:r", json={"limit": 1})
        first = [
            await submit_keyed(client, group="r", seconds=0.3, log=str(logs[0])) for _ in range(4)
        ]
        for job_id in first:
            await wait_status(client, job_id, "completed", timeout_s=60)
        # raised to 3 while jobs are parked: they start without a restart
        # the holder runs past the raise however slow the machine is (cancelled after)
        holders = [await submit_keyed(client, group="r", seconds=30) for _ in range(1)]
        await wait_status(client, holders[0], "running")
        parked = [
            await submit_keyed(client, group="r", seconds=1, log=str(logs[1])) for _ in range(3)
        ]
        await eventually(lambda: _reason_of_any(client, parked), what="a parked job")
        raised = await admin.put("/api/admin/limits/group:r", json={"limit": 3})
        listed = (await operator.get("/api/admin/limits")).json()["limits"]
        refused = await operator.put("/api/admin/limits/group:r", json={"limit": 9})
        for job_id in parked:
            await wait_status(client, job_id, "completed", timeout_s=60)
        stopped = await client.post(f"/api/jobs/{holders[0]}/cancel")
        bad = [
            await admin.put("/api/admin/limits/group:r", json={"limit": 0}),
            await admin.put("/api/admin/limits/group:r", json={"limit": 2, "period_s": 0.1}),
            await admin.put("/api/admin/limits/" + "k" * 201, json={"limit": 2}),
        ]
        cleared = await admin.delete("/api/admin/limits/group:r")
        cleared_again = await admin.delete("/api/admin/limits/group:r")
        anonymous = await client.get("/api/admin/limits")
    assert lowered.status_code == 200
    assert most_at_once(logs[0]) == 1
    assert raised.status_code == 200 and raised.json()["released"] >= 1
    assert most_at_once(logs[1]) >= 2  # two of the three ran beside each other
    assert stopped.status_code == 202, stopped.text
    row = next(r for r in listed if r["key"] == "group:r")
    assert row["kind"] == "concurrency" and row["limit"] == 3 and row["set_by"].startswith("admin")
    assert_error(refused, 403, "forbidden")
    for response in bad:
        assert_error(response, 422, "invalid_input")
    assert cleared.status_code == 200
    assert_error(cleared_again, 404, "not_found")
    assert anonymous.status_code in (401, 403)


def run_cli(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return support.run_cli(
        *args, env={**os.environ, "DATABASE_URL": stack.database_url, "COLUMNS": "200", **env}
    )


async def test_the_cli_sets_lists_and_clears_limits_and_submits_with_keys(three: Stack) -> None:
    token = await three.owner()
    set_ = run_cli(three, "limits", "set", "tenant:42", "10")
    throttle = run_cli(three, "limits", "set", "api:geo", "5", "--per", "60")
    listed = run_cli(three, "limits", "list")
    bad = run_cli(three, "limits", "set", "tenant:42", "0")
    as_client = {"JOBCAST_URL": three.base_url, "JOBCAST_TOKEN": token}
    submitted = run_cli(
        three, "submit", "noop", "--concurrency", "tenant:42=5", "-c", "user:7=3", **as_client
    )
    refused = run_cli(three, "submit", "noop", "--concurrency", "tenant:42=0", **as_client)
    conn = await asyncpg.connect(three.database_url)
    try:
        keys = await conn.fetch(
            "SELECT key, lim FROM job_keys WHERE job_id = $1::uuid ORDER BY key",
            submitted.stdout.strip(),
        )
    finally:
        await conn.close()
    cleared = run_cli(three, "limits", "clear", "tenant:42")
    cleared_again = run_cli(three, "limits", "clear", "tenant:42")
    run_cli(three, "limits", "clear", "api:geo")
    assert set_.returncode == 0 and "tenant:42: at most 10 at once" in set_.stdout
    assert throttle.returncode == 0 and "per 60 s" in throttle.stdout
    assert "tenant:42" in listed.stdout and "api:geo" in listed.stdout
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert submitted.returncode == 0, submitted.stderr
    assert [(k["key"], k["lim"]) for k in keys] == [("tenant:42", 5), ("user:7", 3)]
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert cleared.returncode == 0
    assert cleared_again.returncode != 0 and "no run-time limit" in cleared_again.stderr


# slots never leak


async def test_after_three_killed_workers_a_key_admits_exactly_its_limit(
    one_worker: Callable[..., Awaitable[Stack]],
) -> None:
    stack = await one_worker()
    token = await stack.owner()
    conn = await asyncpg.connect(stack.database_url)

    async def running() -> dict[str, int]:
        rows = await conn.fetch("SELECT id, attempts FROM jobs WHERE status = 'running'")
        return {str(r["id"]): r["attempts"] for r in rows}

    async def two_running() -> dict[str, int] | None:
        now = await running()
        return now if len(now) == 2 else None

    try:
        async with stack.client(token) as client:
            ids = [await submit_keyed(client, group="k", seconds=60) for _ in range(4)]
            for kill in range(3):
                victims = await eventually(two_running, timeout_s=30, what="2 running")
                stack.stop(f"worker-{kill}", signal.SIGKILL)
                stack.start(f"worker-{kill + 1}")

                async def recovered(victims: dict[str, int] = victims) -> bool:
                    now = await running()
                    return all(now.get(i) != attempts for i, attempts in victims.items())

                # the sweep takes the dead worker's jobs back; their slots come back with them
                await eventually(recovered, timeout_s=30, what="the killed worker's jobs recovered")
            await eventually(two_running, timeout_s=30, what="2 running again")
            peak = 0
            for _ in range(20):
                peak = max(peak, len(await running()))
                await asyncio.sleep(0.05)

            async def two_parked() -> bool:
                n = await conn.fetchval(
                    "SELECT count(*) FROM jobs WHERE parked_on = 'group:k' AND status = 'pending'"
                )
                return bool(n == 2)

            # the other two wait parked (one may be on its way there from a dead worker)
            await eventually(two_parked, timeout_s=30, what="the other two parked")
            peak = max(peak, len(await running()))
            for job_id in ids:
                await client.post(f"/api/jobs/{job_id}/cancel")
    finally:
        await conn.close()
    assert peak == 2


async def test_a_redis_wipe_loses_no_held_job(
    one_worker: Callable[..., Awaitable[Stack]], private_redis: PrivateRedis, tmp_path: Path
) -> None:
    log = tmp_path / "runs.log"
    stack = await one_worker(private_redis.url)
    token = await stack.owner()
    async with stack.client(token) as client:
        ids = [await submit_keyed(client, group="w", seconds=1.0, log=str(log)) for _ in range(6)]
        await eventually(lambda: _reason_of_any(client, ids), what="a held job")
        private_redis.kill()  # it comes back with its data gone
        private_redis.start()
        jobs = [await wait_status(client, i, "completed", timeout_s=90) for i in ids]
    assert len(jobs) == 6
    assert most_at_once(log) == 2
