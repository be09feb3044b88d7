"""A worker's claims, many jobs to a statement when they start together, against a real
Postgres (workers/claims.py, the statement ``claims``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from jobcast.concurrency import JobKey
from jobcast.endpoints import Endpoints
from jobcast.errors import StorageUnavailable
from jobcast.model import Claim
from jobcast.registry import load_registry
from jobcast.settings import Settings
from jobcast.store import Held, Store
from tests.in_process import worker_settings
from tests.support import called_together, eventually
from workers.claims import Claims
from workers.state import WorkerState

WORKER = "host:1"


class Counted:
    """A real store whose claims are counted: the size of each statement of many, and
    the jobs claimed each by its own statement."""

    def __init__(self, store: Store, deadlocked: bool = False) -> None:
        self.store = store
        self.deadlocked = deadlocked  # every statement of many ends for a deadlock
        self.together: list[int] = []
        self.alone: list[UUID] = []
        self.held = asyncio.Event()  # cleared: a statement of many waits until it is set
        self.held.set()
        self.hand_back = store.hand_back

    async def claim_many(
        self, job_ids: Sequence[UUID], caps: dict[str, int] | None = None, *, worker: str
    ) -> dict[UUID, Claim | None]:
        self.together.append(len(job_ids))
        await self.held.wait()
        if self.deadlocked:
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        return await self.store.claim_many(job_ids, caps, worker=worker)

    async def claim(
        self, job_id: UUID, caps: dict[str, int] | None = None, *, worker: str
    ) -> Claim | Held | None:
        self.alone.append(job_id)
        return await self.store.claim(job_id, caps, worker=worker)


async def pending(
    store: Store,
    count: int,
    *,
    owner: UUID | None = None,
    job_type: str = "noop",
    keys: list[JobKey] | None = None,
    fair_window: int = 0,
    job_id: UUID | None = None,
) -> list[UUID]:
    owner = owner or await store.create_owner(uuid.uuid4().hex)
    ids = []
    for _ in range(count):
        created = await store.create_job(
            owner_id=owner,
            job_type=load_registry().get(job_type),
            params={},
            keys=keys,
            fair_window=fair_window,
            job_id=job_id,
        )
        assert created is not None
        ids.append(created.job.id)
    return ids


async def test_claims_made_while_one_runs_go_together_each_with_its_attempt_and_event(
    store: Store,
) -> None:
    first, *rest = await pending(store, 6)
    counted = Counted(store)
    claims = Claims(counted, dict, WORKER)  # type: ignore[arg-type]
    alone, together = await called_together(claims.claim, first, rest)
    assert counted.together == [5] and counted.alone == [first]
    for job_id, claim in zip([first, *rest], [alone, *together], strict=True):
        assert isinstance(claim, Claim) and claim.job.id == job_id
        assert claim.attempt == 1 and claim.job.status == "running"
        assert (claim.event.kind, claim.event.seq) == ("status", 2)  # made (1), running (2)
        assert claim.event.data["status"] == "running" and not claim.may_release
    rows = await store.pool.fetch(
        "SELECT j.status, j.seq, j.attempts, c.worker,"
        "       (SELECT array_agg(seq ORDER BY seq) FROM job_events e WHERE e.job_id = j.id)"
        "       AS seqs"
        " FROM jobs j JOIN job_claims c ON c.job_id = j.id WHERE j.id = ANY($1::uuid[])",
        rest,
    )
    assert sorted(tuple(r) for r in rows) == [("running", 2, 1, WORKER, [1, 2])] * 5


async def test_a_job_that_needs_its_keys_locks_is_claimed_by_its_own_statement(
    store: Store,
) -> None:
    """A job with a concurrency key, or of a capped type, is left out of the statement of
    many and claimed by the one-job claim, whose gate keeps the key's limit."""
    key = [JobKey("concurrency", f"k:{uuid.uuid4().hex[:8]}", 1)]
    first, plain = await pending(store, 2)
    keyed = await pending(store, 2, keys=key)
    [capped] = await pending(store, 1, job_type="demo")
    counted = Counted(store)
    claims = Claims(counted, lambda: {"demo": 5}, WORKER)  # type: ignore[arg-type]
    alone, together = await called_together(claims.claim, first, [plain, *keyed, capped])
    assert counted.together == [4]
    assert sorted(map(str, counted.alone)) == sorted(map(str, [first, *keyed, capped]))
    assert isinstance(alone, Claim) and isinstance(together[0], Claim)
    # the key's limit of one holds: the second job of the key is parked
    assert sorted(type(c).__name__ for c in together[1:3]) == ["Claim", "Held"]
    assert isinstance(together[3], Claim) and together[3].may_release  # its type is capped


async def test_a_job_not_pending_or_of_a_paused_type_gets_none(store: Store) -> None:
    first, cancelled, queued = await pending(store, 3)
    [paused] = await pending(store, 1, job_type="demo")
    owner = await store.pool.fetchval("SELECT owner_id FROM jobs WHERE id = $1", cancelled)
    assert await store.cancel(cancelled, owner)
    await store.pause_type("demo", "test")
    counted = Counted(store)
    claims = Claims(counted, dict, WORKER)  # type: ignore[arg-type]
    _, together = await called_together(claims.claim, first, [cancelled, queued, paused])
    assert together[0] is None and together[2] is None and isinstance(together[1], Claim)
    assert counted.together == [3] and counted.alone == [first]
    statuses = await store.pool.fetch(
        "SELECT status FROM jobs WHERE id = ANY($1::uuid[]) ORDER BY status",
        [cancelled, paused],
    )
    assert [r["status"] for r in statuses] == ["cancelled", "pending"]


async def test_each_claim_of_a_group_releases_its_own_parked_job(store: Store) -> None:
    owner = await store.create_owner(uuid.uuid4().hex)
    queued = await pending(store, 3, owner=owner, fair_window=3)
    parked = await pending(store, 3, owner=owner, fair_window=3)
    assert (
        await store.pool.fetchval(
            "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[]) AND parked_on IS NOT NULL", parked
        )
        == 3
    )
    [other] = await pending(store, 1)
    counted = Counted(store)
    claims = Claims(counted, dict, WORKER)  # type: ignore[arg-type]
    _, together = await called_together(claims.claim, other, queued)
    assert counted.together == [3]
    released = [c.released for c in together if isinstance(c, Claim)]
    assert len(released) == 3 and all(r is not None for r in released)
    assert sorted(str(r.job_id) for r in released if r is not None) == sorted(map(str, parked))
    assert (
        await store.pool.fetchval(
            "SELECT count(*) FROM jobs WHERE id = ANY($1::uuid[]) AND parked_on IS NULL", parked
        )
        == 3
    )


@pytest.mark.parametrize("parked_first", [False, True], ids=["releaser first", "parked first"])
async def test_a_job_released_by_another_of_the_statement_is_claimed_by_its_own(
    store: Store, parked_first: bool
) -> None:
    """A parked job delivered anyway (a stale entry on arq's queue), that another job of
    the statement releases, is not claimed by that statement but alone, just after,
    whether it stands before that job in the order of ids or after it (never answered
    None while it stands released)."""
    ids = (uuid.UUID(int=1), uuid.UUID(int=2))
    parked_id, queued_id = ids if parked_first else ids[::-1]
    owner = await store.create_owner(uuid.uuid4().hex)
    [queued] = await pending(store, 1, owner=owner, fair_window=1, job_id=queued_id)
    [parked] = await pending(store, 1, owner=owner, fair_window=1, job_id=parked_id)
    [first] = await pending(store, 1)
    counted = Counted(store)
    claims = Claims(counted, dict, WORKER)  # type: ignore[arg-type]
    _, together = await called_together(claims.claim, first, [parked, queued])
    assert counted.together == [2] and counted.alone == [first, parked]
    assert isinstance(together[0], Claim) and together[0].job.id == parked
    assert isinstance(together[1], Claim) and together[1].released is not None
    assert together[1].released.job_id == parked


async def test_a_groups_claims_release_its_parked_jobs_highest_priority_then_oldest(
    store: Store,
) -> None:
    owner = await store.create_owner(uuid.uuid4().hex)
    queued = await pending(store, 2, owner=owner, fair_window=2)
    parked = []
    for priority in (0, 5, 0, 5):
        created = await store.create_job(
            owner_id=owner,
            job_type=load_registry().get("noop"),
            params={},
            priority=priority,
            fair_window=2,
        )
        assert created is not None
        parked.append(created.job.id)
    [first] = await pending(store, 1)
    claims = Claims(Counted(store), dict, WORKER)  # type: ignore[arg-type]
    _, together = await called_together(claims.claim, first, queued)
    released = {c.released.job_id for c in together if isinstance(c, Claim) and c.released}
    assert released == {parked[1], parked[3]}
    still = await store.pool.fetch(
        "SELECT id FROM jobs WHERE id = ANY($1::uuid[]) AND parked_on IS NOT NULL", parked
    )
    assert {r["id"] for r in still} == {parked[0], parked[2]}


async def test_claims_that_deadlock_each_time_are_made_each_alone(store: Store) -> None:
    first, *rest = await pending(store, 4)
    counted = Counted(store, deadlocked=True)
    claims = Claims(counted, dict, WORKER)  # type: ignore[arg-type]
    _, together = await called_together(claims.claim, first, rest)
    assert counted.together == [3, 3, 3] and counted.alone == [first, *rest]
    assert all(isinstance(c, Claim) and c.attempt == 1 for c in together)


async def test_with_postgres_away_every_claim_of_the_statement_fails_as_its_own_would() -> None:
    async with Store.open("postgresql://postgres@127.0.0.1:9/none") as away:
        claims = Claims(away, dict, WORKER)
        first, *rest = [uuid.uuid4() for _ in range(3)]
        alone = asyncio.create_task(claims.claim(first))
        await asyncio.sleep(0)
        together = await asyncio.gather(*(claims.claim(j) for j in rest), return_exceptions=True)
        with pytest.raises(StorageUnavailable):
            await alone
        assert [type(o) for o in together] == [StorageUnavailable] * 2


async def test_a_job_delivered_twice_at_once_is_claimed_once(store: Store) -> None:
    first, twice = await pending(store, 2)
    counted = Counted(store)
    claims = Claims(counted, dict, WORKER)  # type: ignore[arg-type]
    alone = asyncio.create_task(claims.claim(first))
    await asyncio.sleep(0)
    one, two = await asyncio.gather(claims.claim(twice), claims.claim(twice))
    await alone
    assert isinstance(one, Claim) and two is None
    assert await store.pool.fetchval("SELECT attempts FROM jobs WHERE id = $1", twice) == 1


async def test_a_job_claimed_together_after_its_start_was_cancelled_is_handed_back(
    store: Store,
) -> None:
    """The worker's stop cancels a job's start while its statement of many claims runs:
    the job the statement claimed anyway is pending again, its attempt not counted."""
    first, kept, stopped = await pending(store, 3)
    counted = Counted(store)
    counted.held.clear()
    claims = Claims(counted, dict, WORKER)  # type: ignore[arg-type]
    alone = asyncio.create_task(claims.claim(first))
    await asyncio.sleep(0)
    keeping = asyncio.create_task(claims.claim(kept))
    stopping = asyncio.create_task(claims.claim(stopped))
    await alone
    await asyncio.sleep(0.05)  # the statement of the two is on its way, and waits
    assert counted.together == [2]
    stopping.cancel()
    counted.held.set()
    assert isinstance(await keeping, Claim)
    with pytest.raises(asyncio.CancelledError):
        await stopping

    async def handed_back() -> asyncpg.Record | None:
        row = await store.pool.fetchrow(
            "SELECT status, attempts, message FROM jobs WHERE id = $1 AND status = 'pending'",
            stopped,
        )
        return row

    row = await eventually(handed_back, timeout_s=5, what="the cancelled start handed back")
    assert row["attempts"] == 0 and "worker stopped" in row["message"]
    assert await store.pool.fetchval("SELECT attempts FROM jobs WHERE id = $1", kept) == 1
    events = await store.pool.fetch(
        "SELECT seq, payload->>'status' AS status FROM job_events WHERE job_id = $1 ORDER BY seq",
        stopped,
    )
    assert [(e["seq"], e["status"]) for e in events] == [
        (1, "pending"),
        (2, "running"),
        (3, "pending"),
    ]


async def test_a_job_claimed_together_starts_from_its_checkpoints_as_one_claimed_alone(
    store: Store,
) -> None:
    """Each job's steps as the attempt starts: a completed one with its result, the one
    its last attempt left running reset to start again, as the one-job claim has it."""
    first, together = await pending(store, 2, job_type="demo")
    [other] = await pending(store, 1)
    for job_id in (first, together):
        await store.pool.execute(
            "UPDATE job_steps SET status = CASE position WHEN 1 THEN 'completed'"
            " ELSE 'running' END, result = CASE position WHEN 1 THEN '{\"rows\": 3}'::jsonb END"
            " WHERE job_id = $1 AND position <= 2",
            job_id,
        )
    counted = Counted(store)
    claims = Claims(counted, dict, WORKER)  # type: ignore[arg-type]
    alone, [claimed, _] = await called_together(claims.claim, first, [together, other])
    assert counted.together == [2] and counted.alone == [first]
    assert isinstance(alone, Claim) and isinstance(claimed, Claim)
    assert claimed.checkpoints == alone.checkpoints
    assert [(c.name, c.completed, c.result) for c in claimed.checkpoints[:3]] == [
        ("validate", True, {"rows": 3}),
        ("fetch", False, None),
        ("analyze", False, None),
    ]
    states = await store.pool.fetch(
        "SELECT status FROM job_steps WHERE job_id = $1 ORDER BY position", together
    )
    assert [r["status"] for r in states] == ["completed", "waiting", "waiting", "waiting"]


async def claim_started(claims: Claims, job_id: UUID) -> asyncio.Task[Any]:
    """A claim of job_id on its way: its task, run until it first waits."""
    task = asyncio.create_task(claims.claim(job_id))
    await asyncio.sleep(0)
    return task


async def test_under_a_stream_a_claim_waits_for_company_and_a_quiet_worker_never_waits(
    store: Store,
) -> None:
    """A claim that finds none in flight goes at once on a quiet worker; once claims have
    waited for a statement (a stream), it waits ``wait_s`` for others and goes with those
    that come, one statement; when none comes, it goes alone and the next goes at once."""
    a, b, c, d, e, f, g, h = await pending(store, 8)
    counted = Counted(store)
    claims = Claims(counted, dict, WORKER, wait_s=0.05)  # type: ignore[arg-type]
    first = await claim_started(claims, a)
    assert counted.alone == [a]  # quiet: on its way at once
    together = await asyncio.gather(first, claims.claim(b), claims.claim(c))
    assert counted.together == [2]  # b and c waited for a's statement: a stream
    waiting = await claim_started(claims, d)
    assert counted.alone == [a] and counted.together == [2]  # d waits for company
    company = await asyncio.gather(waiting, claims.claim(e), claims.claim(f))
    assert counted.together == [2, 3] and counted.alone == [a]  # d, e and f: one statement
    last = await claim_started(claims, g)
    assert counted.alone == [a]  # g waits too, but none comes
    claimed = [*together, *company, await last]
    assert counted.alone == [a, g] and counted.together == [2, 3]
    quiet = await claim_started(claims, h)
    assert counted.alone == [a, g, h]  # the stream ended with g: h goes at once
    claimed.append(await quiet)
    assert [x.job.id if isinstance(x, Claim) else x for x in claimed] == [a, b, c, d, e, f, g, h]
    statuses = await store.pool.fetch(
        "SELECT DISTINCT status FROM jobs WHERE id = ANY($1::uuid[])", [a, b, c, d, e, f, g, h]
    )
    assert [r["status"] for r in statuses] == ["running"]


async def test_a_claim_cancelled_while_it_waits_for_company_lets_the_others_go(
    store: Store,
) -> None:
    a, b, c, d, e, f = await pending(store, 6)
    counted = Counted(store)
    claims = Claims(counted, dict, WORKER, wait_s=0.05)  # type: ignore[arg-type]
    await called_together(claims.claim, a, [b, c])  # a stream
    waiting = await claim_started(claims, d)
    others = asyncio.gather(claims.claim(e), claims.claim(f))
    await asyncio.sleep(0)  # e and f wait to go with d
    waiting.cancel()
    claimed = await asyncio.wait_for(others, 5)
    assert [x.job.id if isinstance(x, Claim) else x for x in claimed] == [e, f]
    assert counted.together == [2, 2] and counted.alone == [a]
    assert waiting.cancelled()
    status = await store.pool.fetchval("SELECT status FROM jobs WHERE id = $1", d)
    assert status == "pending"  # never claimed: arq still has it, another start claims it


async def test_a_worker_waits_for_company_as_its_settings_say(
    endpoints: Endpoints, database: str
) -> None:
    settings = worker_settings(endpoints, database, gather_wait_ms=7)
    async with WorkerState.open(settings) as state:
        assert state.claims.wait_s == pytest.approx(0.007)
    assert Settings.model_fields["gather_wait_ms"].default > 0  # shipped on
