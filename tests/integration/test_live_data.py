"""Live data of a running job, end to end (web process, worker, Postgres, Redis): streams
read through reconnects, metadata and steps added at run time seen live and in the API,
the limits' errors, and a child setting its parent's metadata."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from jobcast.endpoints import Endpoints
from tests.conftest import DatabaseFactory
from tests.live_jobs import chunk
from tests.support import Stack, Watched, eventually, launch, parse_at, submit, watch
from workers.jobs.builtin import REPORT_TEXT

pytestmark = pytest.mark.timeout(180)

CHUNKS = 10_000
RECONNECTS = 5
FLUSH_MS = 50
STREAM_MAX_CHARS = 60_000  # room for the 10,000 chunks' 48,890 characters
PROGRESS_WINDOW_MS = 50


@pytest.fixture(scope="module")
async def live(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    running = await launch(
        await new_database(),
        endpoints.redis_url,
        Path(tmp_path_factory.mktemp("live")),
        JOBCAST_JOB_MODULES="tests.live_jobs",
        JOBCAST_METADATA_MAX_BYTES="4096",
        JOBCAST_STREAM_CHUNK_MAX_BYTES="4096",
        JOBCAST_STREAM_FLUSH_MS=str(FLUSH_MS),
        JOBCAST_PROGRESS_WINDOW_MS=str(PROGRESS_WINDOW_MS),
        JOBCAST_STREAM_MAX_CHARS=str(STREAM_MAX_CHARS),
        JOBCAST_RUN_STEPS_MAX="5",
    )
    try:
        yield running
    finally:
        running.close()


async def read_some(stack: Stack, token: str, job_id: str, after: int, count: int) -> list[Any]:
    """Open the job's socket with ``after``, take up to ``count`` events, hang up."""
    url = f"{stack.ws_base}/ws/jobs/{job_id}?after={after}"
    events: list[Any] = []
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        snapshot = orjson.loads(await ws.recv())
        assert snapshot["type"] == "snapshot"
        try:
            while len(events) < count:
                events.append(orjson.loads(await ws.recv()))
        except ConnectionClosed:
            pass
    return events


def join_stream(events: list[dict[str, Any]], name: str) -> str:
    """The stream's text from its events, checking each starts where the last ended."""
    text = ""
    for event in events:
        if event["kind"] == "stream" and event["name"] == name:
            assert event["offset"] == len(text), (event["offset"], len(text))
            text += event["text"]
    return text


async def test_a_stream_of_10000_chunks_reaches_a_watcher_that_reconnects_five_times_whole(
    live: Stack,
) -> None:
    token = await live.owner()
    async with live.client(token) as client:
        job_id = await submit(client, "live_chunks", chunks=CHUNKS, pace_every=20)
        seen: list[dict[str, Any]] = []
        after = 0
        for _ in range(RECONNECTS):
            part = await read_some(live, token, job_id, after, count=8)
            assert part, "a reconnect got no event"
            seen += part
            after = part[-1]["seq"]
            await asyncio.sleep(0.2)  # away a while: what is written meanwhile is replayed
        rest = await watch(live, token, job_id, after=after, timeout_s=120)
        seen += rest.events
        seqs = [e["seq"] for e in seen]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap or a repeat in seq"
        text = join_stream(seen, "out")
        assert text == "".join(chunk(i) for i in range(CHUNKS))
        assert seen[-1]["kind"] == "status" and seen[-1]["status"] == "completed"
        # the stream was written while the watcher was away, several times over
        stream_events = [e for e in seen if e["kind"] == "stream"]
        assert len(stream_events) > RECONNECTS
        # batched: far fewer stored events (commits) than chunks
        assert len(stream_events) < CHUNKS / 10, len(stream_events)
        view = (await client.get(f"/api/jobs/{job_id}")).json()
        assert view["streams"] == {"out": text}
    async with asyncio.timeout(5):
        conn = await asyncpg.connect(live.database_url)
    try:
        length = await conn.fetchval(
            "SELECT length FROM job_streams WHERE job_id = $1 AND name = 'out'", job_id
        )
    finally:
        await conn.close()
    assert length == len(text)


async def stored_events(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/jobs/{job_id}/events", params={"after": 0})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "a gap in seq"
    return events


def shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What each event says, besides its progress: for comparing stored and seen."""
    return [(e["seq"], e["kind"], e.get("step"), e.get("state"), e.get("status")) for e in events]


async def run_ticks(
    live: Stack, **job_input: Any
) -> tuple[Watched, list[dict[str, Any]], dict[str, Any]]:
    """A ``live_ticks`` job watched from its first event to its close: what the socket got,
    the events stored and the job."""
    token = await live.owner()
    async with live.client(token) as client:
        job_id = await submit(client, "live_ticks", **job_input)
        watched = await watch(live, token, job_id, after=0, timeout_s=60)
        stored = await stored_events(client, job_id)
        view: dict[str, Any] = (await client.get(f"/api/jobs/{job_id}")).json()
    return watched, stored, view


async def test_a_job_reporting_in_a_tight_loop_stores_one_progress_event_a_window(
    live: Stack,
) -> None:
    ticks = 5000
    watched, stored, view = await run_ticks(live, ticks=ticks, pace_every=10)
    assert view["status"] == "completed" and view["result"] == {"ticks": ticks}
    # every step and status event is stored, in order, with the reports between them
    assert [s[1:] for s in shape(stored) if s[1] != "progress"] == [
        ("status", None, None, "pending"),
        ("status", None, None, "running"),
        ("step", "tick", "running", None),
        ("step", "tick", "completed", None),
        ("step", "after", "running", None),
        ("step", "after", "completed", None),
        ("status", None, None, "completed"),
    ]
    reports = [e for e in stored if e["kind"] == "progress" and e["step"] == "tick"]
    # far fewer than reported: at most one a window over the time the job ran, and the
    # first (written at once) and the last (written before the step's end) among them
    ran_s = (parse_at(view["finished_at"]) - parse_at(view["started_at"])).total_seconds()
    assert len(reports) <= ran_s * 1000 / PROGRESS_WINDOW_MS + 3, (len(reports), ran_s)
    assert len(reports) < ticks / 20, len(reports)
    assert reports[0]["message"] == f"1 of {ticks}"
    assert reports[-1]["message"] == f"{ticks} of {ticks}"
    boundaries = {(e["step"], e["state"]): e["seq"] for e in stored if e["kind"] == "step"}
    assert boundaries[("tick", "running")] < reports[0]["seq"]
    assert reports[-1]["seq"] == boundaries[("tick", "completed")] - 1
    later = [e["message"] for e in stored if e["kind"] == "progress" and e["step"] == "after"]
    assert later == ["halfway"]
    progress = [e["progress"] for e in stored if e.get("progress") is not None]
    assert progress == sorted(progress), progress
    # the watcher saw exactly what is stored, the last value among it, and the close
    assert shape(watched.events) == shape(stored)
    seen = [e for e in watched.events if e["kind"] == "progress" and e["step"] == "tick"]
    assert seen[-1]["message"] == f"{ticks} of {ticks}"
    assert seen[-1]["progress"] == reports[-1]["progress"]
    assert watched.close_code == 1000


async def test_a_job_failing_right_after_a_tight_loop_of_reports_stores_the_last_first(
    live: Stack,
) -> None:
    ticks = 3000
    watched, stored, _view = await run_ticks(live, ticks=ticks, fail=True)
    *_, last_report, step_failed, job_failed = stored
    assert last_report["kind"] == "progress" and last_report["message"] == f"{ticks} of {ticks}"
    assert (step_failed["kind"], step_failed["step"], step_failed["state"]) == (
        "step",
        "tick",
        "failed",
    )
    assert job_failed["kind"] == "status" and job_failed["status"] == "failed"
    assert "as asked" in job_failed["error"]["message"]
    assert sum(e["kind"] == "progress" for e in stored) < ticks / 20
    assert shape(watched.events) == shape(stored)


async def test_metadata_run_time_steps_and_a_stream_are_seen_live_and_in_the_api(
    live: Stack,
) -> None:
    items = 3
    token = await live.owner()
    async with live.client(token) as client:
        job_id = await submit(client, "demo", duration=1.5, items=items, stream=True)
        watched = await watch(live, token, job_id, timeout_s=60)
        view = (await client.get(f"/api/jobs/{job_id}")).json()
    events = watched.events
    assert events[-1]["status"] == "completed"
    # metadata: each change live, with only the keys that changed
    changes = [e["metadata"] for e in events if e["kind"] == "metadata"]
    assert changes[0] == {"items_found": items, "items_done": 0}
    assert [c["items_done"] for c in changes[1:]] == list(range(1, items + 1))
    assert view["metadata"] == {"items_found": items, "items_done": items}
    # run-time steps: added, run, counted, completed, each live
    run_steps = [f"fetch.{i}" for i in range(1, items + 1)]
    for name in run_steps:
        mine = [e for e in events if e["kind"] == "step" and e["step"] == name]
        states = [e["state"] for e in mine if "state" in e]
        assert states == ["waiting", "running", "completed"], states
        # counted live, in events of their own that leave the state as it is
        assert [e["counters"] for e in mine if "state" not in e] == [
            {"done": 1, "total": 2},
            {"done": 2, "total": 2},
        ]
    added = [e for e in events if e["kind"] == "step" and e.get("state") == "waiting"]
    assert [e["title"] for e in added] == [f"Fetch item {i}" for i in range(1, items + 1)]
    assert all(e["parent"] == "fetch" for e in added)
    # the view lists them after their parent, with their counters
    names = [s["name"] for s in view["steps"]]
    assert names == ["validate", "fetch", *run_steps, "analyze", "report"]
    for step in view["steps"][2 : 2 + items]:
        assert step["parent"] == "fetch" and step["status"] == "completed"
        assert step["counters"] == {"done": 2, "total": 2}
        assert step["share"] == pytest.approx(1 / items)
    # progress never goes back within the attempt
    progress = [e["progress"] for e in events if "progress" in e and e["progress"] is not None]
    assert progress == sorted(progress), progress
    # the report streamed word by word, in several events, whole
    assert join_stream(events, "report") == REPORT_TEXT
    assert view["streams"] == {"report": REPORT_TEXT}
    # the socket's snapshot leaves the text to the stream events: none comes twice
    assert watched.snapshot["job"]["streams"] is None
    assert sum(e["kind"] == "stream" for e in events) > 1
    # and the report's text came before its step ended
    last_stream = max(e["seq"] for e in events if e["kind"] == "stream")
    report_done = next(
        e["seq"]
        for e in events
        if e["kind"] == "step" and e["step"] == "report" and e["state"] == "completed"
    )
    assert last_stream < report_done


async def test_limits_are_clear_errors_to_job_code_and_a_run_time_step_fails_on_its_own(
    live: Stack,
) -> None:
    token = await live.owner()
    async with live.client(token) as client:
        job_id = await submit(client, "live_limits")
        watched = await watch(live, token, job_id, timeout_s=60)
        assert watched.events[-1]["status"] == "completed", watched.events[-1]
        view = (await client.get(f"/api/jobs/{job_id}")).json()
        refused = view["result"]["refused"]
        assert "JOBCAST_METADATA_MAX_BYTES" in refused["metadata"]
        assert "JOBCAST_STREAM_CHUNK_MAX_BYTES" in refused["chunk"]
        # nothing of the refused writes was kept
        assert "JOBCAST_METADATA_MAX_BYTES" in refused["merged"]
        assert view["metadata"] == {"stage": "done", "part0": "z" * 1500, "part1": "z" * 1500}
        assert "JOBCAST_STREAM_MAX_CHARS" in refused["stream"]
        # of the big stream, what fit: whole flushes, never past the cap
        assert set(view["streams"]) == {"big"}
        assert 0 < len(view["streams"]["big"]) <= STREAM_MAX_CHARS
        assert set(view["streams"]["big"]) == {"w"}
        assert "JOBCAST_RUN_STEPS_MAX" in refused["steps"]
        good, bad = (s for s in view["steps"] if s["parent"] == "work")
        assert good["status"] == "completed" and good["error"] is None
        assert good["metadata"] == {"url": "https://example.com/good"}
        assert bad["status"] == "failed"
        assert bad["error"] == {
            "type": "TransientError",
            "category": "transient",
            "message": "the item's server answered 503",
        }
        failed = [e for e in watched.events if e["kind"] == "step" and e.get("state") == "failed"]
        assert [e["error"]["message"] for e in failed] == ["the item's server answered 503"]

        # uncaught, the limit fails the job (not the worker, which runs the next job)
        failing = await submit(client, "live_limits", uncaught=True)
        ended = await watch(live, token, failing, timeout_s=60)
        final = ended.events[-1]
        assert final["status"] == "failed"
        assert final["error"]["type"] == "LimitExceeded"
        assert "JOBCAST_METADATA_MAX_BYTES" in final["error"]["message"]
        after = await submit(client, "noop")
        assert (await watch(live, token, after, timeout_s=30)).events[-1]["status"] == "completed"


async def test_a_child_sets_its_parents_metadata_and_the_parents_watchers_see_it(
    live: Stack,
) -> None:
    token = await live.owner()
    async with live.client(token) as client:
        job_id = await submit(client, "live_family")
        watched = await watch(live, token, job_id, timeout_s=60)
        assert watched.events[-1]["status"] == "completed"
        changes = [e for e in watched.events if e["kind"] == "metadata"]
        assert [c["metadata"] for c in changes] == [{"from_child": "hello", "child_attempt": 1}]
        assert all(c["job_id"] == job_id for c in changes)

        async def parent_view() -> dict[str, Any] | None:
            view: dict[str, Any] = (await client.get(f"/api/jobs/{job_id}")).json()
            return view if view["metadata"] else None

        view = await eventually(parent_view, timeout_s=5)
        assert view["metadata"] == {"from_child": "hello", "child_attempt": 1}
        child_id = view["result"]["child_id"]
        child = (await client.get(f"/api/jobs/{child_id}")).json()
        assert child["metadata"] == {}


async def test_a_worker_killed_mid_stream_loses_nothing_a_watcher_saw(
    endpoints: Endpoints, new_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> None:
    stack = await launch(
        await new_database(),
        endpoints.redis_url,
        Path(tmp_path_factory.mktemp("killed")),
        JOBCAST_JOB_MODULES="tests.live_jobs",
        JOBCAST_STREAM_FLUSH_MS=str(FLUSH_MS),
        JOBCAST_PROGRESS_WINDOW_MS=str(PROGRESS_WINDOW_MS),
        JOBCAST_STALE_AFTER_S="2",
        JOBCAST_REAPER_INTERVAL_S="0.5",
    )
    try:
        token = await stack.owner()
        async with stack.client(token) as client:
            count = 4000
            job_id = await submit(client, "live_chunks", chunks=count, pace_every=10)
            before = await read_some(stack, token, job_id, 0, count=12)
            seen = join_stream(before, "out")
            assert sum(e["kind"] == "stream" for e in before) >= 5, before
            stack.stop("worker-0", sig=signal.SIGKILL)  # its buffer, unflushed, is lost
            stack.start("worker-0")
            rest = await watch(stack, token, job_id, after=before[-1]["seq"], timeout_s=90)
            assert rest.events[-1]["status"] == "completed"
            events = before + rest.events
            assert any(e.get("kind") == "status" and e.get("attempt") == 2 for e in events)
            # one stream over both attempts: each event starts where the last ended
            text = join_stream(events, "out")
            whole = "".join(chunk(i) for i in range(count))
            assert text.startswith(seen) and text.endswith(whole)
            # what the first attempt stored is whole chunks, in order, from the first
            first = text[: len(text) - len(whole)]
            assert whole.startswith(first)
            view = (await client.get(f"/api/jobs/{job_id}")).json()
            assert view["streams"] == {"out": text}
    finally:
        stack.close()
