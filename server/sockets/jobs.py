"""One job's websocket (``/ws/jobs/{id}?after=N``).

The socket subscribes to the job's channel first, then sends the snapshot, then
replays ``job_events`` after the client's ``after``, then streams live events. It
tracks the last ``seq`` sent: duplicates are dropped, and any gap (an event missed
over Redis, a NOTIFY's hint, a reconnect of pub/sub) is filled from Postgres. It
closes normally after the job's final event.
"""

from __future__ import annotations

import logging
from uuid import UUID

from starlette import status
from starlette.websockets import WebSocket

from jobcast.bus import Live, SlowConsumer
from jobcast.errors import BadRequest, NotFound, StorageUnavailable
from jobcast.model import Event, dumps
from server.jobs import job_view
from server.responses import model_json
from server.sockets.admission import owned, services_of
from server.sockets.stream import CLIENT_GONE, Key, Stream, close, run_pair, send_error
from server.state import Services

log = logging.getLogger(__name__)

WS_4404_NOT_FOUND = 4404
_PAGE = 500


class JobStream(Stream):
    """The sending side of one job socket: the last seq sent, and how to fill gaps."""

    def __init__(self, ws: WebSocket, services: Services, job_id: UUID, after: int) -> None:
        super().__init__(ws, services)
        self.job_id = job_id
        self.last = after

    async def send(self, text: str, seq: int, final: bool) -> None:
        await self.ws.send_text(text)
        self.last = seq
        if final:
            self.done = True

    async def catch_up(self, first: list[Event] | None = None) -> None:
        """Send every persisted event after the last one sent (``first``: the first page of
        them, already read)."""
        events = first
        while not self.done:
            if events is None:
                events = await self.services.store.events_after(self.job_id, self.last, _PAGE)
            for event in events:
                await self.send(dumps(event.wire()).decode(), event.seq, event.final)
                if self.done:
                    return
            if len(events) < _PAGE:
                return
            events = None

    def has_sent(self, key: Key) -> bool:
        return key[1] <= self.last

    async def on_live(self, live: Live) -> None:
        if live.seq <= self.last:
            return
        if live.seq == self.last + 1:
            await self.send(live.text, live.seq, live.final)
        else:
            await self.catch_up()

    async def on_missing(self, keys: list[Key]) -> None:
        await self.catch_up()

    async def on_resync(self) -> None:
        await self.catch_up()


@owned
async def job_socket(ws: WebSocket, owner_id: UUID) -> None:
    services = services_of(ws)
    try:
        job_id = UUID(ws.path_params["job_id"])
    except ValueError:
        job_id = None
    raw_after = ws.query_params.get("after", "0") or "0"
    if not (raw_after.isascii() and raw_after.isdigit()):  # "²" is a digit int() cannot read
        await send_error(
            ws,
            BadRequest(f"after must be a whole number, got {raw_after[:40]!r}"),
            status.WS_1008_POLICY_VIOLATION,
        )
        return
    try:
        await _serve_job(ws, services, owner_id, job_id, int(raw_after))
    except SlowConsumer:
        log.info("job %s: websocket fell behind; closed so it resumes with after=", job_id)
        await close(ws, status.WS_1013_TRY_AGAIN_LATER, "slow consumer: reconnect with after=")
    except StorageUnavailable:
        await close(ws, status.WS_1011_INTERNAL_ERROR, "storage unavailable")
    except CLIENT_GONE:
        pass


async def _serve_job(
    ws: WebSocket, services: Services, owner_id: UUID, job_id: UUID | None, after: int
) -> None:
    if job_id is None:
        await send_error(ws, NotFound("no such job"), WS_4404_NOT_FOUND)
        return
    async with services.hub.subscribe(services.settings.job_channel(job_id)) as sub:
        # the job and its events after the client's are read once, after subscribing, so
        # no event falls between the two; a job that is not there (or not the owner's) is
        # told apart only then
        sent = await _send_snapshot(ws, services, job_id, owner_id, after)
        if sent is None:
            await send_error(ws, NotFound("no such job"), WS_4404_NOT_FOUND)
            return
        seq, final, replay = sent
        stream = JobStream(ws, services, job_id, min(after, seq))
        await stream.catch_up(replay)
        if final and stream.last >= seq:
            stream.done = True
        if not stream.done:
            await run_pair(ws, lambda: stream.follow(sub))
    if stream.done:
        await close(ws, status.WS_1000_NORMAL_CLOSURE, "job finished")


async def _send_snapshot(
    ws: WebSocket, services: Services, job_id: UUID, owner_id: UUID, after: int
) -> tuple[int, bool, list[Event]] | None:
    """Send the job as it stands; its seq, whether it is final, and its first events after
    ``after``, to be replayed. Nothing of the job is kept once sent: a watched job's
    socket may stay open for hours, thousands at once."""
    read = await services.store.job_snapshot(job_id, owner_id, after, _PAGE)
    if read is None:
        return None
    job, replay = read
    view = await job_view(services, job)
    await ws.send_text(f'{{"type":"snapshot","job":{model_json(view).decode()}}}')
    return job.seq, job.status.final, replay
