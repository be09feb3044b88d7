"""Idempotent submits against a real Postgres: the job a key made, even when it vanishes.

A submit with a key that made a job before answers that job. The statement that finds it
and the read of it are two round trips: a job deleted in between (by retention, or an
admin) must make the submit store the job it was asked for, with its key, its id and
what it retries, so that the next submit with the key finds that job.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from uuid import UUID

import pytest

from jobcast.model import Job
from jobcast.registry import load_registry
from jobcast.store import Created, Store
from tests.conftest import DatabaseFactory


class DeletingStore(Store):
    """A store whose reads of one job find it deleted just before (the window under test)."""

    doomed: UUID | None = None

    async def get_job(self, job_id: UUID, owner_id: UUID | None = None) -> Job | None:
        if job_id == self.doomed:
            self.doomed = None
            await self.pool.execute("DELETE FROM jobs WHERE id = $1", job_id)
        return await super().get_job(job_id, owner_id)


@pytest.fixture
async def store(new_database: DatabaseFactory) -> AsyncIterator[DeletingStore]:
    async with DeletingStore.open(await new_database()) as opened:
        yield opened


async def submit(store: Store, owner: UUID, key: str, **fields: object) -> Created:
    created = await store.create_job(
        owner_id=owner,
        job_type=load_registry().get("noop"),
        params={},
        idempotency_key=key,
        **fields,  # type: ignore[arg-type]
    )
    assert created is not None
    return created


async def test_a_job_deleted_between_lookup_and_read_is_made_again_whole(
    store: DeletingStore,
) -> None:
    owner = await store.create_owner(uuid.uuid4().hex)
    retried = (await submit(store, owner, "first")).job.id
    first = (await submit(store, owner, "k")).job.id
    wanted = uuid.uuid4()

    store.doomed = first  # the lookup finds it, then it is gone
    made = await submit(store, owner, "k", job_id=wanted, retry_of=retried)

    assert made.event is not None, "a job was stored anew"
    assert made.job.id == wanted, "the id the caller chose is kept"
    assert made.job.retry_of == retried
    row = await store.pool.fetchrow(
        "SELECT idempotency_key, retry_of FROM jobs WHERE id = $1", wanted
    )
    assert row is not None
    assert (row["idempotency_key"], row["retry_of"]) == ("k", retried)

    again = await submit(store, owner, "k")
    assert (again.job.id, again.event) == (wanted, None), "the key finds the job it made"
    count = await store.pool.fetchval("SELECT count(*) FROM jobs WHERE owner_id = $1", owner)
    assert count == 2, "one job for each key"


async def test_a_found_job_is_answered_without_storing_another(store: DeletingStore) -> None:
    owner = await store.create_owner(uuid.uuid4().hex)
    first = await submit(store, owner, "k")
    again = await submit(store, owner, "k", job_id=uuid.uuid4())
    assert (again.job.id, again.event) == (first.job.id, None)
    assert await store.pool.fetchval("SELECT count(*) FROM jobs WHERE owner_id = $1", owner) == 1
