"""The owner feed (``WS /ws``) with real processes: a worker that cannot publish to Redis,
a Redis outage (with the feed's ``resync``), and two web processes, each watcher on
either getting every event in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from jobcast.endpoints import Endpoints
from tests.chaos import PrivateRedis, Watcher, chaos_env
from tests.conftest import DatabaseFactory
from tests.support import Stack, eventually, launch, submit


class Feed:
    """An owner's feed, read in the background: every message, in order."""

    def __init__(self, stack: Stack, token: str, *, progress: bool = False) -> None:
        self._url = f"{stack.ws_base}/ws" + ("?progress=1" if progress else "")
        self._token = token
        self.messages: list[dict[str, Any]] = []
        self._reading: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None

    async def __aenter__(self) -> Feed:
        self._ws = await connect(
            self._url, additional_headers={"Authorization": f"Bearer {self._token}"}
        )
        self._reading = asyncio.create_task(self._read(self._ws))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._ws is not None and self._reading is not None
        await self._ws.close()
        self._reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reading

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                self.messages.append(orjson.loads(raw))

    def events(self, job_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("job_id") == job_id]

    @property
    def resyncs(self) -> int:
        return sum(1 for m in self.messages if m["type"] == "resync")

    async def until_final(self, job_id: str, timeout_s: float = 30) -> None:
        async def final() -> bool:
            return any(
                e["kind"] == "status" and e["status"] in ("completed", "failed", "cancelled")
                for e in self.events(job_id)
            )

        await eventually(final, timeout_s=timeout_s, what=f"job {job_id}'s end on the feed")


def feed_kinds(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the feed carries of a job's events: all but progress."""
    return [e for e in events if e["kind"] != "progress"]


async def stored_events(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/jobs/{job_id}/events")
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


@pytest.fixture
def stacks() -> Iterator[list[Stack]]:
    """The stacks a test launches, closed after it."""
    made: list[Stack] = []
    yield made
    for stack in made:
        stack.close()


async def test_the_feed_gets_a_job_whose_worker_cannot_publish_while_pubsub_is_up(
    private_redis: PrivateRedis,
    new_database: DatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
    stacks: list[Stack],
) -> None:
    """The worker's Redis user may do everything but PUBLISH: every event it makes is
    announced over NOTIFY, while the web process's own pub/sub stays healthy."""
    private_redis.client().acl_setuser(
        "nopublish",
        enabled=True,
        passwords=["+secret"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-publish"],
    )
    stack = await launch(
        await new_database(), private_redis.url, tmp_path_factory.mktemp("feed"), workers=0
    )
    stacks.append(stack)
    stack.start("worker-0", REDIS_URL=f"redis://nopublish:secret@127.0.0.1:{private_redis.port}/0")
    token = await stack.owner()
    async with Feed(stack, token) as feed, stack.client(token) as client:
        job_id = await submit(client, "demo", duration=0.5)
        await feed.until_final(job_id)
        stored = await stored_events(client, job_id)
        ready = (await client.get("/readyz")).json()
    assert ready["checks"]["pubsub"] == "ok"  # the web process's pub/sub was up throughout
    # and the worker's publishes were refused (by the ACL, inside the publishing script: Redis
    # 7.0 says so in words of its own, later versions as for a PUBLISH sent alone)
    logs = stack.logs("worker-0")
    assert "NOTIFY carries them" in logs
    assert "no permissions to run the 'publish' command" in logs or "can't run this command" in logs
    assert feed.events(job_id) == feed_kinds(stored)


async def test_the_feed_through_a_redis_outage_says_resync_and_keeps_the_toasts(
    private_redis: PrivateRedis,
    new_database: DatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
    stacks: list[Stack],
) -> None:
    database_url = await new_database()
    log_dir = tmp_path_factory.mktemp("feed")
    stack = await launch(database_url, private_redis.url, log_dir, workers=1, **chaos_env())
    stacks.append(stack)
    token = await stack.owner()
    async with Feed(stack, token) as feed, stack.client(token) as client:
        job_id = await submit(client, "demo", duration=4)

        async def running() -> bool:
            return any(e.get("status") == "running" for e in feed.events(job_id))

        await eventually(running, what="the job running, on the feed")
        before = len(feed.events(job_id))
        private_redis.kill()

        async def told_to_resync() -> bool:
            return feed.resyncs >= 1

        await eventually(told_to_resync, what="a resync once pub/sub is down")

        async def more_while_down() -> bool:
            return len(feed.events(job_id)) > before

        await eventually(more_while_down, what="the job's events over NOTIFY")
        resyncs_while_down = feed.resyncs
        private_redis.start()

        async def resynced_again() -> bool:
            return feed.resyncs > resyncs_while_down

        await eventually(resynced_again, what="a resync once pub/sub is back")
        await feed.until_final(job_id)
        stored = await stored_events(client, job_id)
    sent = feed.events(job_id)
    assert len({e["seq"] for e in sent}) == len(sent)  # none twice
    assert all(e in stored for e in sent)
    assert sent[-1] == feed_kinds(stored)[-1]  # the toast: the job's end


async def test_two_web_processes_each_watcher_gets_every_event_in_order(
    endpoints: Endpoints,
    new_database: DatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
    stacks: list[Stack],
) -> None:
    first = await launch(await new_database(), endpoints.redis_url, tmp_path_factory.mktemp("two"))
    stacks.append(first)
    second = await first.add_web()
    token = await first.owner()
    async with (
        Feed(first, token) as feed_one,
        Feed(second, token) as feed_two,
        first.client(token) as client,
    ):
        job_id = await submit(client, "demo", duration=1)
        watchers = [Watcher(first, token, job_id), Watcher(second, token, job_id)]
        await asyncio.gather(*(w.run(timeout_s=30) for w in watchers))
        await feed_one.until_final(job_id)
        await feed_two.until_final(job_id)
        stored = await stored_events(client, job_id)
    for watcher in watchers:
        assert watcher.events == stored
        assert watcher.closes == [1000]  # one socket, closed when the job ended
    assert feed_one.events(job_id) == feed_kinds(stored)
    assert feed_two.events(job_id) == feed_kinds(stored)


async def test_a_feed_that_asks_for_progress_gets_each_jobs_at_most_twice_a_second(
    stack: Stack,
) -> None:
    token = await stack.owner()
    async with (
        Feed(stack, token) as plain,
        Feed(stack, token, progress=True) as live,
        stack.client(token) as client,
    ):
        # two jobs at once, each reporting progress ten times a second for two seconds
        job_ids = [await submit(client, "demo", duration=2) for _ in range(2)]
        for job_id in job_ids:
            await live.until_final(job_id)
            await plain.until_final(job_id)
        for job_id in job_ids:
            stored = await stored_events(client, job_id)
            reported = [e for e in stored if e["kind"] == "progress"]
            got = [e for e in live.events(job_id) if e["kind"] == "progress"]
            # the toasts' feed is as before: no progress at all
            assert plain.events(job_id) == feed_kinds(stored)
            # the list's feed: every other event, and progress as stored, in order, thinned
            assert feed_kinds(live.events(job_id)) == feed_kinds(stored)
            assert len(got) < len(reported)
            assert 2 <= len(got) <= 2 * 2 + 2, [e["progress"] for e in got]
            assert all(e in reported for e in got)
            assert [e["seq"] for e in got] == sorted(e["seq"] for e in got)


async def test_a_feed_thinned_for_progress_still_sends_each_jobs_latest_value(
    endpoints: Endpoints,
    new_database: DatabaseFactory,
    tmp_path_factory: pytest.TempPathFactory,
    stacks: list[Stack],
) -> None:
    """A job reports ten times within a few milliseconds, then goes quiet for 4 s in the
    same step: the feed holds its last report back for its half second, then sends it,
    rather than leave the list on the first until the next step."""
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        tmp_path_factory.mktemp("thinned"),
        JOBCAST_JOB_MODULES="tests.live_jobs",
    )
    stacks.append(stack)
    token = await stack.owner()
    async with Feed(stack, token, progress=True) as live, stack.client(token) as client:
        job_id = await submit(client, "live_ticks", ticks=10, quiet_s=4)

        async def latest_sent() -> bool:
            stored = [e for e in await stored_events(client, job_id) if e["kind"] == "progress"]
            got = [e for e in live.events(job_id) if e["kind"] == "progress"]
            return len(stored) > 1 and bool(got) and got[-1]["seq"] == stored[-1]["seq"]

        await eventually(latest_sent, timeout_s=3, what="the tick step's last report on the feed")
        # while the job is still quiet in its first step: nothing else has moved it on
        assert not any(
            e["kind"] == "step" and e.get("step") == "after" for e in live.events(job_id)
        )
        job = (await client.get(f"/api/jobs/{job_id}")).json()
        assert (job["status"], job["step"]) == ("running", "tick")
