"""Progress reports of one attempt, coalesced: at most one stored per window, the latest wins.

A job may report progress as often as it likes; what is stored is at most one
``progress`` event per ``JOBCAST_PROGRESS_WINDOW_MS``. A report after a quiet window
is written at once (the job waits for it, as for any write); a report within the
window is kept, and replaced by any later one, until the window ends, when the
latest is written in the background. Every other event of the attempt (a step, a
status, a stream, metadata) writes the kept report first, so the stored events keep
the order the job reported in and the last value a job reported before any of them is
always stored. Coalescing happens before a report is written, so every event that has
a ``seq`` is stored and published as before: nothing stored is ever dropped.

A background write that fails (the attempt was cancelled, or Postgres stayed away
past ``JOBCAST_PERSIST_DEADLINE_S``) is raised to the job's code at its next report.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Report:
    """One progress report: overall percent, the step it was made in, its message."""

    progress: float
    step: str | None
    message: str | None


class ProgressGate:
    """The progress reports of one attempt, and the order of every write the attempt makes."""

    def __init__(self, window_s: float, write: Callable[[Report], Awaitable[None]]) -> None:
        self._window_s = window_s
        self._write = write
        self._lock = asyncio.Lock()  # one write of the attempt at a time, in order
        self._kept: Report | None = None
        self._last_write = -float("inf")  # monotonic time of the last progress write
        self._timer: asyncio.TimerHandle | None = None
        self._writers: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None

    async def report(self, report: Report) -> None:
        """Store this report now, or keep it for the end of the window (replacing any kept)."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        self._kept = report
        if self._timer is None:
            wait_s = self._last_write + self._window_s - time.monotonic()
            if wait_s <= 0 and not self._lock.locked():
                async with self.held():  # a quiet window: written at once, the job waits
                    return
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(wait_s, 0.0), self._window_ended)
        # else a write is due at the window's end, and takes this report. A report is a
        # point where the job lets others run, whether it was written or kept.
        await asyncio.sleep(0)

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Around any other write of the attempt: the kept report is written first, and no
        progress write comes between them."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        async with self._lock:
            kept, self._kept = self._kept, None
            if kept is not None:
                self._last_write = time.monotonic()
                await self._write(kept)
            yield

    async def flush(self) -> None:
        """Write the kept report, if any, now."""
        async with self.held():
            pass

    def _window_ended(self) -> None:
        self._timer = None
        task = asyncio.create_task(self._write_kept(), name="progress")
        self._writers.add(task)
        task.add_done_callback(self._writers.discard)

    async def _write_kept(self) -> None:
        try:
            await self.flush()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # kept for the job's code, which is awaiting elsewhere
            self._failure = exc

    def close(self) -> None:
        """The attempt has ended: no kept report is written any more."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._kept = None
