"""The job store: every Postgres verb of jobcast, over asyncpg pools.

It runs the statements of ``jobcast/sql.py`` (each state change one statement,
each event persisted with its change) and answers with the frozen dataclasses of
``jobcast/model.py``; driver errors that mean "Postgres is not there" become
``StorageUnavailable``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID, uuid4

import asyncpg
import orjson

from jobcast import metrics
from jobcast.errors import InvalidInput, StorageUnavailable
from jobcast.model import Claim, Event, EventKind, Job, JobStatus, StepState, StepView
from jobcast.registry import JobType
from jobcast.settings import SCHEMA_PATH
from jobcast.sql import (
    SQL_ACTIVE_BY_TYPE,
    SQL_ADMIN_JOBS,
    SQL_CANCEL,
    SQL_CLAIM,
    SQL_CLAIM_UPLOADS,
    SQL_COUNTS,
    SQL_CREATE_JOB,
    SQL_DUE_DELIVERIES,
    SQL_EVENTS_AFTER,
    SQL_EXPIRE_RESULTS,
    SQL_FINISH,
    SQL_GET_JOB,
    SQL_HAND_BACK,
    SQL_HEARTBEAT,
    SQL_JOB_SEQ,
    SQL_LIST_JOBS,
    SQL_NEXT_DELIVERY,
    SQL_NOTE_WAITING,
    SQL_NOTIFY_EVENT,
    SQL_OLDEST_PENDING,
    SQL_PENDING,
    SQL_PROGRESS,
    SQL_RECORD_DELIVERY,
    SQL_RETENTION,
    SQL_RETRY_LATER,
    SQL_STALE,
    SQL_STEP,
    SQL_STEP_HISTORY,
    SQL_STUCK,
    SQL_TAKE_LEASE,
    SQL_TREE,
    SQL_TYPE_STATS,
)

log = logging.getLogger(__name__)

_OWNER_CACHE_SIZE = 100_000
T = TypeVar("T")

# Errors that mean "Postgres is not there right now", as opposed to a bug in a query.
_UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    TimeoutError,
)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def _keep_as_is(conn: asyncpg.Connection) -> None:
    """Pooled connections hold no session state (no LISTEN, SET or session lock), so the
    full reset asyncpg runs on every release (a round trip per query) is skipped; only a
    transaction left open, which the client knows of without asking, is rolled back."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def _init_connection(conn: asyncpg.Connection) -> None:
    for json_type in ("json", "jsonb"):
        await conn.set_type_codec(
            json_type,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


def _steps(raw: Any) -> tuple[StepView, ...]:
    return tuple(
        StepView(
            name=s["name"],
            title=s["title"],
            weight=s["weight"],
            status=StepState(s["status"]),
            started_at=_ts(s["started_at"]),
            finished_at=_ts(s["finished_at"]),
            duration_ms=s["duration_ms"],
        )
        for s in raw or ()
    )


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _job(row: asyncpg.Record) -> Job:
    return Job(
        id=row["id"],
        owner_id=row["owner_id"],
        type=row["type"],
        input=row["input"],
        status=JobStatus(row["status"]),
        priority=row["priority"],
        progress=row["progress"],
        step=row["step"],
        message=row["message"],
        result=row["result"],
        error=row["error"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        seq=row["seq"],
        estimated_s=row["estimated_s"],
        timeout_s=row["timeout_s"],
        parent_id=row["parent_id"],
        callback_url=row["callback_url"],
        result_expired_at=row["result_expired_at"],
        retry_of=row["retry_of"],
        run_at=row["run_at"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        steps=_steps(row["steps"]) if "steps" in row.keys() else (),
        children=tuple(row["children"]) if "children" in row.keys() else None,
        deliveries=tuple(row["deliveries"]) if "deliveries" in row.keys() else None,
    )


def _made(row: asyncpg.Record | None) -> asyncpg.Record | UUID | None:
    """The submit statement's verdict: the new job's row, the job a key made, or None."""
    if row is None:
        return None
    if row["gate_existing"] is not None:
        existing: UUID = row["gate_existing"]
        return existing
    return row if row["id"] is not None else None


def _event_of(row: asyncpg.Record) -> Event:
    return Event(
        job_id=row["id"],
        seq=row["seq"],
        kind=EventKind(row["event_kind"]),
        at=row["event_at"],
        data=row["event_payload"],
        owner_id=row["owner_id"],
        job_type=row["type"],
    )


@dataclass(frozen=True, slots=True)
class Capped:
    """The job's type is at its concurrency cap: it waits."""

    job_type: str
    cap: int


@dataclass(frozen=True, slots=True)
class Created:
    """A submitted job; ``event`` is None when an idempotent resubmit found it."""

    job: Job
    event: Event | None


class Store:
    """jobcast's Postgres: the source of truth for owners, jobs, steps and events."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._owners: dict[bytes, UUID] = {}  # token hash to owner, oldest first

    @classmethod
    @asynccontextmanager
    async def open(cls, dsn: str, *, max_size: int = 10) -> AsyncIterator[Store]:
        try:
            pool = await asyncpg.create_pool(
                # min_size 0: a process starts, and answers 503, while Postgres is down
                dsn,
                min_size=0,
                max_size=max_size,
                init=_init_connection,
                reset=_keep_as_is,
                command_timeout=30,
                timeout=5,
            )
        except _UNAVAILABLE as exc:
            raise StorageUnavailable(f"Postgres does not answer: {exc}") from exc
        try:
            yield cls(pool)
        finally:
            await pool.close()

    async def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except _UNAVAILABLE as exc:
            metrics.BACKEND_ERRORS.labels("postgres").inc()
            raise StorageUnavailable("the job store is unavailable; try again shortly") from exc

    async def ping(self) -> None:
        await self._run(lambda: self.pool.fetchval("SELECT 1"))

    # owners

    async def create_owner(self, token: str) -> UUID:
        owner_id = uuid4()
        await self._run(
            lambda: self.pool.execute(
                "INSERT INTO owners (id, token_hash, webhook_secret) VALUES ($1, $2, $3)",
                owner_id,
                hash_token(token),
                secrets.token_hex(24),
            )
        )
        return owner_id

    # uploads

    async def create_upload(
        self, owner_id: UUID, filename: str, content_type: str, data: bytes
    ) -> UUID:
        upload_id = uuid4()
        await self._run(
            lambda: self.pool.execute(
                "INSERT INTO uploads (id, owner_id, filename, content_type, size, data) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                upload_id,
                owner_id,
                filename,
                content_type,
                len(data),
                data,
            )
        )
        return upload_id

    async def read_upload(self, upload_id: UUID, owner_id: UUID) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run(
            lambda: self.pool.fetchrow(
                "SELECT id, filename, content_type, data FROM uploads "
                "WHERE id = $1 AND owner_id = $2",
                upload_id,
                owner_id,
            )
        )
        return row

    async def delete_unclaimed_uploads(self, older_than_s: float) -> int:
        status = await self._run(
            lambda: self.pool.execute(
                "DELETE FROM uploads WHERE job_id IS NULL "
                "AND created_at < now() - $1 * interval '1 second'",
                older_than_s,
            )
        )
        return int(status.split()[-1])

    async def expire_results(self, ttl_by_type: dict[str, float]) -> int:
        """Drop results older than their type's result_ttl_s; /result then answers 410."""
        if not ttl_by_type:
            return 0
        types = list(ttl_by_type)
        status = await self._run(
            lambda: self.pool.execute(SQL_EXPIRE_RESULTS, types, [ttl_by_type[t] for t in types])
        )
        return int(status.split()[-1])

    async def due_deliveries(self, limit: int = 50) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._run(
            lambda: self.pool.fetch(SQL_DUE_DELIVERIES, limit)
        )
        return rows

    async def record_delivery(
        self,
        job_id: UUID,
        attempt: int,
        *,
        delivered: bool,
        status_code: int | None,
        error: str | None,
        retry_in_s: float | None,
    ) -> None:
        """Record one try; schedule the next (retry_in_s) or give up (None)."""

        async def write() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                status = "delivered" if delivered else ("retrying" if retry_in_s else "failed")
                await conn.execute(SQL_RECORD_DELIVERY, job_id, attempt, status, status_code, error)
                if not delivered and retry_in_s:
                    await conn.execute(SQL_NEXT_DELIVERY, job_id, attempt + 1, retry_in_s)

        await self._run(write)

    async def ensure_owner(self, owner_id: UUID) -> None:
        """An owner no token opens (the one scheduled jobs belong to)."""
        await self._run(
            lambda: self.pool.execute(
                "INSERT INTO owners (id, token_hash, webhook_secret) VALUES ($1, $2, $3) "
                "ON CONFLICT (id) DO NOTHING",
                owner_id,
                secrets.token_bytes(32),
                secrets.token_hex(24),
            )
        )

    async def webhook_secret(self, owner_id: UUID) -> str:
        secret: str = await self._run(
            lambda: self.pool.fetchval("SELECT webhook_secret FROM owners WHERE id = $1", owner_id)
        )
        return secret

    async def owner_for_token(self, token: str) -> UUID | None:
        """The owner of a token; known owners are remembered (a token's owner never changes)."""
        key = hash_token(token)
        owner_id = self._owners.get(key)
        if owner_id is not None:
            return owner_id
        owner_id = await self._run(
            lambda: self.pool.fetchval("SELECT id FROM owners WHERE token_hash = $1", key)
        )
        if owner_id is not None:
            if len(self._owners) >= _OWNER_CACHE_SIZE:
                self._owners.pop(next(iter(self._owners)))
            self._owners[key] = owner_id
        return owner_id

    # jobs

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
    ) -> Created | None:
        """Insert a job and its first event; None when the owner is at ``max_active`` jobs
        (None: no cap), or when a ``job_id`` given is taken already.

        Unset attempts, time limit and estimate are the type's. ``upload_ids`` are tied to
        the new job in the same transaction: each must be the owner's and not yet used by
        another job, else InvalidInput and nothing is stored.
        """
        job_id = job_id or uuid4()
        max_attempts = max_attempts or job_type.max_attempts
        timeout_s = timeout_s or job_type.timeout_s
        if estimated_s is None:
            estimated_s = job_type.estimate(job_type.input_model.model_validate(params))
        steps = job_type.steps
        message = f"Scheduled to start in {delay_s:g} s" if delay_s > 0 else None
        first = {"status": "pending", "attempt": 0, "message": message, "progress": 0}

        args = (
            job_id,
            owner_id,
            job_type.name,
            params,
            priority,
            max_attempts,
            delay_s,
            estimated_s,
            [s.name for s in steps],
            [s.title for s in steps],
            [s.weight for s in steps],
            first,
            timeout_s,
            parent_id,
            idempotency_key,
            callback_url,
            message,
            retry_of,
            max_active,
        )

        async def insert() -> asyncpg.Record | UUID | None:
            if not upload_ids:
                row: asyncpg.Record | None = await self.pool.fetchrow(SQL_CREATE_JOB, *args)
                return _made(row)
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(SQL_CREATE_JOB, *args)
                made = _made(row)
                if isinstance(made, asyncpg.Record):
                    claimed = await conn.fetch(SQL_CLAIM_UPLOADS, upload_ids, owner_id, job_id)
                    missing = set(upload_ids) - {r["id"] for r in claimed}
                    if missing:
                        raise InvalidInput(
                            f"input: no upload {sorted(map(str, missing))[0]} for this owner "
                            "(or it is already used by another job)",
                            details=[{"field": "input", "message": "unknown upload"}],
                        )
                return made

        try:
            row = await self._run(insert)
        except (asyncpg.UntranslatableCharacterError, asyncpg.CharacterNotInRepertoireError) as exc:
            # a \u0000 in a string, which Postgres cannot store in jsonb
            raise InvalidInput(f"input: a value cannot be stored: {exc}") from None
        if row is None:
            return None
        if isinstance(row, UUID):
            job = await self.get_job(row, owner_id)
            if job is None:  # deleted in between: very unlikely, and a new submit is right
                return await self.create_job(
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
                    callback_url=callback_url,
                )
            return Created(job=job, event=None)
        # the new job's steps are all waiting: no need to read them back
        job = replace(
            _job(row),
            steps=tuple(
                StepView(s.name, s.title, s.weight, StepState.WAITING, None, None, None)
                for s in steps
            ),
        )
        return Created(job=job, event=_event_of(row))

    async def get_job(self, job_id: UUID, owner_id: UUID | None = None) -> Job | None:
        row = await self._run(lambda: self.pool.fetchrow(SQL_GET_JOB, job_id, owner_id))
        return _job(row) if row is not None else None

    async def job_seq(self, job_id: UUID, owner_id: UUID) -> int | None:
        """The seq of the owner's job (None: no such job of theirs), without reading it."""
        seq: int | None = await self._run(lambda: self.pool.fetchval(SQL_JOB_SEQ, job_id, owner_id))
        return seq

    async def list_jobs(
        self,
        owner_id: UUID,
        *,
        status: str | None = None,
        type: str | None = None,
        limit: int = 50,
    ) -> list[Job]:
        rows = await self._run(
            lambda: self.pool.fetch(SQL_LIST_JOBS, owner_id, status, type, limit)
        )
        return [_job(r) for r in rows]

    async def gauges(self, stale_after_s: float) -> dict[str, float | dict[str, float]]:
        """Install-wide numbers for /metrics: running and pending by type, waits, stuck jobs."""

        async def read() -> dict[str, float | dict[str, float]]:
            async with self.pool.acquire() as conn:
                rows = await conn.fetch(SQL_ACTIVE_BY_TYPE)
                oldest = await conn.fetchval(SQL_OLDEST_PENDING)
                stuck = await conn.fetchval(SQL_STUCK, stale_after_s)
            running = {r["type"]: float(r["n"]) for r in rows if r["status"] == "running"}
            pending = {r["type"]: float(r["n"]) for r in rows if r["status"] == "pending"}
            return {
                "running_jobs": running,
                "pending_jobs": pending,
                "oldest_pending_seconds": float(oldest),
                "stuck_jobs": float(stuck),
            }

        return await self._run(read)

    async def step_history(self, job_type: str, jobs: int = 50) -> list[asyncpg.Record]:
        """Inputs and step durations of the type's last completed jobs."""
        rows: list[asyncpg.Record] = await self._run(
            lambda: self.pool.fetch(SQL_STEP_HISTORY, job_type, jobs)
        )
        return rows

    async def children_state(self, parent_id: UUID) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._run(
            lambda: self.pool.fetch(
                "SELECT id, type, status, progress, result, error FROM jobs WHERE parent_id = $1 "
                "ORDER BY created_at, id",
                parent_id,
            )
        )
        return rows

    async def admin_jobs(
        self, *, owner_id: UUID | None, status: str | None, type: str | None, limit: int
    ) -> list[Job]:
        rows = await self._run(
            lambda: self.pool.fetch(SQL_ADMIN_JOBS, owner_id, status, type, limit)
        )
        return [_job(r) for r in rows]

    async def stats(self, stale_after_s: float) -> dict[str, Any]:
        """Counts by type and status, the oldest due wait, per-type rates over 1 h and 1 day."""

        async def read() -> dict[str, Any]:
            async with self.pool.acquire() as conn:
                counts = await conn.fetch(SQL_COUNTS)
                oldest = await conn.fetchval(SQL_OLDEST_PENDING)
                hour = await conn.fetch(SQL_TYPE_STATS, 3600)
                day = await conn.fetch(SQL_TYPE_STATS, 86_400)
                stuck = await conn.fetchval(SQL_STUCK, stale_after_s)
            return {"counts": counts, "oldest": oldest, "hour": hour, "day": day, "stuck": stuck}

        raw = await self._run(read)
        by_type: dict[str, dict[str, int]] = {}
        by_status: dict[str, int] = {}
        for row in raw["counts"]:
            by_type.setdefault(row["type"], {})[row["status"]] = row["n"]
            by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]

        def window(rows: list[asyncpg.Record]) -> dict[str, dict[str, Any]]:
            return {
                r["type"]: {
                    "finished": r["finished"],
                    "failed": r["failed"],
                    "failure_rate": round(r["failed"] / r["finished"], 4) if r["finished"] else 0.0,
                    "p50_s": r["p50_s"],
                    "p95_s": r["p95_s"],
                }
                for r in rows
            }

        return {
            "by_status": by_status,
            "by_type": by_type,
            "oldest_pending_s": round(raw["oldest"], 3),
            "stuck_running": raw["stuck"],
            "last_hour": window(raw["hour"]),
            "last_day": window(raw["day"]),
        }

    async def events_after(self, job_id: UUID, after: int, limit: int = 1000) -> list[Event]:
        rows = await self._run(lambda: self.pool.fetch(SQL_EVENTS_AFTER, job_id, after, limit))
        return [
            Event(r["job_id"], r["seq"], EventKind(r["kind"]), r["at"], r["payload"]) for r in rows
        ]

    # state changes made by a worker, each fenced by attempt

    async def claim(
        self, job_id: UUID, caps: dict[str, int] | None = None
    ) -> Claim | Capped | None:
        """Start the next attempt of a pending job, in one statement.

        None if it is not pending; Capped if its type is at its concurrency cap (``caps``
        maps type to the most jobs of it that may run at once, across all workers).
        """
        caps = caps or {}
        types = list(caps)
        row = await self._run(
            lambda: self.pool.fetchrow(SQL_CLAIM, job_id, types, [caps[t] for t in types])
        )
        if row is None or row["gate_type"] is None:
            return None
        if row["id"] is None:
            return Capped(row["gate_type"], row["gate_cap"]) if row["gate_cap"] else None
        job = _job(row)
        return Claim(job=job, attempt=job.attempts, event=_event_of(row))

    async def note_waiting(self, job_id: UUID, message: str) -> Event | None:
        """Say why a pending job waits (one event, not one per look)."""
        payload = {"status": "pending", "message": message}
        return await self._fenced(SQL_NOTE_WAITING, job_id, message, payload)

    async def _fenced(self, sql: str, *args: Any) -> Event | None:
        row = await self._run(lambda: self.pool.fetchrow(sql, *args))
        return _event_of(row) if row is not None else None

    async def record_progress(
        self,
        job_id: UUID,
        attempt: int,
        *,
        progress: float,
        step: str | None,
        message: str | None,
    ) -> Event | None:
        payload = {"progress": progress, "step": step, "message": message}
        return await self._fenced(SQL_PROGRESS, job_id, attempt, progress, step, message, payload)

    async def record_step(
        self,
        job_id: UUID,
        attempt: int,
        *,
        step: str,
        state: StepState,
        duration_ms: int | None,
        progress: float,
        message: str | None = None,
    ) -> Event | None:
        """A step starts (``message`` then replaces the last step's), completes or fails."""
        payload: dict[str, Any] = {"step": step, "state": str(state), "progress": progress}
        if duration_ms is not None:
            payload["duration_ms"] = duration_ms
        if state is StepState.RUNNING:
            payload["message"] = message
        return await self._fenced(
            SQL_STEP, job_id, attempt, step, str(state), duration_ms, progress, payload, message
        )

    async def finish(
        self,
        job_id: UUID,
        attempt: int,
        *,
        status: JobStatus,
        result: Any = None,
        error: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> Event | None:
        payload: dict[str, Any] = {"status": str(status), "attempt": attempt, "message": message}
        if status is JobStatus.COMPLETED:
            payload.update(result=result, progress=100)
        if error is not None:
            payload["error"] = error
        return await self._fenced(
            SQL_FINISH, job_id, attempt, str(status), result, error, message, payload
        )

    async def retry_later(
        self,
        job_id: UUID,
        attempt: int,
        *,
        delay_s: float,
        message: str,
        error: dict[str, Any],
    ) -> Event | None:
        payload = {
            "status": "pending",
            "attempt": attempt,
            "message": message,
            "error": error,
            "retry_in_s": round(delay_s, 3),
        }
        return await self._fenced(
            SQL_RETRY_LATER, job_id, attempt, delay_s, message, error, payload
        )

    async def hand_back(self, job_id: UUID, attempt: int, *, message: str) -> Event | None:
        payload = {"status": "pending", "attempt": attempt - 1, "message": message}
        return await self._fenced(SQL_HAND_BACK, job_id, attempt, message, payload)

    async def heartbeat(self, attempts: dict[UUID, int]) -> set[UUID]:
        """Beat for these running attempts; returns the ids that are still theirs."""
        if not attempts:
            return set()
        ids = list(attempts)
        rows = await self._run(
            lambda: self.pool.fetch(SQL_HEARTBEAT, ids, [attempts[i] for i in ids])
        )
        return {r["id"] for r in rows}

    # used by the API

    async def cancel(self, job_id: UUID, owner_id: UUID) -> list[Event] | None:
        """Cancel a pending or running job and its active descendants; their events.

        None if the job is not (or no longer) active.
        """
        payload = {"status": "cancelled", "message": "Cancelled"}
        row = await self._run(lambda: self.pool.fetchrow(SQL_CANCEL, job_id, owner_id, payload))
        if row is None:
            return None
        events = [_event_of(row)]
        child_payload = {"status": "cancelled", "message": "Cancelled with its parent job"}
        tree = await self._run(lambda: self.pool.fetch(SQL_TREE, job_id, owner_id))
        for child in tree[1:]:
            child_row = await self._cancel_one(child["id"], owner_id, child_payload)
            if child_row is not None:
                events.append(_event_of(child_row))
        return events

    async def _cancel_one(
        self, job_id: UUID, owner_id: UUID, payload: dict[str, Any]
    ) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run(
            lambda: self.pool.fetchrow(SQL_CANCEL, job_id, owner_id, payload)
        )
        return row

    async def notify_event(self, event: Event) -> None:
        """Tell every listening server process that this event exists (NOTIFY, ids only)."""
        payload = f"{event.job_id} {event.seq} {event.owner_id} {event.kind}"
        await self._run(lambda: self.pool.execute(SQL_NOTIFY_EVENT, payload))

    # used by the reaper

    async def take_lease(self, name: str, holder: str, duration_s: float) -> bool:
        """Hold (or keep holding) the named lease for duration_s; False if another holds it."""
        got = await self._run(lambda: self.pool.fetchval(SQL_TAKE_LEASE, name, holder, duration_s))
        return got is not None

    async def stale_running(self, stale_after_s: float, limit: int = 200) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._run(
            lambda: self.pool.fetch(SQL_STALE, stale_after_s, limit)
        )
        return rows

    async def pending(self, older_than_s: float, limit: int = 1000) -> list[asyncpg.Record]:
        """Pending jobs unchanged for a while: id, priority, delay_s."""
        rows: list[asyncpg.Record] = await self._run(
            lambda: self.pool.fetch(SQL_PENDING, older_than_s, limit)
        )
        return rows

    async def priorities(self, job_ids: list[UUID]) -> dict[UUID, int]:
        rows = await self._run(
            lambda: self.pool.fetch(
                "SELECT id, priority FROM jobs WHERE id = ANY($1::uuid[]) AND status = 'pending'",
                job_ids,
            )
        )
        return {r["id"]: r["priority"] for r in rows}

    async def delete_expired(
        self, completed_days: float, failed_days: float, cancelled_days: float
    ) -> int:
        status = await self._run(
            lambda: self.pool.execute(SQL_RETENTION, completed_days, failed_days, cancelled_days)
        )
        return int(status.split()[-1])


async def apply_schema(dsn: str) -> None:
    """Apply schema.sql; harmless when it has been applied before."""
    conn = await asyncpg.connect(dsn)
    try:
        # one session-level lock, so two processes starting together do not race
        await conn.execute("SELECT pg_advisory_lock(7213400)")
        await conn.execute(SCHEMA_PATH.read_text())
    finally:
        await conn.close()
