"""An owner's feed (``/ws``): status changes and step boundaries of all the owner's jobs,
and with ``?progress=1`` their progress too (each job's at most every half second).

For toasts and live job lists. The feed remembers the last thousand events it sent,
so an event that comes both over Redis and as a NOTIFY hint is sent once. Events it
missed while the live channel was interrupted cannot be named here: it sends
``{"type": "resync"}`` and the client reloads its list. A feed over a scope (``?tag=`` or a
browser token) does better: it resumes from ``?since=`` a position (server/sockets/scope.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from starlette import status
from starlette.websockets import WebSocket

from jobcast.bus import Live, SlowConsumer
from jobcast.errors import BadRequest, StorageUnavailable
from jobcast.model import MAX_TAG_CHARS, dumps
from jobcast.text import unstorable
from server.auth import caller_of
from server.sockets.admission import owned, services_of
from server.sockets.scope import REPLAY_OVERLAP_S, ScopeFilter, send_snapshot
from server.sockets.stream import CLIENT_GONE, Key, Stream, close, run_pair, send_error
from server.state import Services

_REMEMBER = 1000
RESYNC = '{"type":"resync"}'
# a socket that asks for progress gets a job's at most this often (step and status
# events, which carry it too, always go): a list of many running jobs stays cheap
PROGRESS_EVERY_S = 0.5


class FeedStream(Stream):
    """The sending side of an owner's feed: the events recently sent, oldest first."""

    def __init__(
        self, ws: WebSocket, services: Services, scope: Callable[[str], Awaitable[bool]]
    ) -> None:
        super().__init__(ws, services)
        self._sent: dict[Key, None] = {}
        self._in_scope = scope  # whether a job's events are this socket's to see
        self._progress_at: dict[str, float] = {}  # job id → when its progress was last sent
        self._held: dict[str, Live] = {}  # job id → its latest progress, due at its turn

    def has_sent(self, key: Key) -> bool:
        return key in self._sent

    async def _send_once(self, key: Key, text: str) -> None:
        if key in self._sent or not await self._in_scope(key[0]):
            return
        self._sent[key] = None
        if len(self._sent) > _REMEMBER:
            del self._sent[next(iter(self._sent))]
        await self.ws.send_text(text)

    async def on_live(self, live: Live) -> None:
        if live.progress:
            await self._send_progress(live)
            return
        if live.final:  # the job has ended: a progress held back would say otherwise
            self._held.pop(live.job_id, None)
        await self._send_once((live.job_id, live.seq), live.text)

    async def _send_progress(self, live: Live) -> None:
        """Progress comes over Redis alone (never twice), so it is not remembered as sent.
        Within a job's half second the latest is held and sent when the half second is
        over: the list never stays on a value the job has moved past."""
        last = self._progress_at.get(live.job_id, -PROGRESS_EVERY_S)
        if time.monotonic() - last < PROGRESS_EVERY_S:
            if live.job_id in self._held or await self._in_scope(live.job_id):
                self._held[live.job_id] = live
            return
        if await self._in_scope(live.job_id):
            await self._send_progress_now(live)

    async def _send_progress_now(self, live: Live) -> None:
        self._progress_at[live.job_id] = time.monotonic()
        if len(self._progress_at) > _REMEMBER:
            del self._progress_at[next(iter(self._progress_at))]
        await self.ws.send_text(live.text)

    def due_at(self) -> float | None:
        if not self._held:
            return None
        return min(self._progress_at.get(job_id, 0.0) for job_id in self._held) + PROGRESS_EVERY_S

    async def on_due(self) -> None:
        now = time.monotonic()
        for job_id, live in list(self._held.items()):
            if self._progress_at.get(job_id, 0.0) + PROGRESS_EVERY_S <= now:
                del self._held[job_id]
                await self._send_progress_now(live)

    async def on_missing(self, keys: list[Key]) -> None:
        for job_id, seq in keys:
            for event in await self.services.store.events_after(UUID(job_id), seq - 1, 1):
                await self._send_once((job_id, event.seq), dumps(event.wire()).decode())

    async def on_resync(self) -> None:
        await self.ws.send_text(RESYNC)

    async def replay(self, job_ids: list[UUID], since: datetime) -> None:
        """The events of these jobs written since a position the client had; more than it
        can remember is a resync (the snapshot just sent holds where each job stands)."""
        start = since - timedelta(seconds=REPLAY_OVERLAP_S)
        events = await self.services.store.events_since(job_ids, start, _REMEMBER)
        for event in events:
            await self._send_once((str(event.job_id), event.seq), dumps(event.wire()).decode())
        if len(events) >= _REMEMBER:
            await self.on_resync()


def _since(raw: str | None) -> datetime | None:
    """A feed's position (an event's ``at``), None when absent; BadRequest when unreadable."""
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw.replace(" ", "+"))  # a "+" sent unquoted
    except ValueError:
        raise BadRequest(f"since must be an ISO 8601 time, got {raw[:40]!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _wants_progress(ws: WebSocket) -> bool:
    return ws.query_params.get("progress", "") in ("1", "true")


@owned
async def owner_socket(ws: WebSocket, owner_id: UUID) -> None:
    services = services_of(ws)
    caller = await caller_of(ws)
    tag = ws.query_params.get("tag") or None
    if tag is not None and (len(tag) > MAX_TAG_CHARS or unstorable(tag) is not None):
        error = BadRequest(f"tag: 1 to {MAX_TAG_CHARS} characters that can be stored")
        await send_error(ws, error, status.WS_1008_POLICY_VIOLATION)
        return
    try:
        since = _since(ws.query_params.get("since"))
    except BadRequest as error:
        await send_error(ws, error, status.WS_1008_POLICY_VIOLATION)
        return
    in_scope = ScopeFilter(ws, caller, tag)
    stream = FeedStream(ws, services, in_scope)
    channel = services.settings.owner_channel(owner_id)
    try:
        async with services.hub.subscribe(channel, progress=_wants_progress(ws)) as sub:
            if in_scope.narrowed:  # a feed over a scope starts with the jobs in it
                job_ids = await send_snapshot(ws, services, owner_id, caller, tag)
                if since is not None:
                    await stream.replay(job_ids, since)
            await run_pair(ws, lambda: stream.follow(sub))
    except SlowConsumer:
        await close(ws, status.WS_1013_TRY_AGAIN_LATER, "slow consumer: reconnect")
    except (*CLIENT_GONE, StorageUnavailable):
        pass
