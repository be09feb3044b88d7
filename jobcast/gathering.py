"""Calls gathered while a statement is in flight, and sent together in the next.

A worker's claims (``workers/claims.py``) and a web process's submits
(``server/submits.py``) go alike: a call made while none of theirs is in flight goes at
once, alone, in its caller's task, so a quiet process adds no wait; calls made while one
is in flight wait for it and then go together, one statement for all of them, sent by a
task of the gatherer's. A call that the statement of many leaves to a statement of its
own is answered ``ALONE``, and its caller makes it alone just after. The worker's writer
of reports and ends (``workers/report_writes.py``) gathers the same way, but sends every
statement from its own task and never waits for company (an event waits for no one); it
shares ``once_a_job`` and ``cancel_all``.

Under a stream of calls (some waited for the last statement), a call that finds none in
flight waits ``wait_s`` for company before it goes: a statement of one job costs Postgres
nearly as much as one of four (docs/performance.md, "What a statement costs Postgres, by
how many jobs it carries"). When none comes in that time, the stream has ended, and the
next call goes at once again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar
from uuid import UUID

T = TypeVar("T")
R = TypeVar("R")


class Alone:
    """The answer to a call left to its own statement, made by its caller."""


ALONE = Alone()


def once_a_job(
    waiting: Sequence[tuple[T, asyncio.Future[Any]]], job_of: Callable[[T], UUID]
) -> tuple[list[tuple[T, asyncio.Future[Any]]], list[tuple[T, asyncio.Future[Any]]]]:
    """What to send now, at most one of each job (in the order they came), and the rest,
    for the statement after: a job's two writes keep their order, and a job delivered
    twice at once is claimed once (its second claim finds it running)."""
    now: list[tuple[T, asyncio.Future[Any]]] = []
    later: list[tuple[T, asyncio.Future[Any]]] = []
    seen: set[UUID] = set()
    for item in waiting:
        job_id = job_of(item[0])
        (later if job_id in seen else now).append(item)
        seen.add(job_id)
    return now, later


def cancel_all(*waiting: Sequence[tuple[Any, asyncio.Future[Any]]]) -> None:
    """A gatherer stopped midway (the process's loop closing): none of those it kept
    waits forever."""
    for items in waiting:
        for _, future in items:
            future.cancel()


def settle(future: asyncio.Future[R], answer: R) -> None:
    if not future.done():
        future.set_result(answer)


class Gatherer(Generic[T, R]):
    """Makes calls alone while none is in flight, and those that come meanwhile together
    (``_together``, which settles each one's future with its answer or ``ALONE``)."""

    def __init__(
        self,
        name: str,
        outlives: Callable[[asyncio.Task[Any]], None] = lambda _: None,
        wait_s: float = 0.0,
    ) -> None:
        self._name = name
        self._outlives = outlives  # the process keeps what the task needs open for it
        self._wait_s = wait_s
        self._waiting: list[tuple[T, asyncio.Future[R | Alone]]] = []
        self._busy = False  # a statement is in flight, or a call waits for company
        self._stream = False  # calls waited for the last statement: wait for company
        self._sender: asyncio.Task[None] | None = None

    @property
    def wait_s(self) -> float:
        """How long a call waits for company under a stream of calls (0: never)."""
        return self._wait_s

    async def _call(self, item: T, alone: Callable[[T], Awaitable[R]]) -> R:
        if not self._busy and self._stream and self._wait_s > 0:
            await self._wait_for_company()
            self._stream = bool(self._waiting)  # none came: the stream has ended
        if self._busy or self._waiting:
            future: asyncio.Future[R | Alone] = asyncio.get_running_loop().create_future()
            if self._busy:
                self._waiting.append((item, future))
            else:  # it waited for company, and some came: it goes first, with them
                self._waiting.insert(0, (item, future))
                self._next()
            answer = await future
            if not isinstance(answer, Alone):
                return answer
            return await alone(item)
        self._busy = True
        try:
            return await alone(item)
        finally:
            self._busy = False
            self._next()

    async def _wait_for_company(self) -> None:
        """Hold the next statement back ``wait_s``: calls made meanwhile wait to go with
        this one (cancelled, it lets them go without it)."""
        self._busy = True
        try:
            await asyncio.sleep(self._wait_s)
        except BaseException:
            self._busy = False
            self._next()
            raise
        self._busy = False

    def _next(self) -> None:
        """The calls that waited go in the next statement."""
        if self._waiting and not self._busy:
            self._stream = True
            self._busy = True
            self._sender = asyncio.create_task(self._send_all(), name=self._name)
            self._outlives(self._sender)

    async def _send_all(self) -> None:
        batch: list[tuple[T, asyncio.Future[R | Alone]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._split(self._waiting)
                live = [(item, future) for item, future in batch if not future.done()]
                if len(live) == 1:
                    settle(live[0][1], ALONE)
                elif live:
                    await self._together(live)
        except BaseException:
            cancel_all(batch, self._waiting)
            self._waiting = []
            raise
        finally:
            self._busy = False
            self._sender = None

    def _split(
        self, waiting: list[tuple[T, asyncio.Future[R | Alone]]]
    ) -> tuple[
        list[tuple[T, asyncio.Future[R | Alone]]], list[tuple[T, asyncio.Future[R | Alone]]]
    ]:
        """What goes in the next statement, and what waits for the one after."""
        return waiting, []

    async def _together(self, live: list[tuple[T, asyncio.Future[R | Alone]]]) -> None:
        """One statement for the calls that waited, each answered."""
        raise NotImplementedError
