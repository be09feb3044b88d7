"""Which jobs' events a feed socket sends: all its owner's, those of a tag, or a browser
token's scope.

An owner's channel carries every job of the owner; an app's browsers share its key's
owner, so a socket opened with a browser token (or asking ``?tag=``) sends only the
events of jobs in its scope, and starts with a snapshot of them:
``{"type": "snapshot", "jobs": [...]}``, newest first, at most ``SNAPSHOT_JOBS``. A job's
subject, tenant and tags never change, so each job is looked up once per socket (the
last thousand answers are kept).

Such a feed resumes by position: each event carries its time (``at``), the snapshot a
``position``; a client that reconnects with ``?since=<the last of them>`` gets a new
snapshot, then every event of the snapshot's jobs written since (``REPLAY_OVERLAP_S``
earlier, for events written before but committed after the last one it had; the client
drops what it already has by job and seq), then live events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from starlette.websockets import WebSocket

from jobcast.model import dumps
from jobcast.store import ListQuery
from server.auth import Caller, in_scope
from server.jobs import job_view
from server.lists import within
from server.state import Services

_REMEMBER = 1000
SNAPSHOT_JOBS = 200
# a resumed feed replays from this long before its position: an event is stamped when
# written and sent once committed, so one stamped earlier may reach the feed later
REPLAY_OVERLAP_S = 10.0


class ScopeFilter:
    """Awaitable test of a job id: whether its events are this socket's to send."""

    def __init__(self, ws: WebSocket, caller: Caller, tag: str | None = None) -> None:
        self.ws = ws
        self.caller = caller
        self.tag = tag
        self._known: dict[str, bool] = {}

    @property
    def narrowed(self) -> bool:
        return self.caller.scope is not None or self.tag is not None

    async def __call__(self, job_id: str) -> bool:
        if not self.narrowed:
            return True
        known = self._known.get(job_id)
        if known is None:
            known = await self._look_up(job_id)
            self._known[job_id] = known
            if len(self._known) > _REMEMBER:
                del self._known[next(iter(self._known))]
        return known

    async def _look_up(self, job_id: str) -> bool:
        if not await in_scope(self.ws, self.caller, job_id):
            return False
        if self.tag is None:
            return True
        services: Services = self.ws.state.services
        found = await services.store.job_scope(UUID(job_id), self.caller.owner_id)
        return found is not None and self.tag in found.tags


async def send_snapshot(
    ws: WebSocket, services: Services, owner_id: UUID, caller: Caller, tag: str | None
) -> list[UUID]:
    """The jobs of the feed's scope as they stand, newest first, and the position to resume
    from when nothing comes after them; the ids of the jobs sent."""
    position = datetime.now(UTC)
    query = ListQuery(tag=tag, limit=SNAPSHOT_JOBS, **within(caller.scope))
    jobs, _ = await services.store.find_jobs(owner_id, query)
    views = [(await job_view(services, job)).model_dump(mode="json") for job in jobs]
    body = {"type": "snapshot", "jobs": views, "position": position.isoformat()}
    await ws.send_text(dumps(body).decode())
    return [job.id for job in jobs]
