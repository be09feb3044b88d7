"""A worker's reports (progress, steps), many jobs to a statement, against a real Postgres."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any
from uuid import UUID

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis

from jobcast.bus import Publisher
from jobcast.endpoints import Endpoints
from jobcast.errors import StorageUnavailable
from jobcast.model import Claim, Event, JobStatus, StepState
from jobcast.registry import load_registry
from jobcast.settings import load_settings
from jobcast.store import Store
from jobcast.store.reports import JobEnd, ProgressReport, Report, StepReport
from tests.conftest import DatabaseFactory
from tests.in_process import worker_settings
from tests.support import eventually
from workers.context import Reporter
from workers.heartbeat import Heartbeat
from workers.report_writes import ReportWrites
from workers.runner import _end
from workers.state import WorkerState


class Counted:
    """A real store whose statements of many reports are counted, with their sizes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.sizes: list[int] = []
        self.ended: list[UUID] = []

    async def record_reports(self, reports: list[Report]) -> dict[UUID, Event]:
        self.sizes.append(len(reports))
        return await self.store.record_reports(reports)

    async def record_ends(self, ends: list[JobEnd]) -> dict[UUID, Event]:
        self.sizes.append(len(ends))
        self.ended += [e.job_id for e in ends]
        return await self.store.record_ends(ends)


async def running_jobs(store: Store, count: int, job_type: str = "noop") -> list[UUID]:
    owner = await store.create_owner(uuid.uuid4().hex)
    ids = []
    for _ in range(count):
        created = await store.create_job(
            owner_id=owner, job_type=load_registry().get(job_type), params={}
        )
        assert created is not None and isinstance(await store.claim(created.job.id), Claim)
        ids.append(created.job.id)
    return ids


def report(job_id: UUID, progress: float = 50.0, message: str | None = None) -> ProgressReport:
    return ProgressReport(job_id, 1, progress, None, message)


async def stored(store: Store, job_id: UUID) -> list[tuple[int, Any]]:
    rows = await store.pool.fetch(
        "SELECT seq, payload FROM job_events WHERE job_id = $1 AND kind = 'progress' ORDER BY seq",
        job_id,
    )
    return [(r["seq"], r["payload"]["progress"]) for r in rows]


async def test_reports_made_while_a_statement_runs_go_together_each_with_its_event(
    store: Store,
) -> None:
    ids = await running_jobs(store, 6)
    counted = Counted(store)
    writes = ReportWrites(counted)  # type: ignore[arg-type]
    first = asyncio.create_task(writes.write(report(ids[0], 10)))
    await asyncio.sleep(0)  # its statement is on its way: the next ones wait for it
    rest = [asyncio.create_task(writes.write(report(j, 20 + k))) for k, j in enumerate(ids[1:])]
    events = [await first, *[await t for t in rest]]
    assert counted.sizes == [1, 5]
    for k, (job_id, event) in enumerate(zip(ids, events, strict=True)):
        assert event is not None and event.job_id == job_id and event.kind == "progress"
        assert event.seq == 3  # made (1), running (2), this report (3)
        assert await stored(store, job_id) == [(3, 10 if k == 0 else 20 + k - 1)]
    row = await store.pool.fetchrow("SELECT seq, progress FROM jobs WHERE id = $1", ids[3])
    assert (row["seq"], row["progress"]) == (3, 22)


async def test_jobs_whose_reports_were_just_stored_join_the_next_statement(
    store: Store,
) -> None:
    ids = await running_jobs(store, 2)
    counted = Counted(store)
    writes = ReportWrites(counted)  # type: ignore[arg-type]

    async def reporting(job_id: UUID) -> None:
        for k in range(1, 6):
            await writes.write(report(job_id, k))

    first = asyncio.create_task(reporting(ids[0]))
    await asyncio.sleep(0)  # the first job's first report is on its way alone
    await asyncio.gather(first, reporting(ids[1]))
    # then both jobs' reports in each statement, not each job behind the other's
    assert counted.sizes == [1, 2, 2, 2, 2, 1]
    assert [await stored(store, j) for j in ids] == [[(k + 2, k) for k in range(1, 6)]] * 2


async def test_a_job_whose_attempt_ended_gets_none_and_the_others_their_events(
    store: Store,
) -> None:
    ids = await running_jobs(store, 3)
    owner = await store.pool.fetchval("SELECT owner_id FROM jobs WHERE id = $1", ids[1])
    assert await store.cancel(ids[1], owner)
    writes = ReportWrites(store)
    events = await asyncio.gather(*(writes.write(report(j)) for j in ids))
    assert events[1] is None and await stored(store, ids[1]) == []
    assert events[0] is not None and events[2] is not None
    assert [await stored(store, j) for j in (ids[0], ids[2])] == [[(3, 50)], [(3, 50)]]


async def test_a_report_postgres_refuses_fails_alone(store: Store) -> None:
    ids = await running_jobs(store, 3)
    counted = Counted(store)
    writes = ReportWrites(counted)  # type: ignore[arg-type]
    asked = [
        writes.write(report(ids[0])),
        writes.write(report(ids[1], 150)),
        writes.write(report(ids[2])),
    ]
    outcomes = await asyncio.gather(*asked, return_exceptions=True)
    assert "jobs_progress_check" in str(outcomes[1])  # over 100: the table's check refuses it
    assert isinstance(outcomes[0], Event) and isinstance(outcomes[2], Event)
    assert counted.sizes == [3, 1, 1, 1]  # together, then each alone
    assert await stored(store, ids[1]) == []
    assert await stored(store, ids[2]) == [(3, 50)]


async def test_two_reports_of_one_job_never_share_a_statement_and_keep_their_order(
    store: Store,
) -> None:
    [job_id] = await running_jobs(store, 1)
    counted = Counted(store)
    writes = ReportWrites(counted)  # type: ignore[arg-type]
    events = await asyncio.gather(
        writes.write(report(job_id, 30)), writes.write(report(job_id, 60))
    )
    assert counted.sizes == [1, 1]
    assert [e.seq for e in events if e is not None] == [3, 4]
    assert await stored(store, job_id) == [(3, 30), (4, 60)]


async def test_with_postgres_away_every_report_of_the_statement_fails_as_its_own_would() -> None:
    async with Store.open("postgresql://postgres@127.0.0.1:9/none") as away:
        writes = ReportWrites(away)
        outcomes = await asyncio.gather(
            *(writes.write(report(uuid.uuid4())) for _ in range(3)), return_exceptions=True
        )
    assert all(isinstance(o, StorageUnavailable) for o in outcomes), outcomes


async def test_steps_and_progress_of_several_jobs_share_a_statement(store: Store) -> None:
    ids = await running_jobs(store, 3, "demo")  # its first step: "validate"
    owner = await store.pool.fetchval("SELECT owner_id FROM jobs WHERE id = $1", ids[2])
    assert await store.pause(ids[2], owner) is True  # asked: it pauses at its next step
    counted = Counted(store)
    writes = ReportWrites(counted)  # type: ignore[arg-type]
    await writes.write(
        StepReport(ids[0], 1, "validate", StepState.RUNNING, None, 0.0, "Validate input…")
    )
    start, done, progress, refused = await asyncio.gather(
        writes.write(report(ids[1], 5)),
        writes.write(
            StepReport(ids[0], 1, "validate", StepState.COMPLETED, 12, 100.0, None, {"n": 7})
        ),
        writes.write(report(ids[1], 10)),
        writes.write(
            StepReport(ids[2], 1, "validate", StepState.RUNNING, None, 0.0, "Validate input…")
        ),
    )
    assert counted.sizes == [1, 3, 1]  # ids[1]'s second report waits for its first
    assert refused is None  # the step boundary is where it pauses: no start
    assert done is not None and done.kind == "step"
    assert done.data == {
        "step": "validate",
        "state": "completed",
        "progress": 100.0,
        "duration_ms": 12,
    }
    step = await store.pool.fetchrow(
        "SELECT status, result, duration_ms, attempts FROM job_steps"
        " WHERE job_id = $1 AND name = 'validate'",
        ids[0],
    )
    assert dict(step) == {
        "status": "completed",
        "result": {"n": 7},
        "duration_ms": 12,
        "attempts": 1,
    }
    assert start is not None and progress is not None and progress.seq == start.seq + 1
    assert await store.pool.fetchval(
        "SELECT status FROM job_steps WHERE job_id = $1 AND name = 'validate'", ids[2]
    ) == ("waiting")


@pytest.mark.parametrize("result", [[{"id": 1}, {"id": 2}], [[1, 2], [3]], "text", 7, None])
async def test_a_steps_result_is_stored_as_it_is_whatever_its_shape(
    store: Store, result: Any
) -> None:
    ids = await running_jobs(store, 2, "demo")
    writes = ReportWrites(store)
    for job_id in ids:
        await writes.write(StepReport(job_id, 1, "fetch", StepState.RUNNING, None, 0.0, "Fetch…"))
    await asyncio.gather(
        writes.write(StepReport(ids[0], 1, "fetch", StepState.COMPLETED, 5, 40.0, None, result)),
        writes.write(report(ids[1], 20)),
    )
    # the next attempt starts from it: its claim reads the checkpoint back
    await store.pool.execute("UPDATE jobs SET status = 'pending' WHERE id = $1", ids[0])
    claim = await store.claim(ids[0], worker="test")
    assert isinstance(claim, Claim)
    fetch = next(c for c in claim.checkpoints if c.name == "fetch")
    assert fetch.completed and fetch.result == result
    names = await store.pool.fetch(
        "SELECT name FROM job_steps WHERE job_id = $1 ORDER BY position", ids[0]
    )
    assert [c.name for c in claim.checkpoints] == [r["name"] for r in names]
    assert not any(c.completed for c in claim.checkpoints if c.name != "fetch")
    stored_result = await store.pool.fetchval(
        "SELECT result FROM job_steps WHERE job_id = $1 AND name = 'fetch'", ids[0]
    )
    assert stored_result == result


async def test_a_writer_stopped_midway_leaves_no_job_waiting_forever(store: Store) -> None:
    ids = await running_jobs(store, 2)
    writes = ReportWrites(store)
    first = asyncio.create_task(writes.write(report(ids[0])))
    await asyncio.sleep(0)
    second = asyncio.create_task(writes.write(report(ids[1])))
    await asyncio.sleep(0)
    assert writes._writer is not None
    writes._writer.cancel()  # as the worker's loop closing does
    for waiting in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, timeout=5)


class Overlaps:
    """A real store that notes whether a heartbeat and a statement of reports ever ran at
    once (each held up a little, so that a beat would land inside one if it could)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.in_flight: set[str] = set()
        self.overlapped = False
        self.beats = 0

    async def _run(self, name: str, call: Any) -> Any:
        self.overlapped |= bool(self.in_flight)
        self.in_flight.add(name)
        try:
            await asyncio.sleep(0.005)
            return await call()
        finally:
            self.in_flight.discard(name)

    async def record_reports(self, reports: list[Report]) -> dict[UUID, Event]:
        return await self._run("reports", lambda: self.store.record_reports(reports))  # type: ignore[no-any-return]

    async def heartbeat(self, attempts: dict[UUID, int]) -> set[UUID]:
        self.beats += 1
        return await self._run("heartbeat", lambda: self.store.heartbeat(attempts))  # type: ignore[no-any-return]


async def test_a_worker_beats_only_between_its_statements_of_reports(
    store: Store, endpoints: Endpoints
) -> None:
    """Neither statement locks its rows in an order first: a worker's heartbeat and its
    reports, on the same rows, must never run at once."""
    ids = await running_jobs(store, 20)
    overlaps = Overlaps(store)
    writes = ReportWrites(overlaps)  # type: ignore[arg-type]
    redis = aioredis.Redis.from_url(endpoints.redis_url)
    heartbeat = Heartbeat(overlaps, 0.001, redis, f"hb{uuid.uuid4().hex[:8]}", writes=writes)  # type: ignore[arg-type]
    for job_id in ids:
        heartbeat.track(job_id, 1, asyncio.current_task())  # type: ignore[arg-type]

    async def reporting(job_id: UUID) -> None:
        for i in range(1, 21):
            assert await writes.write(report(job_id, i)) is not None

    beating = asyncio.create_task(heartbeat.run_forever())
    try:
        await asyncio.gather(*(reporting(j) for j in ids))
    finally:
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)
        await redis.aclose()
    assert overlaps.beats >= 5 and not overlaps.overlapped
    assert [s for s, _ in await stored(store, ids[7])] == list(range(3, 23))


class SlowBeats:
    """A real store whose heartbeats each take 0.6 s longer, as on a loaded Postgres."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.starts: list[float] = []

    async def heartbeat(self, attempts: dict[UUID, int]) -> set[UUID]:
        self.starts.append(time.monotonic())
        await asyncio.sleep(0.6)
        return await self.store.heartbeat(attempts)  # type: ignore[no-any-return]


async def test_a_slow_beat_does_not_put_the_next_one_later(
    store: Store, endpoints: Endpoints
) -> None:
    """A beat every interval from one's start to the next, however long each takes: a
    cancel reaches a running job within an interval on a loaded Postgres too."""
    ids = await running_jobs(store, 1)
    redis = aioredis.Redis.from_url(endpoints.redis_url)
    slow = SlowBeats(store)
    heartbeat = Heartbeat(slow, 1.0, redis, f"hb{uuid.uuid4().hex[:8]}")  # type: ignore[arg-type]
    code = asyncio.create_task(asyncio.Event().wait())  # the job's running code
    heartbeat.track(ids[0], 1, code)
    beating = asyncio.create_task(heartbeat.run_forever())
    try:

        async def four_beats() -> bool:
            return len(slow.starts) >= 4

        await eventually(four_beats, timeout_s=30, what="four beats")
    finally:
        beating.cancel()
        code.cancel()
        await asyncio.gather(beating, code, return_exceptions=True)
        await redis.aclose()
    gaps = [b - a for a, b in zip(slow.starts, slow.starts[1:], strict=False)]
    # an interval after a beat's start, not after its end (1.6 s)
    assert max(gaps) < 1.35, gaps


class DeadlockOnce:
    """A real store whose first heartbeat Postgres ends for a deadlock."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.beats = 0

    async def heartbeat(self, attempts: dict[UUID, int]) -> set[UUID]:
        self.beats += 1
        if self.beats == 1:
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        return await self.store.heartbeat(attempts)


async def test_a_beat_postgres_ends_for_a_deadlock_is_made_again_at_the_next(
    store: Store, endpoints: Endpoints
) -> None:
    """A cancel of many jobs at once may lock the same rows in another order: the beat that
    loses is made at the next interval, stopping no job and taking Postgres for up."""
    ids = await running_jobs(store, 2)
    redis = aioredis.Redis.from_url(endpoints.redis_url)
    failing = DeadlockOnce(store)
    heartbeat = Heartbeat(failing, 1.0, redis, f"hb{uuid.uuid4().hex[:8]}")  # type: ignore[arg-type]
    task = asyncio.create_task(asyncio.Event().wait())  # the jobs' running code: it never ends
    try:
        for job_id in ids:
            heartbeat.track(job_id, 1, task)  # type: ignore[arg-type]
        await heartbeat.beat()
        assert not heartbeat.storage_down and not task.cancelled()
        before = await store.pool.fetchval(
            "SELECT max(heartbeat_at) FROM jobs WHERE id = ANY($1)", ids
        )
        await heartbeat.beat()
        after = await store.pool.fetchval(
            "SELECT min(heartbeat_at) FROM jobs WHERE id = ANY($1)", ids
        )
        assert failing.beats == 2 and after > before and not task.done()
    finally:
        task.cancel()
        await redis.aclose()


async def test_a_batch_cancel_closes_each_jobs_open_steps_with_gap_free_events(
    store: Store,
) -> None:
    # demo's steps: validate, fetch, analyze, report
    running, asked, second, pending = await running_jobs(store, 4, "demo")
    writes = ReportWrites(store)
    for job_id in (running, asked, second):
        await writes.write(StepReport(job_id, 1, "validate", StepState.RUNNING, None, 0.0, "V"))
    # `second` completed its first step and runs its second; `asked` waits for an answer
    await writes.write(StepReport(second, 1, "validate", StepState.COMPLETED, 5, 25.0))
    await writes.write(StepReport(second, 1, "fetch", StepState.RUNNING, None, 25.0, "F"))
    await writes.write(StepReport(asked, 1, "validate", StepState.COMPLETED, 5, 25.0))
    waited = await store.wait_for_input(
        asked,
        1,
        step="fetch",
        prompt="Which?",
        schema={"type": "string"},
        timeout_s=None,
        on_timeout="fail",
        default=None,
    )
    assert waited is not None
    await store.pool.execute("UPDATE jobs SET status = 'pending' WHERE id = $1", pending)

    events = await store.cancel_many([running, asked, second, pending])

    assert sorted(e.job_id for e in events) == sorted([running, asked, second, pending])
    for job_id, closed in ((running, "validate"), (asked, "fetch"), (second, "fetch")):
        rows = await store.pool.fetch(
            "SELECT seq, kind, payload FROM job_events WHERE job_id = $1 ORDER BY seq", job_id
        )
        assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1)), job_id
        step_event, last = rows[-2], rows[-1]
        assert (step_event["kind"], step_event["payload"]["step"]) == ("step", closed)
        assert step_event["payload"]["state"] == "cancelled"
        assert (last["kind"], last["payload"]["status"]) == ("status", "cancelled")
        assert await store.pool.fetchval(
            "SELECT status FROM job_steps WHERE job_id = $1 AND name = $2", job_id, closed
        ) == ("cancelled")
        # the answer names the event as stored
        mine = next(e for e in events if e.job_id == job_id)
        assert (mine.seq, mine.at) == (
            last["seq"],
            await store.pool.fetchval(
                "SELECT at FROM job_events WHERE job_id = $1 AND seq = $2", job_id, last["seq"]
            ),
        )
    pending_events = await store.pool.fetch(
        "SELECT seq, kind FROM job_events WHERE job_id = $1 ORDER BY seq", pending
    )
    assert [r["kind"] for r in pending_events][-1] == "status"
    assert [r["seq"] for r in pending_events] == list(range(1, len(pending_events) + 1))


async def _events_of(store: Store, job_id: UUID) -> list[asyncpg.Record]:
    return await store.pool.fetch(
        "SELECT seq, kind, payload, at FROM job_events WHERE job_id = $1 ORDER BY seq", job_id
    )


async def test_ends_made_while_a_statement_runs_go_together_each_closing_its_open_steps(
    store: Store,
) -> None:
    """Attempts that end while a statement of reports runs end together, in one statement:
    each job's row ends as `finish` ends it, its open step gets its `step` event just
    before the job's own, its webhook is scheduled, and an end whose attempt no longer
    runs gets None while the others apply."""
    # demo's steps: validate, fetch, analyze, report
    done, failing, quiet, lost, busy = await running_jobs(store, 5, "demo")
    writes = ReportWrites(Counted(store))  # type: ignore[arg-type]
    for job_id in (done, failing):
        await writes.write(StepReport(job_id, 1, "validate", StepState.RUNNING, None, 0.0, "V"))
    await store.pool.execute(
        "UPDATE jobs SET callback_url = 'http://127.0.0.1:9/hook' WHERE id = $1", quiet
    )
    counted = Counted(store)
    writes = ReportWrites(counted)  # type: ignore[arg-type]
    first = asyncio.create_task(writes.write(report(busy, 10)))
    await asyncio.sleep(0)  # its statement is on its way: the ends wait for it
    error = {"type": "ValueError", "category": "permanent", "message": "bad row"}
    ends = [
        JobEnd(done, 1, JobStatus.COMPLETED, result={"rows": [1, 2]}, message="Completed"),
        JobEnd(failing, 1, JobStatus.FAILED, error=error, message="bad row"),
        JobEnd(quiet, 1, JobStatus.COMPLETED, result=None, message="Completed"),
        JobEnd(lost, 2, JobStatus.COMPLETED, message="Completed"),  # not its attempt
    ]
    answers = await asyncio.gather(*(writes.write(end) for end in ends))
    assert await first is not None
    assert counted.sizes == [1, 4]
    assert answers[3] is None
    rows = {
        r["id"]: r
        for r in await store.pool.fetch(
            "SELECT id, status, result, error, progress, message, finished_at, heartbeat_at"
            " FROM jobs WHERE id = ANY($1::uuid[])",
            [done, failing, quiet, lost],
        )
    }
    assert (rows[done]["status"], rows[done]["result"], rows[done]["progress"]) == (
        "completed",
        {"rows": [1, 2]},
        100,
    )
    assert (rows[failing]["status"], rows[failing]["error"]) == ("failed", error)
    assert rows[failing]["progress"] < 100
    assert rows[quiet]["status"] == "completed" and rows[quiet]["result"] is None
    assert rows[lost]["status"] == "running" and rows[lost]["finished_at"] is None
    assert all(rows[j]["heartbeat_at"] is None for j in (done, failing, quiet))
    for job_id, answer, status in (
        (done, answers[0], "completed"),
        (failing, answers[1], "failed"),
        (quiet, answers[2], "completed"),
    ):
        events = await _events_of(store, job_id)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), job_id
        last = events[-1]
        assert (last["kind"], last["payload"]["status"]) == ("status", status)
        assert answer is not None and (answer.seq, answer.at, answer.data) == (
            last["seq"],
            last["at"],
            last["payload"],
        )
        if job_id != quiet:  # its step `validate` was running: closed, just before
            step = events[-2]
            assert (step["kind"], step["payload"]["step"]) == ("step", "validate")
            assert step["payload"]["state"] == "failed"
            assert await store.pool.fetchval(
                "SELECT status FROM job_steps WHERE job_id = $1 AND name = 'validate'", job_id
            ) == ("failed")
    assert answers[0] is not None and answers[0].data["result"] == {"rows": [1, 2]}
    hooks = await store.pool.fetch(
        "SELECT job_id FROM webhook_deliveries WHERE job_id = ANY($1::uuid[])",
        [done, failing, quiet, lost],
    )
    assert [r["job_id"] for r in hooks] == [quiet]  # the one job with a callback URL


async def test_an_end_that_cannot_be_stored_fails_alone(store: Store) -> None:
    """A result that is not JSON fails its own job's end, not the others' of its statement."""
    busy, *ids = await running_jobs(store, 4)
    writes = ReportWrites(store)
    first = asyncio.create_task(writes.write(report(busy, 10)))
    await asyncio.sleep(0)
    results: list[Any] = [{"ok": 1}, {1, 2}, "fine"]  # a set is not JSON
    answers = await asyncio.gather(
        *(
            writes.write(JobEnd(j, 1, JobStatus.COMPLETED, result=r))
            for j, r in zip(ids, results, strict=True)
        ),
        return_exceptions=True,
    )
    await first
    assert isinstance(answers[1], TypeError)
    assert isinstance(answers[0], Event) and isinstance(answers[2], Event)
    statuses = await store.pool.fetch(
        "SELECT id, status, result FROM jobs WHERE id = ANY($1::uuid[])", ids
    )
    assert {r["id"]: (r["status"], r["result"]) for r in statuses} == {
        ids[0]: ("completed", {"ok": 1}),
        ids[1]: ("running", None),
        ids[2]: ("completed", "fine"),
    }


class DeadlockedTogether:
    """A real store whose statements of more than one end Postgres always ends for a
    deadlock (their jobs' locks, taken in one transaction, met another's in a circle)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.sizes: list[int] = []

    async def record_reports(self, reports: list[Report]) -> dict[UUID, Event]:
        return await self.store.record_reports(reports)

    async def record_ends(self, ends: list[JobEnd]) -> dict[UUID, Event]:
        self.sizes.append(len(ends))
        if len(ends) > 1:
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        return await self.store.record_ends(ends)


async def test_ends_that_deadlock_together_each_time_are_stored_each_alone(store: Store) -> None:
    """A statement of ends ended for a deadlock is tried again whole, twice; after the third
    it is not given up: each end is stored alone, where it waits on no other."""
    busy, *ids = await running_jobs(store, 4)
    failing = DeadlockedTogether(store)
    writes = ReportWrites(failing)  # type: ignore[arg-type]
    first = asyncio.create_task(writes.write(report(busy, 10)))
    await asyncio.sleep(0)
    answers = await asyncio.gather(
        *(writes.write(JobEnd(j, 1, JobStatus.COMPLETED, result=i)) for i, j in enumerate(ids))
    )
    await first
    assert failing.sizes == [3, 3, 3, 1, 1, 1]
    assert [a.data["result"] if a is not None else None for a in answers] == [0, 1, 2]
    assert (
        await store.pool.fetchval(
            "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[]) AND status = 'completed'", ids
        )
        == 3
    )


async def test_an_end_that_may_release_parked_jobs_is_its_own_statement(
    endpoints: Endpoints, new_database: DatabaseFactory
) -> None:
    """An attempt whose end may release parked jobs (it holds a concurrency key, or its
    type has a cap) ends alone, never in a statement with other jobs' ends: each release
    takes its key's lock to the commit. Any other end goes with the worker's other ends."""
    settings = worker_settings(endpoints, await new_database(), stale_after_s=3600)
    async with WorkerState.open(settings) as state:
        keyed, plain = await running_jobs(state.store, 2)
        counted = Counted(state.store)
        state.report_writes = ReportWrites(counted)  # type: ignore[arg-type]
        noop = load_registry().get("noop")
        for job_id, alone in ((keyed, True), (plain, False)):
            reporter = Reporter(
                job_id=job_id,
                owner_id=uuid.uuid4(),
                attempt=1,
                priority=0,
                job_type=noop,
                state=state,
            )
            end = JobEnd(job_id, 1, JobStatus.COMPLETED, result={"alone": alone})
            await _end(state, reporter, end, alone=alone)
        assert counted.sizes == [1]  # the plain job's end, alone in its statement of ends
        assert counted.ended == [plain]
        rows = await state.store.pool.fetch(
            "SELECT id, status, result FROM jobs WHERE id = ANY($1::uuid[])", [keyed, plain]
        )
        assert {r["id"]: (r["status"], r["result"]) for r in rows} == {
            keyed: ("completed", {"alone": True}),
            plain: ("completed", {"alone": False}),
        }


async def test_a_cancel_heard_of_a_job_running_here_has_the_heartbeat_beat_at_once(
    store: Store, endpoints: Endpoints
) -> None:
    """``beat_soon`` (the worker's cancel channel, workers/cancels.py) beats now, not at the
    interval's end (30 s here), but only for a job this worker runs; and the beat, reading
    Postgres, is what stops it."""
    job_id, other = await running_jobs(store, 2)
    redis = aioredis.Redis.from_url(endpoints.redis_url)
    heartbeat = Heartbeat(store, 30.0, redis, f"hb{uuid.uuid4().hex[:8]}")
    code = asyncio.create_task(asyncio.Event().wait())  # the job's code: it never ends
    beating = asyncio.create_task(heartbeat.run_forever())
    try:
        heartbeat.track(job_id, 1, code)  # type: ignore[arg-type]
        await store.pool.execute("UPDATE jobs SET status = 'cancelled' WHERE id = $1", job_id)
        heartbeat.beat_soon(other)  # not running here: no beat
        await asyncio.sleep(1.0)
        assert not code.done()
        heartbeat.beat_soon(job_id)
        await asyncio.wait_for(asyncio.shield(asyncio.wait([code])), 5)
        assert code.cancelled()
    finally:
        beating.cancel()
        code.cancel()
        await redis.aclose()


async def test_a_statements_events_are_published_as_it_answers_each_once(
    endpoints: Endpoints, store: Store
) -> None:
    """The writer hands each event it stored to the publisher as its statement answers,
    before the job that made it runs again. The job hands it over too, as it does every
    event it writes: that one is not sent again. An event whose job stopped before it could
    hand it over is sent all the same."""
    settings = load_settings({"JOBCAST_REDIS_PREFIX": f"rw{uuid.uuid4().hex[:8]}"})
    redis = aioredis.Redis.from_url(endpoints.redis_url)
    listener = aioredis.Redis.from_url(endpoints.redis_url)
    pubsub = listener.pubsub()
    await pubsub.psubscribe(settings.job_channel("*"))
    ids = await running_jobs(store, 3)
    publisher = Publisher(redis, settings, store)
    writes = ReportWrites(store, publisher)
    heard: list[tuple[str, int]] = []
    try:
        together = await asyncio.gather(*(writes.write(report(job_id, 30)) for job_id in ids))
        for event in together[:2]:  # the third job stopped before handing its event over
            assert event is not None
            await publisher.publish(event)
        later = await writes.write(report(ids[0], 60))
        assert later is not None
        await publisher.publish(later)
        assert await publisher.flush(5)
        deadline = time.monotonic() + 1.0  # long enough for a second copy to arrive
        while time.monotonic() < deadline:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if msg is not None:
                body = orjson.loads(msg["data"])
                heard.append((body["job_id"], body["seq"]))
    finally:
        await publisher.close()
        await pubsub.aclose()
        await listener.aclose()
        await redis.aclose()
    sent = [e for e in together if e is not None] + [later]
    assert sorted(heard) == sorted((str(e.job_id), e.seq) for e in sent), heard


async def test_a_write_whose_attempt_stops_as_it_commits_is_published_all_the_same(
    endpoints: Endpoints, new_database: DatabaseFactory
) -> None:
    """An attempt's task stopped between the commit and the publish of its last write (one
    that moves the job out of running: a step asks for input, or the job pauses, and the
    heartbeat finds the job no longer running and stops the attempt) still publishes the
    stored event, or its watchers, with no event after it, would never hear of it. (The
    change here is an end, which a step's question or a pause stand for: each is a status
    event, fenced by the attempt.)"""
    settings = worker_settings(endpoints, await new_database(), stale_after_s=3600)
    async with WorkerState.open(settings) as state:
        (job_id,) = await running_jobs(state.store, 1)
        published: list[Event] = []
        send = state.publisher.publish

        async def recorded(event: Event) -> None:
            published.append(event)
            await send(event)

        state.publisher.publish = recorded  # type: ignore[method-assign]
        reporter = Reporter(
            job_id=job_id,
            owner_id=uuid.uuid4(),
            attempt=1,
            priority=0,
            job_type=load_registry().get("noop"),
            state=state,
        )
        committed = asyncio.Event()

        async def end_then_answer() -> Event | None:
            event = await state.store.record_end(JobEnd(job_id, 1, JobStatus.COMPLETED, None))
            committed.set()
            await asyncio.sleep(0.3)  # the answer on its way back: the stop comes now
            return event

        writing = asyncio.create_task(reporter.write(end_then_answer, last=True))
        await committed.wait()
        writing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writing

        async def sent() -> list[Event]:
            return published

        await eventually(sent, timeout_s=5, what="the stored end published")
        seq = await state.store.pool.fetchval(
            "SELECT max(seq) FROM job_events WHERE job_id = $1", job_id
        )
        assert [(e.job_id, e.seq, e.kind) for e in published] == [(job_id, seq, "status")]
