"""Background tasks that cannot die silently: each runs forever, restarted when it fails.

A process's loops (the hub's pub/sub reader and pinger, the Postgres listener, the
worker's sweep) handle the failures they expect (a connection lost) themselves. Any
other exception would end the task where nobody looks: asyncio only mentions it when
the task is collected, and the process would go on reporting healthy without it. A
``Supervised`` task logs such an exception with its traceback and starts the coroutine
again after a backoff (0.1 s, doubling to 5 s; back to 0.1 s once a run lasted a
minute). Its ``state`` says where it is: ``running``, ``restarting`` (between a
failure and the next start) or ``stopped``; the web process's ``/readyz`` shows every
task's state and answers 503 while one is not running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0
# a run at least this long was not a crash loop: the next failure starts from the first backoff
_STEADY_S = 60.0
# how long a cancelled task may take to wind down before it is taken for one that
# swallowed its cancel (the longest clean-up, a worker's webhook sends, is given 5 s)
STOP_GRACE_S = 10.0


class TaskState(StrEnum):
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPED = "stopped"


class Supervised:
    """A named coroutine run forever: a failure is logged and the coroutine started again."""

    def __init__(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        *,
        first_backoff_s: float = FIRST_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        self.name = name
        self._run = run
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self._task: asyncio.Task[None] | None = None
        self.state = TaskState.STOPPED
        self.restarts = 0
        self.last_error: str | None = None

    def start(self) -> None:
        if self._task is None:
            self.state = TaskState.RUNNING
            self._task = asyncio.create_task(self._supervise(), name=self.name)
            self._task.add_done_callback(self._ended)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await stop_task(task)
        self.state = TaskState.STOPPED

    async def run_forever(self) -> None:
        """Supervise in the caller's task rather than one of its own (``start``)."""
        try:
            await self._supervise()
        finally:
            self.state = TaskState.STOPPED

    async def _supervise(self) -> None:
        backoff_s = self._first_backoff_s
        while True:
            raise_swallowed_cancel()
            self.state = TaskState.RUNNING
            started = time.monotonic()
            try:
                await self._run()
                raise RuntimeError("it returned, though it should run until cancelled")
            except Exception as exc:
                if time.monotonic() - started >= _STEADY_S:
                    backoff_s = self._first_backoff_s
                self.state = TaskState.RESTARTING
                self.restarts += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception(
                    "background task %s failed; restarting in %.1f s", self.name, backoff_s
                )
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, self._max_backoff_s)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The supervisor itself ends only when cancelled; say so if it ever does otherwise."""
        self.state = TaskState.STOPPED
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s stopped for good", self.name, exc_info=task.exception())


def supervised(name: str, run: Callable[[], Awaitable[None]]) -> Coroutine[Any, Any, None]:
    """``run`` supervised, as a coroutine for a task the caller creates and holds."""
    return Supervised(name, run).run_forever()


async def stop_task(task: asyncio.Task[Any], *, grace_s: float = STOP_GRACE_S) -> None:
    """Cancel ``task`` (unless it was already) and wait until it has ended; its own cancel
    is not an error. A task cancelled once may be winding down (its ``finally`` closing
    connections): a second cancel would cut that short, so none is sent, unless the task
    still runs ``grace_s`` after the first: then the cancel was swallowed on its way (see
    ``raise_swallowed_cancel``), and it is sent again, with a warning.

    A cancel of the caller while it waits is not lost: ``await task`` inside
    ``contextlib.suppress(CancelledError)`` cannot tell the caller's cancel from the
    task's and swallows both, so a loop stopped that way at the wrong moment runs on and
    whoever stops *it* waits forever. Here the task is still waited for to its end, then
    the caller's cancel raised. An exception the task ended with is raised too.
    """
    if not task.cancelling():
        task.cancel()
    caller_cancelled = False
    while not task.done():
        try:
            # raises only the caller's own cancel
            done, _ = await asyncio.wait([task], timeout=grace_s)
        except asyncio.CancelledError:
            caller_cancelled = True
            continue
        if not done:
            log.warning(
                "task %s still runs %.1f s after it was cancelled; cancelling it again",
                task.get_name(),
                grace_s,
            )
            task.cancel()
    if caller_cancelled:
        raise asyncio.CancelledError
    if not task.cancelled():
        task.result()


def raise_swallowed_cancel() -> None:
    """Raise ``CancelledError`` in a task that was cancelled and yet runs on.

    On Python 3.11, ``asyncio.wait_for`` returns the awaited result instead of raising
    when a cancel comes as the result does, and redis-py writes every command of a
    client with a socket timeout (all of jobcast's) inside ``wait_for``: a loop cancelled
    during a Redis call may never see its cancel, and runs until its process is killed.
    The request stays counted on the task (``Task.cancelling()``; ``asyncio.timeout``
    withdraws the cancels it makes itself), so each turn of a loop that runs until
    cancelled calls this first.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def states(tasks: list[Supervised]) -> dict[str, str]:
    """Each task's state by name, for a health check."""
    return {task.name: task.state.value for task in tasks}
