"""The admin's bulk actions and queue pauses: retry, cancel or delete many jobs, in the
background and in batches, with progress on the admin feed.

Each batch is one statement (``jobcast.store.admin``): all of its jobs change, or on a
crash none, and the web process serves other requests between batches. A bulk action
is logged once as it starts (who, what, how many) and once as it ends; its progress is
kept in ``admin_actions`` and published on the admin channel as it goes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import orjson
from redis.exceptions import RedisError
from starlette.requests import Request

from jobcast import metrics
from jobcast.bus.publisher import Publisher
from jobcast.errors import NotFound
from jobcast.store import AdminQuery
from server.state import Services

log = logging.getLogger(__name__)

BATCH_SIZE = 500
ACTIONS = ("retry", "cancel", "delete")


def admin_channel(services: Services) -> str:
    """The Redis channel of the admin feed's own news (bulk progress, pauses)."""
    return f"{services.settings.redis_prefix}:admin"


async def announce(services: Services, news: dict[str, Any]) -> None:
    """Tell every web process's admin feeds; news lost with Redis is in Postgres anyway."""
    try:
        await services.redis.publish(admin_channel(services), orjson.dumps(news))
    except (RedisError, OSError) as exc:
        log.warning("admin news not published (%s): %s", news.get("kind"), exc)


@dataclass(frozen=True)
class Bulk:
    """One bulk action: what, on which jobs (ids or a query), by whom."""

    id: UUID
    action: str
    actor: str
    ids: list[UUID] | None
    query: AdminQuery | None
    matched: int

    def news(self, done: int, finished: bool, descendants: int = 0) -> dict[str, Any]:
        return {
            "kind": "action",
            "id": str(self.id),
            "action": self.action,
            "actor": self.actor,
            "matched": self.matched,
            "done": done,
            "descendants": descendants,
            "finished": finished,
        }


def _running(request: Request) -> set[asyncio.Task[None]]:
    """The bulk actions this process runs, held so that none is collected half done."""
    state = request.app.state
    if not hasattr(state, "bulk_tasks"):
        state.bulk_tasks = set()
    tasks: set[asyncio.Task[None]] = state.bulk_tasks
    return tasks


async def start_bulk(
    request: Request,
    services: Services,
    action: str,
    actor: str,
    ids: list[UUID] | None,
    query: AdminQuery | None,
    target: Any,
) -> Bulk:
    """Count what the action matches, log it, and run it in the background."""
    if ids is not None:
        ids = sorted(set(ids))
        matched = len(ids)
    else:
        assert query is not None
        matched = await services.store.admin_count(query, action)
    bulk = Bulk(uuid4(), action, actor, ids, query, matched)
    await services.store.start_action(bulk.id, action, actor, target, matched)
    log.info(
        "admin action %s: %s %s on %d job(s) matching %s",
        bulk.id,
        actor,
        action,
        matched,
        orjson.dumps(target).decode()[:300],
    )
    task = asyncio.create_task(_run(services, bulk), name=f"bulk-{action}-{bulk.id}")
    tasks = _running(request)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return bulk


async def _batches(services: Services, bulk: Bulk) -> AsyncIterator[list[UUID]]:
    if bulk.ids is not None:
        for start in range(0, len(bulk.ids), BATCH_SIZE):
            yield bulk.ids[start : start + BATCH_SIZE]
        return
    assert bulk.query is not None
    after: UUID | None = None
    while True:
        batch = await services.store.admin_batch(bulk.query, bulk.action, after, BATCH_SIZE)
        if not batch:
            return
        yield batch
        after = batch[-1]


async def _run(services: Services, bulk: Bulk) -> None:
    publisher = Publisher(services.redis, services.settings, services.store)
    done = descendants = 0
    try:
        async for batch in _batches(services, bulk):
            changed = await _apply(services, publisher, bulk.action, batch)
            done += changed.asked
            descendants += changed.descendants
            await services.store.action_progress(bulk.id, done, False)
            await announce(services, bulk.news(done, False, descendants))
            await asyncio.sleep(0)  # let waiting requests in between batches
        await services.store.action_progress(bulk.id, done, True)
        await announce(services, bulk.news(done, True, descendants))
        log.info(
            "admin action %s: %s %s done, %d job(s) and %d descendant(s)",
            bulk.id,
            bulk.actor,
            bulk.action,
            done,
            descendants,
        )
    except Exception:
        log.exception("admin action %s: %s stopped after %d job(s)", bulk.id, bulk.action, done)
    finally:
        await publisher.close()


@dataclass(frozen=True)
class Changed:
    """What one batch changed: jobs of the batch, and their descendants (a cancel's)."""

    asked: int
    descendants: int = 0


async def _apply(
    services: Services, publisher: Publisher, action: str, batch: list[UUID]
) -> Changed:
    """Apply the action to one batch, in one statement; how many jobs it changed."""
    store = services.store
    if action == "cancel":
        events = await store.cancel_many(batch)
        for event in events:
            await publisher.publish(event)
            metrics.JOBS_CANCELLED.labels(event.job_type or "unknown").inc()
        asked = set(batch)
        mine = sum(1 for event in events if event.job_id in asked)
        return Changed(mine, len(events) - mine)
    if action == "retry":
        made = await store.retry_many(batch)
        for event, priority in made:
            await publisher.publish(event)
            await services.queue.enqueue(event.job_id, priority=priority, owner_id=event.owner_id)
            metrics.JOBS_SUBMITTED.labels(event.job_type or "unknown").inc()
        return Changed(len(made))
    return Changed(await store.delete_many(batch))


async def pause(services: Services, job_type: str, actor: str) -> None:
    _known(services, job_type)
    await services.store.pause_type(job_type, actor)
    log.info("admin: %s paused the queue of type %s", actor, job_type)
    await announce(services, {"kind": "paused", "type": job_type, "paused": True})


async def resume(services: Services, job_type: str, actor: str) -> int:
    """Resume the type's queue and queue its pending jobs again; how many there were."""
    _known(services, job_type)
    pending = await services.store.resume_type(job_type)
    for job in pending:
        await services.queue.requeue(job.id, delay_s=job.delay_s, priority=job.priority)
    log.info("admin: %s resumed the queue of type %s (%d pending)", actor, job_type, len(pending))
    await announce(services, {"kind": "paused", "type": job_type, "paused": False})
    return len(pending)


def _known(services: Services, job_type: str) -> None:
    if job_type not in services.registry:
        raise NotFound(f"no job type {job_type[:100]!r}")
