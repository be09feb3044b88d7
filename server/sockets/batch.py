"""A batch's websocket (``/ws/batches/{id}``): the batch as it stands, then its jobs' events.

First ``{"type": "snapshot", "batch": {...}}`` (as ``GET /api/batches/{id}`` answers),
then every event of the batch's jobs from the owner's channel, as the owner's feed sends
them; it closes normally (1000, ``batch finished``) once every job of the batch has
ended. A browser token cannot open it: a batch is its app's, not one user's.
"""

from __future__ import annotations

from uuid import UUID

from starlette import status
from starlette.websockets import WebSocket

from jobcast.bus import Live, SlowConsumer
from jobcast.errors import ApiError, Forbidden, NotFound, StorageUnavailable
from jobcast.model import JobStatus, dumps
from server.auth import caller_of
from server.batches import batch_states, batch_view
from server.sockets.admission import owned, services_of
from server.sockets.feed import FeedStream
from server.sockets.jobs import WS_4404_NOT_FOUND
from server.sockets.stream import CLIENT_GONE, Key, close, run_pair, send_error
from server.state import Services


class BatchStream(FeedStream):
    """The owner's feed narrowed to a batch's jobs; done when none is left running."""

    def __init__(
        self,
        ws: WebSocket,
        services: Services,
        batch_id: UUID,
        owner_id: UUID,
        job_ids: frozenset[str],
        open_ids: set[str],
    ) -> None:
        async def in_batch(job_id: str) -> bool:
            return job_id in job_ids

        super().__init__(ws, services, in_batch)
        self.batch_id = batch_id
        self.owner_id = owner_id
        self.open = open_ids
        self.done = not open_ids

    async def on_live(self, live: Live) -> None:
        await super().on_live(live)
        if live.final:
            self.open.discard(live.job_id)
            self.done = not self.open

    async def on_missing(self, keys: list[Key]) -> None:
        await super().on_missing(keys)
        await self._recount()

    async def on_resync(self) -> None:
        await super().on_resync()
        await self._recount()

    async def _recount(self) -> None:
        _, states = await batch_states(self.services, str(self.batch_id), self.owner_id)
        self.open = {str(s.id) for s in states if s.status and not JobStatus(s.status).final}
        self.done = not self.open


@owned
async def batch_socket(ws: WebSocket, owner_id: UUID) -> None:
    services = services_of(ws)
    try:
        if (await caller_of(ws)).scope is not None:
            raise Forbidden("a browser token follows jobs, not a batch")
        channel = services.settings.owner_channel(owner_id)
        async with services.hub.subscribe(channel, progress=False) as sub:
            # the snapshot is read after subscribing, so no event falls between the two
            batch_id, states = await batch_states(services, ws.path_params["batch_id"], owner_id)
            view = batch_view(batch_id, states)
            await ws.send_text(dumps({"type": "snapshot", "batch": view.model_dump()}).decode())
            job_ids = frozenset(str(s.id) for s in states)
            open_ids = {j.id for j in view.jobs if j.status and not JobStatus(j.status).final}
            stream = BatchStream(ws, services, batch_id, owner_id, job_ids, open_ids)
            if not stream.done:
                await run_pair(ws, lambda: stream.follow(sub))
        if stream.done:
            await close(ws, status.WS_1000_NORMAL_CLOSURE, "batch finished")
    except ApiError as exc:
        code = WS_4404_NOT_FOUND if isinstance(exc, NotFound) else status.WS_1008_POLICY_VIOLATION
        await send_error(ws, exc, code)
    except SlowConsumer:
        await close(ws, status.WS_1013_TRY_AGAIN_LATER, "slow consumer: reconnect")
    except (*CLIENT_GONE, StorageUnavailable):
        pass
