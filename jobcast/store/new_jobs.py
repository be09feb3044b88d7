"""New jobs: a submit's job stored with its steps and first event, one a statement
(``create_job``) or many (``create_jobs``, the submits a web process gathered)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from uuid import UUID, uuid4

import asyncpg
import orjson

from jobcast.concurrency import JobFacts, JobKey, job_keys
from jobcast.errors import Conflict, InvalidInput
from jobcast.model import Event, Job, StepState, StepView
from jobcast.registry import JobType
from jobcast.sql import QUERIES
from jobcast.store import rows
from jobcast.store.jobs import Jobs
from jobcast.store.limits import insert_keys

# how often a submit looks for the job its idempotency key made, if that job keeps vanishing
_LOOKUPS = 3

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Created:
    """A submitted job; ``event`` is None when an idempotent resubmit found it.

    ``joined``: a debounced submit joined a job that had not started yet (the event is
    that job's, saying so); else the job is new.
    """

    job: Job
    event: Event | None
    joined: bool = False


def waiting_steps(job_type: JobType) -> tuple[StepView, ...]:
    """A new job's steps, all waiting: what a submit answers without reading them back."""
    return tuple(
        StepView(s.name, s.title, s.weight, StepState.WAITING, None, None, None)
        for s in job_type.steps
    )


def _made(row: asyncpg.Record | None) -> asyncpg.Record | UUID | None:
    """The submit statement's verdict: the new job's row, the job a key made, or None."""
    if row is None:
        return None
    if row["gate_existing"] is not None:
        existing: UUID = row["gate_existing"]
        return existing
    return row if row["id"] is not None else None


@dataclass(frozen=True, kw_only=True)
class NewJob:
    """A job to submit, as ``Jobs.create_job`` takes it (its arguments are these fields)."""

    owner_id: UUID
    job_type: JobType
    params: dict[str, Any]
    priority: int = 0
    delay_s: float = 0.0
    estimated_s: float | None = None
    max_attempts: int | None = None
    timeout_s: float | None = None
    max_active: int | None = None
    upload_ids: list[UUID] | None = None
    parent_id: UUID | None = None
    idempotency_key: str | None = None
    callback_url: str | None = None
    job_id: UUID | None = None
    retry_of: UUID | None = None
    draft: bool = False
    subject: str | None = None
    tenant: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    keys: list[JobKey] | None = None
    fair_window: int = 0
    debounce: tuple[str, float] | None = None

    @property
    def gathers(self) -> bool:
        """Whether it may go in a statement of many jobs (``Jobs.create_jobs``): nothing of
        it needs a statement of its own (an idempotency key's lookup, a debounce's join, its
        uploads, its keys, an id of its own)."""
        return (
            self.idempotency_key is None
            and self.debounce is None
            and not self.upload_ids
            and self.keys == []
            and self.job_id is None
        )


@dataclass(frozen=True, slots=True)
class _Values:
    """A new job's values as the submit statements take them."""

    job_id: UUID
    keys: list[JobKey]
    max_attempts: int
    timeout_s: float
    estimated_s: float | None
    status: str
    message: str | None
    first: dict[str, Any]


def _values(new: NewJob) -> _Values:
    """What ``create_job`` and ``create_jobs`` store of a new job: unset attempts, time
    limit and estimate are its type's; its first event says how it waits."""
    job_type, delay_s = new.job_type, new.delay_s
    keys = new.keys
    if keys is None:
        facts = JobFacts(new.tenant, new.subject, tuple(new.tags or ()), new.params)
        keys = job_keys(job_type.name, job_type.keys, facts)
    estimated_s = new.estimated_s
    if estimated_s is None:
        estimated_s = job_type.estimate(job_type.input_model.model_validate(new.params))
    message = f"Scheduled to start in {delay_s:g} s" if delay_s > 0 else None
    status = "draft" if new.draft else "pending"
    if new.draft:
        message = "Draft: not started"
    if new.debounce is not None:
        message = f"Debounced: starts {delay_s:g} s after the last submit with its key"
    return _Values(
        job_id=new.job_id or uuid4(),
        keys=keys,
        max_attempts=new.max_attempts or job_type.max_attempts,
        timeout_s=new.timeout_s or job_type.timeout_s,
        estimated_s=estimated_s,
        status=status,
        message=message,
        first={"status": status, "attempt": 0, "message": message, "progress": 0},
    )


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class NewJobs(Jobs):
    """Submitting jobs; one that an idempotency key found is read back as ``Jobs`` reads it."""

    async def create_job(
        self,
        *,
        owner_id: UUID,
        job_type: JobType,
        params: dict[str, Any],
        priority: int = 0,
        delay_s: float = 0.0,
        estimated_s: float | None = None,
        max_attempts: int | None = None,
        timeout_s: float | None = None,
        max_active: int | None = None,
        upload_ids: list[UUID] | None = None,
        parent_id: UUID | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
        job_id: UUID | None = None,
        retry_of: UUID | None = None,
        draft: bool = False,
        subject: str | None = None,
        tenant: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        keys: list[JobKey] | None = None,
        fair_window: int = 0,
        within: asyncpg.pool.PoolConnectionProxy | None = None,
        debounce: tuple[str, float] | None = None,
    ) -> Created | None:
        """Insert a job and its first event; None when the owner is at ``max_active`` jobs
        (None: no cap), or when a ``job_id`` given is taken already. With ``within``, in the
        transaction open on that connection (a batch's).

        ``debounce`` (key, the longest the job may be held back from its first submit):
        ``delay_s`` is the window, and a job of the owner with this type and key that has
        not started yet takes this submit's input and a new window instead of a new job.

        Unset attempts, time limit and estimate are the type's. ``upload_ids`` are tied to
        the new job in the same transaction: each must be the owner's and not yet used by
        another job, else InvalidInput and nothing is stored. ``keys``: the job's concurrency
        keys and throttles (None: its type's, derived from the job). ``fair_window``: at most
        that many due jobs of its tenant (else its owner) on the queue, the job parked
        otherwise (its ``waiting_reason`` set: the caller does not queue it); 0: no limit.
        """
        new = NewJob(
            owner_id=owner_id,
            job_type=job_type,
            params=params,
            priority=priority,
            delay_s=delay_s,
            estimated_s=estimated_s,
            max_attempts=max_attempts,
            timeout_s=timeout_s,
            max_active=max_active,
            upload_ids=upload_ids,
            parent_id=parent_id,
            idempotency_key=idempotency_key,
            callback_url=callback_url,
            job_id=job_id,
            retry_of=retry_of,
            draft=draft,
            subject=subject,
            tenant=tenant,
            tags=tags,
            metadata=metadata,
            keys=keys,
            fair_window=fair_window,
            debounce=debounce,
        )
        return await self.create(new, within=within)

    async def create(
        self, new: NewJob, *, within: asyncpg.pool.PoolConnectionProxy | None = None
    ) -> Created | None:
        """``create_job`` of a NewJob."""
        v = _values(new)
        job_id, keys, owner_id, job_type = v.job_id, v.keys, new.owner_id, new.job_type
        upload_ids, idempotency_key = new.upload_ids, new.idempotency_key
        args = (
            job_id,
            owner_id,
            job_type.name,
            new.params,
            new.priority,
            v.max_attempts,
            new.delay_s,
            v.estimated_s,
            [s.name for s in job_type.steps],
            [s.title for s in job_type.steps],
            [s.weight for s in job_type.steps],
            v.first,
            v.timeout_s,
            new.parent_id,
            idempotency_key,
            new.callback_url,
            v.message,
            new.retry_of,
            new.max_active,
            v.status,
            new.subject,
            new.tenant,
            new.tags,
            new.metadata,
            new.fair_window,
        )

        debounce = new.debounce
        if debounce is not None:
            row = await self._insert(
                # the debounce statement takes no fairness window: its job is held back anyway
                lambda: self.pool.fetchrow(QUERIES["debounce_job"], *args[:-1], *debounce)
            )
            if not isinstance(row, asyncpg.Record):
                return None
            if keys and row["debounce_new"]:
                await self._run(lambda: insert_keys(self.pool, job_id, keys))
            return Created(
                job=replace(rows.job(row), steps=waiting_steps(job_type)),
                event=rows.event_of_change(row),
                joined=not row["debounce_new"],
            )

        async def insert() -> asyncpg.Record | UUID | None:
            if not upload_ids:
                on = within if within is not None else self.pool
                row: asyncpg.Record | None = await on.fetchrow(QUERIES["create_job"], *args)
                return _made(row)
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(QUERIES["create_job"], *args)
                made = _made(row)
                if isinstance(made, asyncpg.Record):
                    claimed = await conn.fetch(
                        QUERIES["claim_uploads"], upload_ids, owner_id, job_id
                    )
                    missing = set(upload_ids) - {r["id"] for r in claimed}
                    if missing:
                        raise InvalidInput(
                            f"input: no upload {sorted(map(str, missing))[0]} for this owner "
                            "(or it is already used by another job)",
                            details=[{"field": "input", "message": "unknown upload"}],
                        )
                return made

        for _ in range(_LOOKUPS):
            made = await self._insert(insert)
            if not isinstance(made, UUID):
                break
            job = await self.get_job(made, owner_id)
            if job is not None:
                return Created(job=job, event=None)
            # The job the key made was deleted after the statement found it: submit again,
            # the same job (its id, key and what it retries), which the key then finds.
        else:
            raise Conflict(
                f"idempotency_key {idempotency_key!r}: its job was deleted while being read, "
                f"{_LOOKUPS} times; submit again"
            )
        if made is None:
            return None
        if keys:  # stored before the job is queued: its first claim reads them
            on = within if within is not None else self.pool
            await self._run(lambda: insert_keys(on, job_id, keys))
        # the new job's steps are all waiting: no need to read them back
        job = replace(rows.job(made), steps=waiting_steps(job_type))
        return Created(job=job, event=rows.event_of_change(made))

    async def create_jobs(self, news: Sequence[NewJob]) -> list[Created | None]:
        """Many jobs, each as ``create`` makes it, in one statement: for each in order, its
        Created, or None when its owner is at its ``max_active``. Only jobs that
        ``NewJob.gathers`` come this way; each one's ``fair_window`` must be the same."""
        values = [_values(new) for new in news]
        steps = [
            (v.job_id, s, n)
            for new, v in zip(news, values, strict=True)
            for n, s in enumerate(new.job_type.steps, start=1)
        ]
        args = (
            [v.job_id for v in values],
            [new.owner_id for new in news],
            [new.job_type.name for new in news],
            [_json(new.params) for new in news],
            [new.priority for new in news],
            [v.max_attempts for v in values],
            [new.delay_s for new in news],
            [v.estimated_s for v in values],
            [v.timeout_s for v in values],
            [new.parent_id for new in news],
            [new.callback_url for new in news],
            [v.message for v in values],
            [new.retry_of for new in news],
            [new.max_active for new in news],
            [v.status for v in values],
            [new.subject for new in news],
            [new.tenant for new in news],
            [_json(new.tags) for new in news],
            [_json(new.metadata) for new in news],
            max((new.fair_window for new in news), default=0),
            [job_id for job_id, _, _ in steps],
            [s.name for _, s, _ in steps],
            [s.title for _, s, _ in steps],
            [s.weight for _, s, _ in steps],
            [n for _, _, n in steps],
        )
        answer = await self._insert(lambda: self.pool.fetch(QUERIES["create_jobs"], *args))
        made = {row["given_id"]: row for row in answer if row["id"] is not None}
        created: list[Created | None] = []
        for new, v in zip(news, values, strict=True):
            row = made.get(v.job_id)
            if row is None:
                created.append(None)
                continue
            job = replace(rows.job(row), steps=waiting_steps(new.job_type))
            created.append(Created(job=job, event=rows.event_of_change(row)))
        return created

    async def _insert(self, insert: Callable[[], Awaitable[T]]) -> T:
        try:
            return await self._run(insert)
        except (asyncpg.UntranslatableCharacterError, asyncpg.CharacterNotInRepertoireError) as exc:
            # a \u0000 in a string, which Postgres cannot store in jsonb
            raise InvalidInput(f"input: a value cannot be stored: {exc}") from None
