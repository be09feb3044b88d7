"""Streams of text a running job writes (``job.stream("output").write(...)``), batched.

A write is kept in the stream's buffer, not stored at once: the buffer is flushed as
one ``stream`` event (name, offset of its first character, text) when it holds
``stream_flush_bytes``, or ``stream_flush_ms`` after the first write it holds, so a
job writing a thousand words a second costs Postgres some twenty commits a second,
not a thousand. A flush is stored before it is published, like every event: what a
watcher has seen is in ``job_events`` and is never lost. What a worker killed at once
(SIGKILL, a lost machine) loses is the unflushed window, at most ``stream_flush_ms``
of writes; a job that ends, fails or finishes a step flushes first.

Offsets count characters (Unicode code points) from the stream's start, over all the
job's attempts: a watcher holding ``n`` characters of a stream keeps, of an event, only
the text past ``n``, so a snapshot and a replay that overlap never repeat.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any

from jobcast.errors import LimitExceeded
from jobcast.model import dumps

if TYPE_CHECKING:
    from workers.context import Reporter

log = logging.getLogger(__name__)

_NAME_MAX = 100


class Stream:
    """One named stream of one attempt: its buffer and its flushes."""

    def __init__(self, reporter: Reporter, name: str) -> None:
        self._reporter = reporter
        self.name = name
        settings = reporter.settings
        self._chunk_max = settings.stream_chunk_max_bytes
        self._flush_bytes = settings.stream_flush_bytes
        self._flush_s = settings.stream_flush_ms / 1000
        self._parts: list[str] = []
        self._bytes = 0
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        # a flush in the background that failed: raised to the job's code at its next write
        self._failure: BaseException | None = None

    async def write(self, chunk: str) -> None:
        """Append text to the stream. It reaches watchers within ``stream_flush_ms``."""
        if not isinstance(chunk, str):
            raise TypeError(f"a stream takes text, not {type(chunk).__name__}: use write_json")
        size = len(chunk.encode())
        if size > self._chunk_max:
            raise LimitExceeded(
                f"a write of {size} bytes to stream {self.name!r} is over the limit of "
                f"{self._chunk_max} (JOBCAST_STREAM_CHUNK_MAX_BYTES)"
            )
        self._raise_failure()
        if not chunk:
            return
        self._parts.append(chunk)
        self._bytes += size
        if self._bytes >= self._flush_bytes:
            await self.flush()  # waits for a flush under way: a fast writer is held back
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later(), name=f"stream-{self.name}")

    async def write_json(self, value: Any) -> None:
        """Append a JSON value as one line of text (JSON Lines)."""
        await self.write(dumps(value).decode() + "\n")

    async def flush(self) -> None:
        """Store and publish what the buffer holds, as one event; at once."""
        async with self._lock:
            timer, self._timer = self._timer, None
            if timer is not None and timer is not asyncio.current_task():
                timer.cancel()
            text = "".join(self._parts)
            self._parts.clear()
            self._bytes = 0
            if text:
                await self._store(text)

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self._flush_s)
            await self.flush()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # kept for the job's code, which is awaiting elsewhere
            self._failure = exc

    async def _store(self, text: str) -> None:
        reporter = self._reporter
        store, job_id, attempt = reporter.store, reporter.job_id, reporter.attempt
        max_chars = reporter.settings.stream_max_chars
        if await reporter.write_if(
            lambda: store.append_stream(job_id, attempt, self.name, text, max_chars=max_chars)
        ):
            return
        length, running = await store.stream_length(job_id, attempt, self.name)
        if running:
            raise LimitExceeded(
                f"stream {self.name!r} would pass its limit of {max_chars} characters "
                f"(JOBCAST_STREAM_MAX_CHARS): it holds {length}, the write adds {len(text)}"
            )
        await reporter.emit(None)  # fenced off: AttemptLost

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Streams:
    """The streams of one attempt. Used around the job's code: on its way out, every
    buffer is flushed (when the code ended, or raised an error), or dropped (when the
    attempt was cancelled: nobody may write for it any more)."""

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter
        self._streams: dict[str, Stream] = {}

    def get(self, name: str) -> Stream:
        if not name or len(name) > _NAME_MAX or not name.isprintable():
            raise ValueError(f"a stream's name is 1 to {_NAME_MAX} printable characters: {name!r}")
        stream = self._streams.get(name)
        if stream is None:
            stream = self._streams[name] = Stream(self._reporter, name)
        return stream

    async def flush(self) -> None:
        for stream in list(self._streams.values()):
            await stream.flush()
        for stream in self._streams.values():
            stream._raise_failure()

    async def __aenter__(self) -> Streams:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.flush()  # an error here fails the attempt, like one in the code
            return
        if isinstance(exc, Exception):
            try:
                await self.flush()  # keep what the job wrote before it failed
            except Exception as flush_exc:
                log.warning(
                    "job %s: stream text after its last flush is lost: %s",
                    self._reporter.job_id,
                    flush_exc,
                )
        for stream in self._streams.values():
            stream.cancel()
