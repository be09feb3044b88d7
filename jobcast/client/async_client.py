"""``AsyncClient``: the API from asyncio code, over httpx and websockets.

Requests are built and answers read in ``calls``; this class sends them, and
runs the one loop of a watch. ``watch`` follows ``WS /ws/jobs/{id}?after=N`` and
yields each event once, in ``seq`` order. A dropped socket (any close but 1000,
or a failed connect) is reopened with backoff from the last ``seq`` seen; when
websockets keep failing it polls ``GET /api/jobs/{id}/events?after=N`` instead.
It ends after the final status event.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, Self, TypeVar, Unpack

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from jobcast.client import calls
from jobcast.client.calls import Call, SubmitOptions
from jobcast.client.errors import (
    Conflict,
    TooManyRequests,
    Unavailable,
    Unreachable,
    ended_otherwise,
    error_of,
    handshake_error,
)
from jobcast.client.models import Batch, BatchSubmitted, Event, Job, JobId, JobType, Submitted

log = logging.getLogger(__name__)

T = TypeVar("T")

_WS_NORMAL_CLOSURE = 1000


class AsyncClient:
    """The jobcast API from asyncio code. Use ``async with``, or ``await aclose()``.

    ``token`` is an owner token (``create_session`` makes one and keeps it); admin
    calls (``stats``) take the admin token instead. Reconnect and polling pace can be
    tuned; the defaults suit a client on the other side of the internet.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = 10.0,
        reconnect_delay_s: float = 0.25,
        max_reconnect_delay_s: float = 5.0,
        socket_failures_before_polling: int = 4,
        poll_interval_s: float = 1.0,
        max_failures: int = 12,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.reconnect_delay_s = reconnect_delay_s
        self.max_reconnect_delay_s = max_reconnect_delay_s
        self.socket_failures_before_polling = socket_failures_before_polling
        self.poll_interval_s = poll_interval_s
        # consecutive failures (sockets and polls) after which watch gives up and raises
        self.max_failures = max_failures
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, call: Call[T]) -> T:
        """Send one call; an error answer raises its ApiError, a dead server Unreachable."""
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.json, headers=self._headers()
            )
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach {self.base_url}: {exc or type(exc).__name__}") from exc
        # the session cookie would become a second credential: the token is the only one
        self._http.cookies.clear()
        if response.status_code >= 400:
            raise error_of(response)
        return call.read(response)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    # -- calls

    async def create_session(self) -> str:
        """A new anonymous owner; its token is kept for the calls that follow."""
        self.token = await self.send(calls.create_session())
        return self.token

    async def job_types(self) -> builtins.list[JobType]:
        return await self.send(calls.job_types())

    async def submit(
        self, type: str, input: dict[str, Any] | None = None, **options: Unpack[SubmitOptions]
    ) -> Submitted:
        """Create a job; it is stored when this returns. Unset options take the type's defaults."""
        return await self.send(calls.submit(type, input, options))

    async def submit_batch(self, jobs: builtins.list[dict[str, Any]]) -> BatchSubmitted:
        """Submit up to 1,000 jobs at once (each a dict as a submit's body): all or none."""
        return await self.send(calls.submit_batch(jobs))

    async def batch(self, batch_id: str) -> Batch:
        """A batch's jobs by status, its progress and each job's state."""
        return await self.send(calls.batch(batch_id))

    async def get(self, job_id: JobId) -> Job:
        return await self.send(calls.get(job_id))

    async def events(self, job_id: JobId, after: int = 0) -> builtins.list[Event]:
        """Stored events with ``seq > after``, in order (at most a page of 1000)."""
        return await self.send(calls.events(job_id, after))

    async def result(self, job_id: JobId) -> Any:
        """The result of a completed job.

        Raises JobFailed or JobCancelled (with the job and its error) when it ended
        otherwise, and NotFinished while it is pending or running.
        """
        try:
            return await self.send(calls.result(job_id))
        except Conflict as exc:
            raise ended_otherwise(await self.get(job_id), exc) from exc

    async def cancel(self, job_id: JobId) -> None:
        """Cancel a pending or running job; Conflict when it has already finished."""
        await self.send(calls.cancel(job_id))

    async def answer(self, job_id: JobId, answer: Any, step: str | None = None) -> dict[str, Any]:
        """Answer the question a waiting job asks (``step``: which, when it matters).

        Conflict when the job does not wait or the question was answered; BadRequest
        (422) when the answer does not fit its schema, ``details`` naming the field.
        """
        return await self.send(calls.answer(job_id, answer, step))

    async def pause(self, job_id: JobId) -> dict[str, Any]:
        """Pause a job: at once while pending, at its next step boundary while running."""
        return await self.send(calls.pause(job_id))

    async def resume(self, job_id: JobId) -> dict[str, Any]:
        """Queue a paused job again; it resumes from its checkpoint."""
        return await self.send(calls.resume(job_id))

    async def start(self, job_id: JobId) -> dict[str, Any]:
        """Queue a draft (``submit(..., draft=True)``)."""
        return await self.send(calls.start(job_id))

    async def update_draft(self, job_id: JobId, input: dict[str, Any]) -> Job:
        """Replace a draft's input (checked by its type); the job as it stands."""
        return await self.send(calls.update_draft(job_id, input))

    async def list(
        self, status: str | None = None, type: str | None = None, limit: int | None = None
    ) -> builtins.list[Job]:
        """The owner's jobs, newest first."""
        return await self.send(calls.list_jobs(status, type, limit))

    async def browser_token(
        self,
        job_ids: builtins.list[str],
        can: builtins.list[str] | None = None,
        expires_in_s: float = 3600,
    ) -> str:
        """A browser token for these jobs (``POST /api/tokens``); the client's token must be
        an app key. ``can``: among read, input, cancel (default read)."""
        return await self.send(calls.browser_token(job_ids, can or ["read"], expires_in_s))

    async def stats(self) -> dict[str, Any]:
        """The operator's numbers (``GET /api/admin/stats``); needs the admin token."""
        return await self.send(calls.stats())

    async def wait(self, job_id: JobId, timeout_s: float | None = None) -> Job:
        """The job once it has finished, however it ended. TimeoutError after ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            job = await self.get(job_id)
            if job.final:
                return job
            async with aclosing(self.watch(job_id, after=job.seq)) as events:
                async for _event in events:
                    pass
            return await self.get(job_id)

    # -- the watch

    async def watch(self, job_id: JobId, after: int = 0) -> AsyncGenerator[Event, None]:
        """Every event with ``seq > after``, once each and in order, until the final one.

        Close it early with ``contextlib.aclosing`` (or ``aclose()``) when you stop
        reading before the end.
        """
        job = str(job_id)
        last = after
        failures = 0
        while failures < self.socket_failures_before_polling:
            snapshot: Job | None = None
            try:
                async with ws_connect(
                    calls.ws_url(self.base_url, job, last),
                    additional_headers=self._headers(),
                    open_timeout=self.timeout_s,
                    user_agent_header="jobcast-client",
                ) as ws:
                    try:
                        async for raw in ws:
                            message = calls.read_message(raw)
                            if isinstance(message, Job):
                                snapshot = message
                            elif isinstance(message, Event):
                                for event in await self._in_order(job, last, message):
                                    failures = 0
                                    last = event.seq
                                    yield event
                                    if event.final:
                                        return
                    except GeneratorExit:  # the caller stopped reading
                        await _close_unread(ws)
                        raise
                    if ws.close_code == _WS_NORMAL_CLOSURE and _ended_by(snapshot, last):
                        return  # it had ended before ``after``: nothing more will come
                    log.info(
                        "job %s: websocket closed with %s; resuming after %d",
                        job,
                        ws.close_code,
                        last,
                    )
            except InvalidStatus as exc:
                if exc.response.status_code in (401, 403):
                    raise handshake_error(exc) from exc
                log.info("job %s: websocket refused (%s); retrying", job, exc)
            except (OSError, TimeoutError, WebSocketException) as exc:
                log.info("job %s: websocket dropped (%s); resuming after %d", job, exc, last)
            failures += 1
            await asyncio.sleep(self._backoff(failures))
        log.warning("job %s: websockets keep failing; polling for events", job)
        async with aclosing(self._poll(job, last)) as polled:
            async for event in polled:
                yield event

    async def _in_order(self, job: str, last: int, event: Event) -> builtins.list[Event]:
        """The events to hand out for one received: none for a duplicate, missed ones first."""
        if event.seq <= last:
            return []
        if event.seq == last + 1:
            return [event]
        # a gap the server should have filled: read what is missing from the stored events
        missed = [e for e in await self.events(job, after=last) if e.seq < event.seq]
        return [*missed, event]

    async def _poll(self, job: str, last: int) -> AsyncGenerator[Event, None]:
        failures = 0
        started = False
        while True:
            try:
                if not started:
                    # a job that ended at or before ``last`` has nothing more to send
                    if _ended_by(await self.get(job), last):
                        return
                    started = True
                events = await self.events(job, after=last)
            except (Unreachable, Unavailable, TooManyRequests) as exc:
                failures += 1
                if failures >= self.max_failures:
                    raise
                log.info("job %s: polling failed (%s); trying again", job, exc)
                await asyncio.sleep(self._backoff(failures))
                continue
            failures = 0
            for event in events:
                if event.seq <= last:
                    continue
                last = event.seq
                yield event
                if event.final:
                    return
            if not events:
                await asyncio.sleep(self.poll_interval_s)

    def _backoff(self, failures: int) -> float:
        return calls.backoff_s(failures, self.reconnect_delay_s, self.max_reconnect_delay_s)


def _ended_by(job: Job | None, last: int) -> bool:
    """The job had ended at or before event ``last``: a watch from there has nothing to add."""
    return job is not None and job.final and job.seq <= last


async def _close_unread(ws: ClientConnection) -> None:
    """Close a socket whose messages the caller no longer reads. The socket library stops
    reading once its queue is full, so the server's close frame would wait behind them
    until the library's close timeout (10 s): what is left is read and dropped meanwhile."""

    async def drop_the_rest() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass

    reading = asyncio.create_task(drop_the_rest())
    try:
        await ws.close()
    finally:
        reading.cancel()
