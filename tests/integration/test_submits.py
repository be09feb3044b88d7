"""A web process's submits, many jobs to a statement when they come together, against a
real Postgres (server/submits.py, the statement ``create_jobs``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import pytest

from jobcast.errors import InvalidInput, StorageUnavailable
from jobcast.registry import load_registry
from jobcast.store import Created, NewJob, Store
from server.submits import Submits
from tests.support import called_together

FIRST = {"status": "pending", "attempt": 0, "message": None, "progress": 0}


class Counted:
    """A real store whose submits are counted: the size of each statement of many, and
    the jobs made each by its own statement."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.together: list[int] = []
        self.alone: list[NewJob] = []
        self.held = asyncio.Event()  # cleared: a job that could be gathered waits for it
        self.held.set()

    async def create_jobs(self, news: Sequence[NewJob]) -> list[Created | None]:
        self.together.append(len(news))
        made = await self.store.create_jobs(news)
        await self.held.wait()  # committed: its answer waits
        return made

    async def create(self, new: NewJob) -> Created | None:
        self.alone.append(new)
        if new.gathers:
            await self.held.wait()
        return await self.store.create(new)


async def gathering(store: Store) -> tuple[UUID, Counted, Submits]:
    """A new owner, and a process's submits on a counted store."""
    owner = await store.create_owner(uuid.uuid4().hex)
    counted = Counted(store)
    return owner, counted, Submits(counted)  # type: ignore[arg-type]


def new_job(owner: UUID, job_type: str = "demo", **fields: Any) -> NewJob:
    fields.setdefault("keys", [])
    return NewJob(owner_id=owner, job_type=load_registry().get(job_type), params={}, **fields)


async def test_submits_made_while_one_runs_go_together_each_as_its_own_would_be_made(
    store: Store,
) -> None:
    owner, counted, submits = await gathering(store)
    tags = [["a", "b"], [], ["c"], ["x"], ["y", "z"]]
    rest = [
        new_job(owner, tags=t, subject=f"s{i}", metadata={"i": i}, priority=i - 2)
        for i, t in enumerate(tags)
    ]
    alone, together = await called_together(submits.create, new_job(owner), rest)
    assert counted.together == [5] and len(counted.alone) == 1
    demo_steps = [s.name for s in load_registry().get("demo").steps]
    for i, (new, made) in enumerate(zip(rest, together, strict=True)):
        assert isinstance(made, Created) and made.event is not None
        assert (made.event.kind, made.event.seq, made.event.data) == ("status", 1, FIRST)
        stored = await store.get_job(made.job.id, owner)
        assert stored is not None and stored.status == "pending" and stored.seq == 1
        assert (stored.subject, stored.tags, stored.metadata) == (
            f"s{i}",
            tuple(new.tags or ()),
            {"i": i},
        )
        assert stored.priority == i - 2 and stored.type == "demo"
        assert [s.name for s in stored.steps] == demo_steps == [s.name for s in made.job.steps]
        assert all(s.status == "waiting" for s in stored.steps)
        assert made.job.estimated_s == stored.estimated_s == alone.job.estimated_s
    events = await store.pool.fetch(
        "SELECT job_id, seq, kind, payload FROM job_events WHERE job_id = ANY($1::uuid[])",
        [alone.job.id] + [m.job.id for m in together],
    )
    assert (
        sorted((e["seq"], e["kind"], e["payload"] == FIRST) for e in events)
        == [(1, "status", True)] * 6
    )


async def test_an_owners_cap_holds_over_the_statement_its_jobs_made_in_their_order(
    store: Store,
) -> None:
    owner, counted, submits = await gathering(store)
    assert await store.create(new_job(owner)) is not None  # one active already
    rest = [new_job(owner, max_active=4, subject=str(i)) for i in range(6)]
    alone, together = await called_together(submits.create, new_job(owner, max_active=4), rest)
    assert alone is not None and counted.together == [6]
    assert [m.job.subject if m else None for m in together] == ["0", "1"] + [None] * 4
    count = "SELECT count(*) FROM jobs WHERE owner_id = $1 AND status = 'pending'"
    assert await store.pool.fetchval(count, owner) == 4
    # the owner's other jobs are not held back: a cap of its own for each
    more = await called_together(submits.create, new_job(owner, max_active=6), [new_job(owner)] * 2)
    assert more[0] is not None and all(isinstance(m, Created) for m in more[1])


async def test_an_owners_cap_holds_exactly_over_two_processes_submitting_at_once(
    store: Store,
) -> None:
    """Two web processes' statements of many, and one-job submits far from the cap (which
    take the owner's lock shared), all at once: exactly the cap's worth of jobs is made."""
    owner = await store.create_owner(uuid.uuid4().hex)
    cap = 300  # far enough for a one-job submit to take the lock shared (max_connections 100)
    processes = [Submits(store), Submits(store)]
    made = await asyncio.gather(
        *(processes[i % 2].create(new_job(owner, max_active=cap)) for i in range(400))
    )
    assert sum(m is not None for m in made) == cap
    count = "SELECT count(*) FROM jobs WHERE owner_id = $1 AND status = 'pending'"
    assert await store.pool.fetchval(count, owner) == cap


async def test_a_groups_due_jobs_past_its_window_are_parked_in_their_order(store: Store) -> None:
    owner, counted, submits = await gathering(store)
    rest = [
        new_job(owner, fair_window=3, subject="a"),
        new_job(owner, fair_window=3, subject="later", delay_s=60),
        new_job(owner, fair_window=3, subject="b"),
        new_job(owner, fair_window=3, subject="tenant's", tenant="t"),
        new_job(owner, fair_window=3, subject="c"),
        new_job(owner, fair_window=3, subject="d"),
    ]
    alone, together = await called_together(submits.create, new_job(owner, fair_window=3), rest)
    assert alone.job.waiting_reason is None and counted.together == [6]
    waits = {m.job.subject: m.job.waiting_reason for m in together}
    assert [s for s, reason in waits.items() if reason is not None] == ["c", "d"]
    assert waits["c"] == "Waiting its turn: 3 jobs of this owner go to the workers at a time"
    parked = await store.pool.fetch(
        "SELECT subject, parked_on, fair_key FROM jobs WHERE owner_id = $1 ORDER BY subject",
        owner,
    )
    by_subject = {r["subject"]: (r["parked_on"], r["fair_key"]) for r in parked}
    group = f"fair:owner:{owner}"
    assert by_subject["c"] == by_subject["d"] == (group, group)
    assert by_subject["a"] == by_subject["b"] == by_subject["later"] == (None, group)
    assert by_subject["tenant's"] == (None, "fair:tenant:t")


async def test_a_job_that_cannot_be_stored_fails_alone_and_the_others_are_made(
    store: Store,
) -> None:
    owner, counted, submits = await gathering(store)
    bad = new_job(owner, metadata={"note": "nul \u0000 here"})
    rest = [new_job(owner), bad, new_job(owner)]
    _, together = await called_together(submits.create, new_job(owner), rest)
    assert counted.together == [3] and len(counted.alone) == 4  # then each alone
    assert isinstance(together[1], InvalidInput)
    assert isinstance(together[0], Created) and isinstance(together[2], Created)
    count = "SELECT count(*) FROM jobs WHERE owner_id = $1"
    assert await store.pool.fetchval(count, owner) == 3


async def test_a_job_that_needs_a_statement_of_its_own_does_not_wait(store: Store) -> None:
    """An idempotency key's job goes at once, though a statement of submits runs."""
    owner, counted, submits = await gathering(store)
    keyed = new_job(owner, idempotency_key="k1")
    assert not keyed.gathers and new_job(owner).gathers
    assert not new_job(owner, keys=None).gathers  # its keys are yet to be derived
    counted.held.clear()
    alone = asyncio.create_task(submits.create(new_job(owner)))
    await asyncio.sleep(0)
    made = await submits.create(keyed)
    assert isinstance(made, Created) and not alone.done()
    counted.held.set()
    assert isinstance(await alone, Created)
    assert counted.together == [] and len(counted.alone) == 2


async def test_a_submit_whose_request_went_away_before_its_statement_is_left_out(
    store: Store,
) -> None:
    owner, counted, submits = await gathering(store)
    alone = asyncio.create_task(submits.create(new_job(owner)))
    await asyncio.sleep(0)
    gone = asyncio.create_task(submits.create(new_job(owner, subject="gone")))
    kept = [asyncio.create_task(submits.create(new_job(owner))) for _ in range(2)]
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.gather(alone, *kept)
    assert counted.together == [2]
    subjects = await store.pool.fetch("SELECT subject FROM jobs WHERE owner_id = $1", owner)
    assert [r["subject"] for r in subjects] == [None] * 3


async def test_a_submit_whose_request_went_away_while_its_statement_ran_leaves_its_job(
    store: Store,
) -> None:
    """Its job is committed, pending, for the sweep to queue, as any job whose queueing
    did not happen; the others of the statement get theirs."""
    owner, counted, submits = await gathering(store)
    alone = asyncio.create_task(submits.create(new_job(owner)))
    await asyncio.sleep(0)
    counted.held.clear()
    gone = asyncio.create_task(submits.create(new_job(owner, subject="gone")))
    kept = asyncio.create_task(submits.create(new_job(owner, subject="kept")))
    await alone
    for _ in range(100):  # the statement of the two has been answered, held
        if counted.together:
            break
        await asyncio.sleep(0.01)
    gone.cancel()
    counted.held.set()
    made = await kept
    assert counted.together == [2] and isinstance(made, Created)
    assert gone.cancelled()
    row = await store.pool.fetchrow(
        "SELECT status, seq FROM jobs WHERE owner_id = $1 AND subject = 'gone'", owner
    )
    assert row is not None and tuple(row) == ("pending", 1)


async def test_with_postgres_away_every_submit_of_the_statement_fails_as_its_own_would() -> None:
    async with Store.open("postgresql://postgres@127.0.0.1:9/none") as away:
        submits = Submits(away)
        owner = uuid.uuid4()
        alone = asyncio.create_task(submits.create(new_job(owner)))
        await asyncio.sleep(0)
        rest = [new_job(owner) for _ in range(2)]
        together = await asyncio.gather(*(submits.create(n) for n in rest), return_exceptions=True)
        with pytest.raises(StorageUnavailable):
            await alone
        assert [type(o) for o in together] == [StorageUnavailable] * 2


async def test_under_a_stream_a_submit_waits_for_company_and_goes_with_it(store: Store) -> None:
    """Once submits have waited for a statement, a submit that finds none in flight waits
    for others and goes with them; a job that needs a statement of its own never waits."""
    owner = await store.create_owner(uuid.uuid4().hex)
    counted = Counted(store)
    submits = Submits(counted, wait_s=0.05)  # type: ignore[arg-type]
    await called_together(submits.create, new_job(owner), [new_job(owner), new_job(owner)])
    assert counted.together == [2] and len(counted.alone) == 1  # a stream
    waiting = asyncio.create_task(submits.create(new_job(owner, subject="first")))
    await asyncio.sleep(0)
    keyed = await submits.create(new_job(owner, idempotency_key="k"))  # at once, alone
    assert isinstance(keyed, Created) and not waiting.done() and len(counted.alone) == 2
    made = await asyncio.gather(waiting, *(submits.create(new_job(owner)) for _ in range(2)))
    assert counted.together == [2, 3] and len(counted.alone) == 2
    assert all(isinstance(m, Created) for m in made)
    subjects = await store.pool.fetch(
        "SELECT subject FROM jobs WHERE owner_id = $1 AND subject IS NOT NULL", owner
    )
    assert [r["subject"] for r in subjects] == ["first"]
