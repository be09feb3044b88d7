"""Estimates from history, against a real Postgres; and retries of failed jobs."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import uuid
from datetime import datetime
from typing import Any

import pytest

from jobcast.eta import Estimator
from jobcast.registry import load_registry
from jobcast.store import Store
from jobcast.store.uploads import NewUpload
from tests.integration.test_errors import assert_error
from tests.integration.test_reliability import wait_status
from tests.support import Stack, submit, watch


async def create(
    store: Store,
    owner: uuid.UUID,
    type_name: str,
    params: dict[str, Any],
    upload_ids: list[uuid.UUID] | None = None,
) -> uuid.UUID:
    created = await store.create_job(
        owner_id=owner,
        job_type=load_registry().get(type_name),
        params=params,
        priority=0,
        delay_s=0,
        estimated_s=1,
        max_attempts=3,
        timeout_s=60,
        max_active=10,
        upload_ids=upload_ids,
    )
    assert created is not None
    return created.job.id


async def add_history(store: Store, durations_ms: dict[str, int], duration_input: float) -> None:
    """A completed demo job whose steps took these times."""
    owner = await store.create_owner(uuid.uuid4().hex)
    job_id = await create(store, owner, "demo", {"duration": duration_input})
    async with store.pool.acquire() as conn:
        await conn.execute(
            "UPDATE jobs SET status = 'completed', started_at = now(), finished_at = now() "
            "WHERE id = $1",
            job_id,
        )
        for name, ms in durations_ms.items():
            await conn.execute(
                "UPDATE job_steps SET status = 'completed', duration_ms = $3 "
                "WHERE job_id = $1 AND name = $2",
                job_id,
                name,
                ms,
            )


async def test_without_history_the_declared_estimate_is_split_by_weight(store: Store) -> None:
    demo = load_registry().get("demo")
    steps = await Estimator(store).steps(demo, {"duration": 10})
    assert steps == pytest.approx({"validate": 1.0, "fetch": 3.0, "analyze": 4.0, "report": 2.0})


async def test_history_medians_scaled_by_the_input(store: Store) -> None:
    demo = load_registry().get("demo")
    # three past jobs of duration 2 whose steps took 1, 2, 3 and 4 s (median of each)
    for jitter in (-100, 0, 100):
        await add_history(
            store,
            {
                "validate": 1000 + jitter,
                "fetch": 2000 + jitter,
                "analyze": 3000 + jitter,
                "report": 4000 + jitter,
            },
            2,
        )
    estimator = Estimator(store)
    # a job twice as long takes twice as long, step by step
    steps = await estimator.steps(demo, {"duration": 4})
    assert steps == pytest.approx({"validate": 2.0, "fetch": 4.0, "analyze": 6.0, "report": 8.0})
    assert await estimator.total(demo, {"duration": 4}) == pytest.approx(20.0)


def _csv(rows: int) -> NewUpload:
    lines = "".join(f"{i},{i * 2.5},name{i}\n" for i in range(rows))
    return NewUpload("data.csv", "text/csv", f"id,value,name\n{lines}".encode())


async def add_csv_history(store: Store, owner: uuid.UUID, files: list[NewUpload]) -> int:
    """A completed csv_insights job on these files whose steps took 1 ms per 10 bytes."""
    ids = await store.create_uploads(owner, files, quota_bytes=10**9)
    job_id = await create(store, owner, "csv_insights", {"upload_ids": [str(i) for i in ids]}, ids)
    size = sum(len(f.data) for f in files)
    async with store.pool.acquire() as conn:
        await conn.execute(
            "UPDATE jobs SET status = 'completed', started_at = now(), finished_at = now() "
            "WHERE id = $1",
            job_id,
        )
        await conn.execute(
            "UPDATE job_steps SET status = 'completed', duration_ms = $2 WHERE job_id = $1",
            job_id,
            size // 10,
        )
    return size


async def test_a_csv_job_is_estimated_by_the_bytes_of_its_files_not_their_number(
    store: Store,
) -> None:
    """History on small files (one or two each); a job on one file four times the size of
    those is estimated at about four times their time per byte: counting files would say
    it takes half to one of theirs."""
    csv_type = load_registry().get("csv_insights")
    owner = await store.create_owner(uuid.uuid4().hex)
    small = [
        await add_csv_history(store, owner, files)
        for files in ([_csv(50)], [_csv(50), _csv(50)], [_csv(50)])
    ]
    large = await store.create_uploads(owner, [_csv(200)], quota_bytes=10**9)
    large_bytes = await store.upload_bytes(large)
    assert 3.5 < large_bytes / small[0] < 4.5
    estimate = await Estimator(store).total(csv_type, {"upload_ids": [str(large[0])]})
    expected = len(csv_type.steps) * large_bytes / 10 / 1000  # each step at 1 ms per 10 bytes
    assert estimate == pytest.approx(expected, rel=0.05), (estimate, expected)
    # by files, the median small job (one file, about a quarter of the bytes) would be it
    assert estimate > 3 * len(csv_type.steps) * small[0] / 10 / 1000
    # the job once submitted: its view's ETA, from the bytes read with it
    job_id = await create(store, owner, "csv_insights", {"upload_ids": [str(large[0])]}, large)
    job = await store.get_job(job_id)
    assert job is not None and job.upload_bytes == large_bytes
    eta_s, _ = await Estimator(store).remaining(csv_type, job)
    assert eta_s == pytest.approx(expected, rel=0.05)
    # an input whose uploads are gone (or never were): the steps' declared estimates
    missing = await Estimator(store).total(csv_type, {"upload_ids": [str(uuid.uuid4())]})
    assert missing == pytest.approx(sum(s.estimate_s or 0 for s in csv_type.steps))


async def test_a_job_whose_type_renamed_its_steps_keeps_its_eta(store: Store) -> None:
    """A job submitted before its type's steps were renamed: ETA from its own steps, no 500."""
    demo = load_registry().get("demo")
    owner = await store.create_owner(uuid.uuid4().hex)
    created = await store.create_job(
        owner_id=owner,
        job_type=demo,
        params={"duration": 4},
        priority=0,
        delay_s=0,
        estimated_s=4,
        max_attempts=3,
        timeout_s=60,
        max_active=10,
    )
    assert created is not None
    first, second = demo.steps[0], demo.steps[1]
    weight = sum(s.weight for s in demo.steps)
    progress = (first.weight + second.weight / 2) / weight * 100  # halfway through the second
    async with store.pool.acquire() as conn:
        await conn.execute(
            "UPDATE jobs SET status = 'running', started_at = now(), progress = $2 WHERE id = $1",
            created.job.id,
            progress,
        )
        for step, state in ((first, "completed"), (second, "running")):
            await conn.execute(
                "UPDATE job_steps SET status = $3 WHERE job_id = $1 AND name = $2",
                created.job.id,
                step.name,
                state,
            )
    job = await store.get_job(created.job.id)
    assert job is not None
    renamed = dataclasses.replace(
        demo, steps=tuple(dataclasses.replace(s, name=f"{s.name}-v2") for s in demo.steps)
    )
    eta_s, estimates = await Estimator(store).remaining(renamed, job)
    # no history: each of the job's own steps gets its weight's share of the declared 4 s
    declared = {s.name: 4 * s.weight / weight for s in demo.steps}
    expected = declared[second.name] / 2 + sum(declared[s.name] for s in demo.steps[2:])
    assert eta_s == pytest.approx(expected, abs=0.01)
    assert {s.name: estimates[s.name] for s in demo.steps} == pytest.approx(declared)


async def test_a_failed_or_cancelled_job_can_be_retried(stack: Stack) -> None:
    alice, bob = await stack.owner(), await stack.owner()
    async with stack.client(alice) as client, stack.client(bob) as other:
        failed = await submit(client, "demo", duration=0.1, fail_step="fetch")
        await watch(stack, alice, failed)
        retried = await client.post(f"/api/jobs/{failed}/retry")
        new_id = retried.json()["id"]
        new = await wait_status(client, new_id, "failed")
        done = await submit(client, "noop")
        await wait_status(client, done, "completed")
        not_failed = await client.post(f"/api/jobs/{done}/retry")
        foreign = await other.post(f"/api/jobs/{failed}/retry")
    assert retried.status_code == 202 and new_id != failed
    assert new["retry_of"] == failed and new["input"]["fail_step"] == "fetch"
    assert_error(not_failed, 409, "conflict")
    assert_error(foreign, 404, "not_found")


async def test_a_running_job_shows_a_shrinking_eta(stack: Stack) -> None:
    token = await stack.owner()
    async with stack.client(token) as client:
        response = await client.post("/api/jobs", json={"type": "demo", "input": {"duration": 2}})
        accepted = response.json()
        job_id = accepted["id"]
        running = await wait_status(client, job_id, "running")
        etas = []
        while True:
            job = (await client.get(f"/api/jobs/{job_id}")).json()
            if job["status"] != "running":
                break
            etas.append(job["eta_seconds"])
            await asyncio.sleep(0.05)  # sampling while it runs; the job's end stops the loop
        final = await wait_status(client, job_id, "completed")
    assert accepted["estimated_seconds"] > 0
    assert all(s["estimate_s"] and s["estimate_s"] > 0 for s in running["steps"])
    assert len(etas) >= 3
    assert etas[-1] < etas[0] <= accepted["estimated_seconds"] + 0.01
    assert final["eta_seconds"] is None


async def test_the_first_eta_of_a_longer_job_is_its_history_scaled_and_within_a_fifth(
    stack: Stack,
) -> None:
    """Three real demo runs of 2.5 s; a run three times as long is estimated from them,
    times three, and takes within a fifth of that (its duration is known: its input says).
    Not runs of one second: what a run costs besides its steps' sleep (its events' writes)
    does not grow with it, and on a loaded machine it was a fifth of a one-second run."""
    demo = load_registry().get("demo")
    token = await stack.owner()
    async with stack.client(token) as client:
        short = [await submit(client, "demo", duration=2.5) for _ in range(3)]
        short_s = [run_time(await wait_status(client, job_id, "completed")) for job_id in short]
        async with Store.open(stack.database_url) as store:
            estimate = await Estimator(store).total(demo, {"duration": 7.5})
            history = await store.step_history("demo")
        long_id = await submit(client, "demo", duration=7.5)
        took_s = run_time(await wait_status(client, long_id, "completed"))
    # each step of each short run (and of any demo an earlier test of the module completed
    # on this stack: scaled by its input like these)
    assert len(history) >= 3 * len(demo.steps) and len(history) % len(demo.steps) == 0
    assert sum(r["input"]["duration"] == 2.5 for r in history) == 3 * len(demo.steps)
    # from history: the declared estimate alone would be exactly 7.5; each step's median
    # seconds per unit of duration, times the new job's 7.5
    assert estimate != pytest.approx(7.5, abs=1e-6)
    per_unit = {
        step.name: statistics.median(
            r["duration_ms"] / 1000 / r["input"]["duration"]
            for r in history
            if r["name"] == step.name
        )
        for step in demo.steps
    }
    assert estimate == pytest.approx(7.5 * sum(per_unit.values()), abs=0.01)
    # The long run takes what its history says, within a fifth, when the machine runs the
    # short ones and the long one alike. What a run costs besides its sleep does not grow
    # with it: short runs slowed by a busy machine (over a tenth past their 2.5 s) make
    # the estimate high by three times that, and then it is within a fifth of the short
    # runs' own time, scaled.
    if max(short_s) <= 2.5 * 1.1:
        assert took_s * 0.8 <= estimate <= took_s * 1.2, (estimate, took_s, short_s)
    else:
        scaled_s = 3 * statistics.mean(short_s)
        assert scaled_s * 0.8 <= estimate <= scaled_s * 1.2, (estimate, short_s)


def run_time(job: dict[str, Any]) -> float:
    """Seconds from a job's start to its end, as Postgres recorded them."""
    return (
        datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["started_at"])
    ).total_seconds()
