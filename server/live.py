"""Websockets: one job's events (``/ws/jobs/{id}``) and an owner's feed (``/ws``).

A job socket subscribes to the job's channel first, then sends the snapshot,
then replays ``job_events`` after the client's ``after``, then streams live
events. It tracks the last ``seq`` sent: duplicates are dropped, and any gap
(an event missed over Redis, a NOTIFY hint, a reconnect of pub/sub) is filled
from Postgres. Each socket runs two loops, receiving and sending, as two tasks
cancelled together when either ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from uuid import UUID

from starlette import status
from starlette.websockets import WebSocket, WebSocketDisconnect

from jobcast import metrics
from jobcast.bus import Hint, Live, Resync, SlowConsumer, Subscription
from jobcast.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    NotFound,
    StorageUnavailable,
    TooManyRequests,
)
from jobcast.model import Event, dumps
from server.api import job_view
from server.auth import owner_of, token_of
from server.responses import JSONResponse
from server.security import origin_allowed
from server.state import Services

log = logging.getLogger(__name__)

WS_4404_NOT_FOUND = 4404
_SEND_TIMEOUT_S = 10.0


def _services(ws: WebSocket) -> Services:
    services: Services = ws.state.services
    return services


async def _send_error(ws: WebSocket, exc: ApiError, code: int) -> None:
    await ws.send_text(dumps(exc.body()).decode())
    await ws.close(code, reason=exc.code)


async def _run_pair(ws: WebSocket, sender: Callable[[], Awaitable[None]]) -> None:
    """Run the sender beside a receiver; when either ends, both stop.

    Two tasks, cancelled together; an error of the sender (a slow client, Postgres gone)
    is raised here as itself, for the caller to close the socket with the right code.
    """

    async def receive() -> None:
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
        except WebSocketDisconnect:
            return

    sending = asyncio.ensure_future(sender())
    receiving = asyncio.ensure_future(receive())
    try:
        await asyncio.wait({sending, receiving}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, receiving):
            task.cancel()
        await asyncio.gather(sending, receiving, return_exceptions=True)
    error = None if sending.cancelled() else sending.exception()
    if error is not None:
        raise error


async def close_all(sockets: set[WebSocket]) -> None:
    """Close every open socket with 1001, so that clients reconnect (elsewhere, if they can)."""
    await asyncio.gather(
        *(
            _close(ws, status.WS_1001_GOING_AWAY, "server restarting: reconnect")
            for ws in list(sockets)
        )
    )


class JobStream:
    """The sending side of one job socket: the last seq sent, and how to fill gaps."""

    def __init__(self, ws: WebSocket, services: Services, job_id: UUID, after: int) -> None:
        self.ws = ws
        self.services = services
        self.job_id = job_id
        self.last = after
        self.done = False

    async def send(self, text: str, seq: int, final: bool) -> None:
        await asyncio.wait_for(self.ws.send_text(text), _SEND_TIMEOUT_S)
        self.last = seq
        if final:
            self.done = True

    async def catch_up(self) -> None:
        """Send every persisted event after the last one sent."""
        while not self.done:
            events = await self.services.store.events_after(self.job_id, self.last, 500)
            for event in events:
                await self.send(dumps(event.wire()).decode(), event.seq, event.final)
                if self.done:
                    return
            if len(events) < 500:
                return

    async def stream(self, sub: Subscription) -> None:
        grace_s = self.services.settings.pubsub_grace_ms / 1000
        hinted = 0  # highest seq Postgres said exists
        deadline: float | None = None  # when to stop waiting for pub/sub to bring it
        while not self.done:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = await asyncio.wait_for(sub.get(), timeout)
            except TimeoutError:
                item = Resync()
            if isinstance(item, Live):
                if item.seq <= self.last:
                    continue
                if item.seq == self.last + 1:
                    await self.send(item.text, item.seq, item.final)
                else:
                    await self.catch_up()
            elif isinstance(item, Hint):
                hinted = max(hinted, item.seq)
                if hinted > self.last and deadline is None:
                    # over a healthy pub/sub the same event is on its way: give it a moment
                    wait_s = grace_s if self.services.hub.healthy else 0.0
                    deadline = time.monotonic() + wait_s
                    continue
            else:
                await self.catch_up()
            if deadline is not None and (hinted <= self.last or time.monotonic() >= deadline):
                if hinted > self.last:
                    await self.catch_up()
                deadline = None


async def _deny(ws: WebSocket, exc: ApiError) -> None:
    """Refuse the handshake with the HTTP status and error body, where the server can."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(
            JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
        )
    else:
        await ws.close(status.WS_1008_POLICY_VIOLATION)


@asynccontextmanager
async def _admitted(ws: WebSocket) -> AsyncIterator[UUID | None]:
    """The owner of an accepted socket, or None when the handshake was refused.

    A cookie comes with every request a browser makes, whichever site's page makes
    it: a cookie-authenticated socket must come from our own pages (or an allowed
    origin), else any site could read its visitors' jobs (cross-site websocket
    hijacking). A bearer token cannot be sent that way, so it needs no such check.
    """
    services = _services(ws)
    try:
        owner_id = await owner_of(ws)
        _, by_cookie = token_of(ws)
        if by_cookie and not origin_allowed(ws, services.settings.origins):
            raise Forbidden("this origin may not open websockets with the session cookie")
        if services.sockets.get(owner_id, 0) >= services.settings.max_sockets_per_owner:
            raise TooManyRequests(
                f"at most {services.settings.max_sockets_per_owner} open websockets per owner",
                headers={"Retry-After": "5"},
            )
    except ApiError as exc:
        await _deny(ws, exc)
        yield None
        return
    services.sockets[owner_id] = services.sockets.get(owner_id, 0) + 1
    services.open_sockets.add(ws)
    gauge = metrics.OPEN_WEBSOCKETS.labels("job" if "job_id" in ws.path_params else "owner")
    gauge.inc()
    try:
        await ws.accept()
        yield owner_id
    finally:
        gauge.dec()
        services.open_sockets.discard(ws)
        left = services.sockets[owner_id] - 1
        if left:
            services.sockets[owner_id] = left
        else:
            del services.sockets[owner_id]


async def job_socket(ws: WebSocket) -> None:
    async with _admitted(ws) as owner_id:
        if owner_id is not None:
            await _job_socket(ws, owner_id)


async def _job_socket(ws: WebSocket, owner_id: UUID) -> None:
    services = _services(ws)
    try:
        job_id = UUID(ws.path_params["job_id"])
    except ValueError:
        job_id = None
    raw_after = ws.query_params.get("after", "0") or "0"
    if not raw_after.isdigit():
        await _send_error(
            ws,
            BadRequest(f"after must be a whole number, got {raw_after[:40]!r}"),
            status.WS_1008_POLICY_VIOLATION,
        )
        return
    try:
        await _serve_job(ws, services, owner_id, job_id, int(raw_after))
    except SlowConsumer:
        log.info("job %s: websocket fell behind; closed so it resumes with after=", job_id)
        await _close(ws, status.WS_1013_TRY_AGAIN_LATER, "slow consumer: reconnect with after=")
    except StorageUnavailable:
        await _close(ws, status.WS_1011_INTERNAL_ERROR, "storage unavailable")
    except (WebSocketDisconnect, TimeoutError):
        pass


async def _serve_job(
    ws: WebSocket, services: Services, owner_id: UUID, job_id: UUID | None, after: int
) -> None:
    if job_id is None or await services.store.job_seq(job_id, owner_id) is None:
        await _send_error(ws, NotFound("no such job"), WS_4404_NOT_FOUND)
        return
    async with services.hub.subscribe(services.settings.job_channel(job_id)) as sub:
        # read the snapshot after subscribing, so no event falls between the two
        sent = await _send_snapshot(ws, services, job_id, owner_id)
        if sent is None:
            return
        seq, final = sent
        stream = JobStream(ws, services, job_id, min(after, seq))
        await stream.catch_up()
        if final and stream.last >= seq:
            stream.done = True
        if not stream.done:
            await _run_pair(ws, lambda: stream.stream(sub))
    if stream.done:
        await _close(ws, status.WS_1000_NORMAL_CLOSURE, "job finished")


async def _send_snapshot(
    ws: WebSocket, services: Services, job_id: UUID, owner_id: UUID
) -> tuple[int, bool] | None:
    """Send the job as it stands; its seq and whether it is final. Nothing of the job is
    kept once sent: a watched job's socket may stay open for hours, thousands at once."""
    job = await services.store.get_job(job_id, owner_id)
    if job is None:
        return None
    view = await job_view(services, job)
    await ws.send_text(dumps({"type": "snapshot", "job": view.model_dump(mode="json")}).decode())
    return job.seq, job.status.final


async def owner_socket(ws: WebSocket) -> None:
    async with _admitted(ws) as owner_id:
        if owner_id is not None:
            await _owner_socket(ws, owner_id)


async def _owner_socket(ws: WebSocket, owner_id: UUID) -> None:
    """Status changes and step boundaries of all the owner's jobs, for toasts and lists."""
    services = _services(ws)
    sent: dict[tuple[str, int], None] = {}  # recently sent (job, seq), oldest first

    def first_time(job_id: str, seq: int) -> bool:
        key = (job_id, seq)
        if key in sent:
            return False
        sent[key] = None
        if len(sent) > 1000:
            del sent[next(iter(sent))]
        return True

    async def sender(sub: Subscription) -> None:
        while True:
            item = await sub.get()
            if isinstance(item, Live):
                if first_time(item.job_id, item.seq):
                    await asyncio.wait_for(ws.send_text(item.text), _SEND_TIMEOUT_S)
            elif isinstance(item, Hint):
                # while pub/sub is healthy it brings the same event; hints matter when it is down
                if services.hub.healthy or (item.job_id, item.seq) in sent:
                    continue
                events = await services.store.events_after(UUID(item.job_id), item.seq - 1, 1)
                for event in events:
                    if first_time(item.job_id, event.seq):
                        await asyncio.wait_for(ws.send_text(_text(event)), _SEND_TIMEOUT_S)
            else:
                # missed events cannot be named here: ask the client to reload its list
                await asyncio.wait_for(ws.send_text('{"type":"resync"}'), _SEND_TIMEOUT_S)

    try:
        async with services.hub.subscribe(services.settings.owner_channel(owner_id)) as sub:
            await _run_pair(ws, lambda: sender(sub))
    except SlowConsumer:
        await _close(ws, status.WS_1013_TRY_AGAIN_LATER, "slow consumer: reconnect")
    except (WebSocketDisconnect, TimeoutError, StorageUnavailable):
        pass


def _text(event: Event) -> str:
    return dumps(event.wire()).decode()


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    try:
        await ws.close(code, reason=reason)
    except (RuntimeError, WebSocketDisconnect, OSError):
        pass  # already closed by the client
