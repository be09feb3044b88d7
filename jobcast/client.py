"""A Python client for the jobcast API: typed answers, and a watch that never misses an event.

One implementation serves both flavours: ``AsyncClient`` speaks HTTP (httpx) and
websockets; ``Client`` drives the same coroutines on a private event loop, so the
two cannot drift apart. The models are those of ``jobcast.schemas`` (the bodies the
server builds its answers from), made lenient: fields a newer server adds are kept,
not refused.

``watch`` follows ``WS /ws/jobs/{id}?after=N`` and yields each event once, in
``seq`` order. A dropped socket (any close but 1000, or a failed connect) is
reopened with backoff from the last ``seq`` seen; when websockets keep failing it
polls ``GET /api/jobs/{id}/events?after=N`` instead. It ends after the final
status event.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterator
from contextlib import aclosing
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit
from uuid import UUID

import httpx
import orjson
from pydantic import ConfigDict
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus, WebSocketException

from jobcast import schemas
from jobcast.errors import JobcastError

log = logging.getLogger(__name__)

T = TypeVar("T")
JobId = str | UUID

_LENIENT = ConfigDict(frozen=True, extra="allow")
_FINAL = frozenset({"completed", "failed", "cancelled"})
_WS_NORMAL_CLOSURE = 1000

# a job's step: name, title, weight, status, started_at, finished_at, duration_ms
Step = schemas.StepOut


# ---- models ---------------------------------------------------------------------------------


class JobError(schemas.JobErrorOut):
    """Why a job failed: a readable ``message``, its ``type`` and ``category``."""

    model_config = _LENIENT
    type: str = "Error"
    category: str = "unknown"


class Job(schemas.JobOut):
    """A job as ``GET /api/jobs/{id}`` shows it."""

    model_config = _LENIENT
    error: JobError | None

    @property
    def final(self) -> bool:
        return self.status in _FINAL


class Event(schemas.EventOut):
    """One change of a job. Which optional fields are set depends on ``kind``."""

    model_config = _LENIENT
    status: str | None = None
    attempt: int | None = None
    message: str | None = None
    result: Any = None
    error: JobError | None = None
    progress: float | None = None
    step: str | None = None
    state: str | None = None
    duration_ms: int | None = None
    retry_in_s: float | None = None

    @property
    def final(self) -> bool:
        """The job's last event: a status event with a final status."""
        return self.kind == "status" and self.status in _FINAL


class Submitted(schemas.JobAccepted):
    """The 202 answer to a submit: where to follow the job."""

    model_config = _LENIENT


class JobType(schemas.JobTypeOut):
    model_config = _LENIENT


# ---- errors ---------------------------------------------------------------------------------


class ClientError(JobcastError):
    """Base of the errors this client raises."""


class Unreachable(ClientError):
    """The server does not answer at the base URL: check the URL, or start the server."""


class NotFinished(ClientError):
    """The job has no result yet: wait for it (``wait``) and ask again."""

    def __init__(self, job_id: str, status: str, progress: float) -> None:
        super().__init__(f"job {job_id} is not finished: {status}, {progress:g}% done")
        self.job_id = job_id
        self.status = status
        self.progress = progress


class ApiError(ClientError):
    """An answer in the API's error shape, ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {self.code!r}, {self.message!r})"


class BadRequest(ApiError):
    """400 or 422: the request or the job's input is wrong; ``details`` names the fields."""


class Unauthorized(ApiError):
    """401 or 403: no valid token for this call; create a session or use the right token."""


class NotFound(ApiError):
    """404: no such job for this owner (another owner's job looks the same)."""


class Conflict(ApiError):
    """409: the job is not in a state that allows this (it has already finished)."""


class TooManyRequests(ApiError):
    """429: a limit was reached; ``retry_after_s`` says when to try again."""

    retry_after_s: float | None = None


class Unavailable(ApiError):
    """5xx: the server or its storage is down; nothing was stored, try again shortly."""


class JobFailed(Conflict):
    """The job ended ``failed``: ``job.error`` says why."""

    def __init__(self, job: Job, status: int = 409, code: str = "conflict") -> None:
        reason = job.error.message if job.error else "no reason given"
        super().__init__(status, code, f"job {job.id} failed: {reason}")
        self.job = job
        self.error = job.error


class JobCancelled(Conflict):
    """The job was cancelled before it finished: it has no result."""

    def __init__(self, job: Job, status: int = 409, code: str = "conflict") -> None:
        super().__init__(status, code, f"job {job.id} was cancelled")
        self.job = job
        self.error = job.error


_ERROR_CLASSES: dict[int, type[ApiError]] = {
    400: BadRequest,
    422: BadRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    429: TooManyRequests,
}
_STATUS_OF_CODE = {
    "bad_request": 400,
    "invalid_input": 422,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
}


def api_error(status: int, body: Any, fallback: str = "") -> ApiError:
    """The exception for an error answer, from its body when it has the one error shape."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or f"http_{status}")
        message = str(error.get("message") or fallback)
        details = error.get("details")
    else:
        code, message, details = f"http_{status}", fallback or f"HTTP {status}", None
    cls = _ERROR_CLASSES.get(status) or (Unavailable if status >= 500 else ApiError)
    return cls(status, code, message, details)


def _from_response(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    fallback = f"HTTP {response.status_code} {response.reason_phrase}: {response.text[:200]}"
    error = api_error(response.status_code, body, fallback.strip().rstrip(":"))
    if isinstance(error, TooManyRequests):
        retry_after = response.headers.get("retry-after", "")
        error.retry_after_s = float(retry_after) if retry_after.isdigit() else None
    return error


def backoff_s(failures: int, base_s: float, cap_s: float) -> float:
    """Exponential backoff with jitter, so many clients dropped together do not return together."""
    ceiling: float = min(cap_s, base_s * 2 ** max(0, failures - 1))
    return ceiling * random.uniform(0.5, 1.0)


# ---- the client -----------------------------------------------------------------------------


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

    # -- plumbing

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def _request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> httpx.Response:
        """Send one call; an error answer raises its ApiError, a dead server Unreachable."""
        try:
            response = await self._http.request(
                method, path, params=params, json=json, headers=self._headers()
            )
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach {self.base_url}: {exc or type(exc).__name__}") from exc
        # the session cookie would become a second credential: the token is the only one
        self._http.cookies.clear()
        if response.status_code >= 400:
            raise _from_response(response)
        return response

    def _ws_url(self, job_id: str, after: int) -> str:
        parts = urlsplit(self.base_url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        path = f"{parts.path.rstrip('/')}/ws/jobs/{job_id}"
        return urlunsplit((scheme, parts.netloc, path, f"after={after}", ""))

    # -- calls

    async def create_session(self) -> str:
        """A new anonymous owner; its token is kept for the calls that follow."""
        response = await self._request("POST", "/api/sessions")
        token: str = schemas.SessionCreated.model_validate(response.json()).token
        self.token = token
        return token

    async def job_types(self) -> list[JobType]:
        response = await self._request("GET", "/api/job-types")
        return [JobType.model_validate(t) for t in response.json()["job_types"]]

    async def submit(
        self,
        type: str,
        input: dict[str, Any] | None = None,
        *,
        priority: int | None = None,
        delay_seconds: float | None = None,
        max_attempts: int | None = None,
        timeout_seconds: float | None = None,
        idempotency_key: str | None = None,
    ) -> Submitted:
        """Create a job; it is stored when this returns. Unset options take the type's defaults."""
        body: dict[str, Any] = {"type": type, "input": input or {}}
        options = {
            "priority": priority,
            "delay_seconds": delay_seconds,
            "max_attempts": max_attempts,
            "timeout_seconds": timeout_seconds,
            "idempotency_key": idempotency_key,
        }
        body.update({k: v for k, v in options.items() if v is not None})
        response = await self._request("POST", "/api/jobs", json=body)
        return Submitted.model_validate(response.json())

    async def get(self, job_id: JobId) -> Job:
        response = await self._request("GET", f"/api/jobs/{_quoted(job_id)}")
        return Job.model_validate(response.json())

    async def events(self, job_id: JobId, after: int = 0) -> builtins.list[Event]:
        """Stored events with ``seq > after``, in order (at most a page of 1000)."""
        response = await self._request(
            "GET", f"/api/jobs/{_quoted(job_id)}/events", params={"after": after}
        )
        return [Event.model_validate(e) for e in response.json()["events"]]

    async def result(self, job_id: JobId) -> Any:
        """The result of a completed job.

        Raises JobFailed or JobCancelled (with the job and its error) when it ended
        otherwise, and NotFinished while it is pending or running.
        """
        try:
            response = await self._request("GET", f"/api/jobs/{_quoted(job_id)}/result")
        except Conflict as exc:
            job = await self.get(job_id)
            if job.status == "failed":
                raise JobFailed(job, exc.status, exc.code) from exc
            if job.status == "cancelled":
                raise JobCancelled(job, exc.status, exc.code) from exc
            raise
        body = response.json()
        if response.status_code == 202:
            raise NotFinished(str(job_id), body.get("status", "?"), body.get("progress", 0.0))
        return body.get("result")

    async def cancel(self, job_id: JobId) -> None:
        """Cancel a pending or running job; Conflict when it has already finished."""
        await self._request("POST", f"/api/jobs/{_quoted(job_id)}/cancel")

    async def list(
        self, status: str | None = None, type: str | None = None, limit: int | None = None
    ) -> builtins.list[Job]:
        """The owner's jobs, newest first."""
        params = {
            k: v
            for k, v in {"status": status, "type": type, "limit": limit}.items()
            if v is not None
        }
        response = await self._request("GET", "/api/jobs", params=params)
        return [Job.model_validate(j) for j in response.json()["jobs"]]

    async def stats(self) -> dict[str, Any]:
        """The operator's numbers (``GET /api/admin/stats``); needs the admin token."""
        response = await self._request("GET", "/api/admin/stats")
        body: dict[str, Any] = response.json()
        return body

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

    async def watch(self, job_id: JobId, after: int = 0) -> AsyncGenerator[Event, None]:
        """Every event with ``seq > after``, once each and in order, until the final one.

        Close it early with ``contextlib.aclosing`` (or ``aclose()``) when you stop
        reading before the end.
        """
        job = _quoted(job_id)
        last = after
        failures = 0
        while failures < self.socket_failures_before_polling:
            snapshot: Job | None = None
            try:
                async with ws_connect(
                    self._ws_url(job, last),
                    additional_headers=self._headers(),
                    open_timeout=self.timeout_s,
                    user_agent_header="jobcast-client",
                ) as ws:
                    async for raw in ws:
                        message = orjson.loads(raw)
                        kind = message.get("type")
                        if kind == "snapshot":
                            snapshot = Job.model_validate(message["job"])
                            continue
                        if kind is None and isinstance(message.get("error"), dict):
                            # the server's refusal (no such job, bad cursor), before it closes
                            raise api_error(
                                _STATUS_OF_CODE.get(str(message["error"].get("code")), 400), message
                            )
                        if kind != "event":
                            continue
                        for event in await self._in_order(job, last, Event.model_validate(message)):
                            failures = 0
                            last = event.seq
                            yield event
                            if event.final:
                                return
                    if (
                        ws.close_code == _WS_NORMAL_CLOSURE
                        and snapshot is not None
                        and snapshot.final
                        and snapshot.seq <= last
                    ):
                        return  # it had ended before ``after``: nothing more will come
                    log.info(
                        "job %s: websocket closed with %s; resuming after %d",
                        job,
                        ws.close_code,
                        last,
                    )
            except InvalidStatus as exc:
                if exc.response.status_code in (401, 403):
                    raise _handshake_error(exc) from exc
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
                    current = await self.get(job)
                    if current.final and current.seq <= last:
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
        return backoff_s(failures, self.reconnect_delay_s, self.max_reconnect_delay_s)


def _quoted(job_id: JobId) -> str:
    return quote(str(job_id), safe="")


def _handshake_error(exc: InvalidStatus) -> ApiError:
    status = exc.response.status_code
    try:
        body = orjson.loads(exc.response.body or b"")
    except orjson.JSONDecodeError:
        body = None
    return api_error(status, body, f"the websocket was refused with HTTP {status}")


class Client:
    """The same API as AsyncClient for code without an event loop (scripts, shells).

    It runs AsyncClient on a private event loop, so it cannot be used from inside a
    running one: there, use AsyncClient. Close it (``with``, or ``close()``).
    """

    def __init__(self, base_url: str, token: str | None = None, **options: Any) -> None:
        # a loop of its own that is never made the thread's current loop
        self._runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
        self._closed = False
        self._client = AsyncClient(base_url, token, **options)

    @property
    def token(self) -> str | None:
        return self._client.token

    @token.setter
    def token(self, value: str | None) -> None:
        self._client.token = value

    @property
    def base_url(self) -> str:
        return self._client.base_url

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._run(self._client.aclose())
            self._closed = True
            self._runner.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        problem = "this client is closed" if self._closed else _in_loop()
        if problem:
            coro.close()
            raise ClientError(problem)
        return self._runner.run(coro)

    def create_session(self) -> str:
        return self._run(self._client.create_session())

    def job_types(self) -> builtins.list[JobType]:
        return self._run(self._client.job_types())

    def submit(
        self,
        type: str,
        input: dict[str, Any] | None = None,
        *,
        priority: int | None = None,
        delay_seconds: float | None = None,
        max_attempts: int | None = None,
        timeout_seconds: float | None = None,
        idempotency_key: str | None = None,
    ) -> Submitted:
        return self._run(
            self._client.submit(
                type,
                input,
                priority=priority,
                delay_seconds=delay_seconds,
                max_attempts=max_attempts,
                timeout_seconds=timeout_seconds,
                idempotency_key=idempotency_key,
            )
        )

    def get(self, job_id: JobId) -> Job:
        return self._run(self._client.get(job_id))

    def events(self, job_id: JobId, after: int = 0) -> builtins.list[Event]:
        return self._run(self._client.events(job_id, after))

    def result(self, job_id: JobId) -> Any:
        return self._run(self._client.result(job_id))

    def cancel(self, job_id: JobId) -> None:
        self._run(self._client.cancel(job_id))

    def list(
        self, status: str | None = None, type: str | None = None, limit: int | None = None
    ) -> builtins.list[Job]:
        return self._run(self._client.list(status, type, limit))

    def stats(self) -> dict[str, Any]:
        return self._run(self._client.stats())

    def wait(self, job_id: JobId, timeout_s: float | None = None) -> Job:
        return self._run(self._client.wait(job_id, timeout_s))

    def watch(self, job_id: JobId, after: int = 0) -> Iterator[Event]:
        """Like AsyncClient.watch, as a plain iterator; the socket stays open between items."""
        events = self._client.watch(job_id, after)
        try:
            while True:
                try:
                    event = self._run(_next(events))
                except StopAsyncIteration:
                    return
                yield event
        finally:
            if not self._closed:
                self._run(_aclose(events))


def _in_loop() -> str | None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return None
    return "the sync Client cannot run inside a running event loop: use AsyncClient there"


async def _next(events: AsyncIterator[Event]) -> Event:
    return await anext(events)


async def _aclose(events: AsyncGenerator[Event, None]) -> None:
    await events.aclose()
