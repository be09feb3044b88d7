"""Progress reports of one attempt, coalesced: at most one stored per window, the latest wins.

A job may report progress as often as it likes; what is stored is at most one
``progress`` event per ``JOBCAST_PROGRESS_WINDOW_MS``, the window counted from the end
of the last progress write (so a slow Postgres stretches it rather than letting every
report through). A report after a quiet window is written at once (the job waits for
it, as for any write); a report within the window is kept, and replaced by any later
one, until the window ends, when the latest is written in the background. Every other
event of the attempt (a step, a status, a stream, metadata) writes the kept report
first, so the stored events keep the order the job reported in and the last value a
job reported before any of them is always stored. Coalescing happens before a report
is written, so every event that has a ``seq`` is stored and published as before:
nothing stored is ever dropped.

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
        self._last_write = -float("inf")  # monotonic time the last progress write ended
        self._writer: asyncio.Task[None] | None = None  # writes the kept report, later
        self._failure: BaseException | None = None

    async def report(self, report: Report) -> None:
        """Store this report now, or keep it for the end of the window (replacing any kept)."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        self._kept = report
        if self._writer is None:
            quiet = self._last_write + self._window_s <= time.monotonic()
            if quiet and not self._lock.locked():
                async with self.held():  # written at once: the job waits for it
                    return
            self._writer = asyncio.create_task(self._write_later(), name="progress")
        # else the writer takes this report at the window's end. A report is a point where
        # the job lets others run, whether it was written or kept.
        await asyncio.sleep(0)

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Around any other write of the attempt: the kept report is written first, and no
        progress write comes between them."""
        async with self._lock:
            await self._write_kept()
            yield

    async def flush(self) -> None:
        """Write the kept report, if any, now."""
        async with self.held():
            pass

    async def _write_kept(self) -> None:
        kept, self._kept = self._kept, None
        if kept is None:
            return
        try:
            await self._write(kept)
        finally:  # the window starts once it is stored: a slow write is no window
            self._last_write = time.monotonic()

    async def _write_later(self) -> None:
        """Wait for the window's end (after any write under way), then write what is kept."""
        try:
            while True:
                async with self._lock:
                    wait_s = self._last_write + self._window_s - time.monotonic()
                    if wait_s <= 0 or self._kept is None:
                        self._writer = None  # a report made from now on needs another
                        await self._write_kept()
                        return
                await asyncio.sleep(wait_s)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # kept for the job's code, which is awaiting elsewhere
            self._failure = exc

    def close(self) -> None:
        """The attempt has ended: no kept report is written any more."""
        self._kept = None
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
