"""A job's family and files: the uploads it reads, the children it starts and waits for."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from uuid import UUID

from redis.exceptions import RedisError

from jobcast.errors import InvalidInput, PermanentError, TransientError
from jobcast.registry import Upload
from workers.persistence import persist

if TYPE_CHECKING:
    from workers.context import Reporter

log = logging.getLogger(__name__)

# how often a waiting parent looks at its children
_CHILD_POLL_S = 0.5


async def read_upload(reporter: Reporter, upload_id: str) -> Upload:
    try:
        key = UUID(upload_id)
    except ValueError:
        raise PermanentError(f"{upload_id[:40]!r} is not an upload id") from None
    row = await persist(
        lambda: reporter.store.read_upload(key, reporter.owner_id),
        deadline_s=reporter.settings.persist_deadline_s,
        what=f"job {reporter.job_id}",
    )
    if row is None:
        raise PermanentError(f"upload {upload_id} is gone")
    return Upload(
        id=str(row["id"]),
        filename=row["filename"],
        content_type=row["content_type"],
        data=row["data"],
    )


async def spawn(reporter: Reporter, job_type: str, job_input: dict[str, Any]) -> str:
    """Start a child job; it inherits this job's owner and priority."""
    registry = reporter.state.registry
    try:
        child_type = registry.get(job_type)
        params = child_type.parse_input(job_input)
    except InvalidInput as exc:
        raise PermanentError(f"cannot start a {job_type} child: {exc.message}") from None
    created = await persist(
        lambda: reporter.store.create_job(
            owner_id=reporter.owner_id,
            job_type=child_type,
            params=params.model_dump(mode="json"),
            priority=reporter.priority,
            parent_id=reporter.job_id,  # no cap: children are bounded by their parent's code
        ),
        deadline_s=reporter.settings.persist_deadline_s,
        what=f"job {reporter.job_id}",
    )
    if created is None or created.event is None:
        raise TransientError("the child job could not be created")
    await reporter.state.publisher.publish(created.event)
    try:
        await reporter.state.queue.enqueue(created.job.id, priority=reporter.priority)
    except (RedisError, OSError) as exc:
        log.warning(
            "job %s: child %s not queued yet (%s); the sweep will",
            reporter.job_id,
            created.job.id,
            exc,
        )
    return str(created.job.id)


async def wait_children(reporter: Reporter, child_ids: list[str]) -> list[dict[str, Any]]:
    """Wait until these children end; this step's progress follows theirs.

    The children are looked at every ``_CHILD_POLL_S``, but a progress event is
    written only when what it would say changed (their mean progress, or how many
    are done): a parent waiting an hour on a quiet child writes one, not 7,200.
    """
    wanted = set(child_ids)
    reported: tuple[float, str] | None = None
    while True:
        rows = [
            r
            for r in await persist(
                lambda: reporter.store.children_state(reporter.job_id),
                deadline_s=reporter.settings.persist_deadline_s,
                what=f"job {reporter.job_id}",
            )
            if str(r["id"]) in wanted
        ]
        if len(rows) < len(wanted):
            raise PermanentError("a child job is gone")
        done = [r for r in rows if r["status"] in ("completed", "failed", "cancelled")]
        mean = sum(100.0 if r in done else r["progress"] for r in rows) / len(rows)
        message = f"{len(done)} of {len(rows)} child jobs done"
        if (mean, message) != reported:
            await reporter.progress(mean, message)
            reported = (mean, message)
        if len(done) == len(rows):
            return [
                {
                    "id": str(r["id"]),
                    "type": r["type"],
                    "status": r["status"],
                    "result": r["result"],
                    "error": r["error"],
                }
                for r in rows
            ]
        await asyncio.sleep(_CHILD_POLL_S)
