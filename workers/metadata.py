"""A job's live metadata: keys its code sets (``job.set_metadata(...)``), seen live.

Each call merges its keys into the job's ``metadata`` (top-level keys replace, the
rest stay) in one statement with a ``metadata`` event carrying only the keys that
changed; watchers merge them into the snapshot they hold. The merged JSON is capped
(``JOBCAST_METADATA_MAX_BYTES``): past it, the write is refused and job code gets
``LimitExceeded``, and the job's metadata stays as it was. A child job sets its
parent's (``parent=True``) while the parent is not finished; the event is the parent's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobcast.errors import LimitExceeded, PermanentError
from jobcast.model import dumps

if TYPE_CHECKING:
    from workers.context import Reporter


async def set_metadata(reporter: Reporter, keys: dict[str, Any], *, parent: bool) -> None:
    if not keys:
        return
    try:
        size = len(dumps(keys))
    except TypeError as exc:
        raise PermanentError(f"metadata must be JSON: {exc}") from None
    cap = reporter.settings.metadata_max_bytes
    whose = "its parent's" if parent else "the job's"
    if size > cap:  # the merge holds every key given: over the cap without asking Postgres
        raise _over(whose, size, cap)
    store, job_id, attempt = reporter.store, reporter.job_id, reporter.attempt
    if not parent:
        if await reporter.write_if(
            lambda: store.set_metadata(job_id, attempt, keys, parent=False, cap_bytes=cap)
        ):
            return
    else:
        event = await reporter.persist(
            lambda: store.set_metadata(job_id, attempt, keys, parent=True, cap_bytes=cap)
        )
        if event is not None:
            await reporter.publish(event)
            return
    size = await store.metadata_size(job_id, keys, parent=parent)
    if size > cap:
        raise _over(whose, size, cap)
    if parent:
        raise PermanentError("this job has no parent, or its parent has finished")
    await reporter.emit(None)  # fenced off: AttemptLost


def _over(whose: str, size: int, cap: int) -> LimitExceeded:
    return LimitExceeded(
        f"{whose} metadata would be at least {size} bytes, over the limit of {cap} "
        "(JOBCAST_METADATA_MAX_BYTES); nothing was changed"
    )
