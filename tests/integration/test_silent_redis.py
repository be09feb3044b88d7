"""Silent links to Redis: one connection stops answering, without closing, mid-job.

The rig and the promises are test_silent_postgres.py's, for the links to Redis; each
test prints what it measured, for docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from tests.silent_rig import (
    MakeRig,
    assert_done_once,
    job_of,
    metric,
    readyz,
    report,
    run_time_s,
    stored_events,
    wait_status,
    watch_jobs,
)
from tests.support import eventually, submit

# the worker's Redis


async def test_worker_redis_silent_mid_job_holds_no_job_back_and_watchers_get_each_event_in_2_s(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig("worker-redis")
    stack, duration_s = rig.stack, 5.0
    token = await stack.owner()
    async with stack.client(token) as client:
        # the same three jobs with the link flowing: the run time to hold to
        baseline_ids = [await submit(client, "demo", duration=duration_s) for _ in range(3)]
        baseline = [await wait_status(client, j, "completed") for j in baseline_ids]
        baseline_s = max(run_time_s(j) for j in baseline)

        ids, watchers, tasks = await watch_jobs(stack, client, token, 3, duration_s)
        rig.proxy.silence()
        silenced = time.time()
        open_line = 'jobcast_redis_circuit_open{client="worker"}'

        async def circuit_open() -> bool:
            return await metric(client, open_line) == 1.0

        await eventually(circuit_open, timeout_s=5, what="the worker's circuit open in /metrics")
        noticed_s = time.time() - silenced
        await asyncio.wait_for(asyncio.gather(*tasks), 40)
        jobs = [await job_of(client, j) for j in ids]
        events = {j: await stored_events(client, j) for j in ids}
        rig.proxy.resume()

        async def circuit_closed() -> bool:
            return await metric(client, open_line) == 0.0

        await eventually(circuit_closed, timeout_s=10, what="the worker's circuit closed again")
        # and the worker takes jobs from Redis again
        await wait_status(client, await submit(client, "noop"), "completed", timeout_s=15)

    assert_done_once(jobs, events)
    for job in jobs:
        assert job["attempts"] == 1, job
        assert run_time_s(job) <= 1.5 * baseline_s, (run_time_s(job), baseline_s)
    late = [s for w in watchers for s in w.lateness_s(silenced)]
    for watcher in watchers:
        watcher.assert_gap_free_and_final()
        assert [e["seq"] for e in watcher.events] == [e["seq"] for e in events[watcher.job_id]]
    assert late and max(late) <= 2.0, sorted(late)[-5:]
    report(
        "worker redis",
        noticed_s=noticed_s,
        baseline_run_s=baseline_s,
        worst_run_s=max(run_time_s(j) for j in jobs),
        events_after_silence=len(late),
        worst_event_lateness_s=max(late),
        longest_watcher_wait_s=max(w.longest_wait_s(silenced, silenced + 3) for w in watchers),
    )


# the web process's Redis: its pub/sub connection and its commands


async def test_web_redis_silent_watchers_go_on_over_notify_and_submits_are_accepted(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig("web-redis")
    stack = rig.stack
    token = await stack.owner()
    async with stack.client(token) as client:
        ids, watchers, tasks = await watch_jobs(stack, client, token, 3, 6.0)
        rig.proxy.silence()
        silenced = time.time()

        async def pubsub_down() -> bool:
            return (await readyz(client))["checks"]["pubsub"] == "down"

        await eventually(pubsub_down, timeout_s=10, what="/readyz: pubsub down")
        pubsub_noticed_s = time.time() - silenced
        started = time.monotonic()
        late_id = await submit(client, "demo", duration=1)  # Redis cannot queue it now
        submit_s = time.monotonic() - started
        checks = (await readyz(client))["checks"]
        await asyncio.wait_for(asyncio.gather(*tasks), 40)
        late_job = await wait_status(client, late_id, "completed", timeout_s=20)
        jobs = [await job_of(client, j) for j in ids]
        events = {j: await stored_events(client, j) for j in [*ids, late_id]}
        rig.proxy.resume()
        resumed = time.time()

        async def ready_again() -> bool:
            body = await readyz(client)
            return body["status"] == "ready" and body["checks"]["pubsub"] == "ok"

        await eventually(ready_again, timeout_s=15, what="/readyz ready again")
        back_s = time.time() - resumed

    assert checks["redis"].startswith("down") and checks["redis_circuit"].startswith("open")
    assert submit_s < 3, submit_s  # one Redis timeout at most, then the circuit answers
    assert_done_once([*jobs, late_job], events)
    for watcher in watchers:
        watcher.assert_gap_free_and_final()
    late = [s for w in watchers for s in w.lateness_s(silenced)]
    longest = max(w.longest_wait_s(silenced, silenced + 4) for w in watchers)
    report(
        "web redis",
        pubsub_noticed_s=pubsub_noticed_s,
        submit_s=submit_s,
        longest_watcher_wait_s=longest,
        worst_event_lateness_s=max(late),
        ready_after_resume_s=back_s,
    )


async def test_web_redis_silent_one_timed_out_call_takes_pubsub_for_down_at_once(
    make_rig: MakeRig,
) -> None:
    """A SUBSCRIBE on a silent link seems to succeed, and pub/sub's own ping misses its
    pong only after 3 s. The first Redis call of the web process that times out (a
    submit's enqueue here) opens its circuit, and the hub takes pub/sub for down with
    it: NOTIFYs are asked for at once, not at the ping's deadline."""
    rig = await make_rig("web-redis")
    stack = rig.stack
    token = await stack.owner()
    conn = await asyncpg.connect(rig.database_url)
    asked_at: list[float] = []

    async def asking() -> bool:
        query = "SELECT count(*) FROM fallback_listeners WHERE expires_at > now()"
        return bool(await conn.fetchval(query))

    async def watch_asking() -> None:
        await eventually(asking, timeout_s=15, interval_s=0.02, what="NOTIFYs asked for")
        asked_at.append(time.monotonic())

    try:
        async with stack.client(token) as client:
            await wait_status(client, await submit(client, "noop"), "completed")
            rig.proxy.silence()
            silenced = time.monotonic()
            watching = asyncio.create_task(watch_asking())
            await submit(client, "noop")  # its enqueue waits out JOBCAST_REDIS_TIMEOUT_S
            submit_s = time.monotonic() - silenced
            await asyncio.wait_for(watching, 15)
    finally:
        await conn.close()
    asked_s = asked_at[0] - silenced
    report("web redis circuit", submit_s=submit_s, notify_asked_s=asked_s)
    # the submit's timeout (1 s here) opened the circuit: NOTIFYs are asked for then,
    # not when the hub's ping would have noticed (3 s after its last pong)
    assert asked_s < submit_s + 0.5, (asked_s, submit_s)
