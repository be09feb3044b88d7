"""``Client``: the API for code without an event loop (scripts, shells, a Django view).

It runs ``AsyncClient``'s coroutines on a private event loop, so each call and
the watch exist once; this class only carries them across.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterator
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

from jobcast.client.async_client import AsyncClient
from jobcast.client.calls import SubmitOptions
from jobcast.client.errors import ClientError
from jobcast.client.models import Batch, BatchSubmitted, Event, Job, JobId, JobType, Submitted

T = TypeVar("T")


class Client:
    """The same API as AsyncClient for code without an event loop.

    It cannot be used from inside a running event loop: there, use AsyncClient
    (or call it from a thread). Close it (``with``, or ``close()``).
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
        self, type: str, input: dict[str, Any] | None = None, **options: Unpack[SubmitOptions]
    ) -> Submitted:
        return self._run(self._client.submit(type, input, **options))

    def submit_batch(self, jobs: builtins.list[dict[str, Any]]) -> BatchSubmitted:
        return self._run(self._client.submit_batch(jobs))

    def batch(self, batch_id: str) -> Batch:
        return self._run(self._client.batch(batch_id))

    def get(self, job_id: JobId) -> Job:
        return self._run(self._client.get(job_id))

    def events(self, job_id: JobId, after: int = 0) -> builtins.list[Event]:
        return self._run(self._client.events(job_id, after))

    def result(self, job_id: JobId) -> Any:
        return self._run(self._client.result(job_id))

    def cancel(self, job_id: JobId) -> None:
        self._run(self._client.cancel(job_id))

    def answer(self, job_id: JobId, answer: Any, step: str | None = None) -> dict[str, Any]:
        return self._run(self._client.answer(job_id, answer, step))

    def pause(self, job_id: JobId) -> dict[str, Any]:
        return self._run(self._client.pause(job_id))

    def resume(self, job_id: JobId) -> dict[str, Any]:
        return self._run(self._client.resume(job_id))

    def start(self, job_id: JobId) -> dict[str, Any]:
        return self._run(self._client.start(job_id))

    def update_draft(self, job_id: JobId, input: dict[str, Any]) -> Job:
        return self._run(self._client.update_draft(job_id, input))

    def list(
        self, status: str | None = None, type: str | None = None, limit: int | None = None
    ) -> builtins.list[Job]:
        return self._run(self._client.list(status, type, limit))

    def browser_token(
        self,
        job_ids: builtins.list[str],
        can: builtins.list[str] | None = None,
        expires_in_s: float = 3600,
    ) -> str:
        return self._run(self._client.browser_token(job_ids, can, expires_in_s))

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
