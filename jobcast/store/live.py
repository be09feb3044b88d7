"""Live data of a running job: steps added at run time, metadata, and streams of text.

Each write is one statement fenced by the attempt, with its event, like every other
change a worker makes (``attempts``). A stream's text is stored once, in its ``stream``
events; ``job_streams`` keeps each stream's length, the offset of its next flush.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from jobcast.model import Event, StepState
from jobcast.sql import QUERIES
from jobcast.store import rows
from jobcast.store.base import StoreBase


@dataclass(frozen=True, slots=True)
class RunStepChange:
    """What changes of a step added at run time; None leaves a field as it is."""

    state: StepState | None = None
    counters: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    duration_ms: int | None = None


class LiveData(StoreBase):
    async def _change(self, query: str, *args: Any) -> Event | None:
        row = await self._run(lambda: self.pool.fetchrow(QUERIES[query], *args))
        return rows.event_of_change(row) if row is not None else None

    async def add_run_step(
        self,
        job_id: UUID,
        attempt: int,
        *,
        name: str,
        title: str,
        parent: str | None,
        share: float,
        weight: float,
        counters: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
        payload: dict[str, Any],
    ) -> Event | None:
        """Add a step (or start afresh one of that name an earlier attempt added)."""
        return await self._change(
            "add_run_step",
            job_id,
            attempt,
            name,
            title,
            parent,
            share,
            weight,
            counters,
            metadata,
            payload,
        )

    async def update_run_step(
        self,
        job_id: UUID,
        attempt: int,
        name: str,
        change: RunStepChange,
        *,
        progress: float,
        payload: dict[str, Any],
    ) -> Event | None:
        return await self._change(
            "update_run_step",
            job_id,
            attempt,
            name,
            str(change.state) if change.state is not None else None,
            progress,
            change.counters,
            change.metadata,
            change.error,
            change.duration_ms,
            payload,
        )

    async def set_metadata(
        self,
        job_id: UUID,
        attempt: int,
        keys: dict[str, Any],
        *,
        parent: bool,
        cap_bytes: int,
    ) -> Event | None:
        """Merge keys into the job's metadata (or, ``parent``, its parent's); None when the
        cap or the fence refused it (``metadata_size`` tells which)."""
        payload = {"metadata": keys}
        return await self._change("set_metadata", job_id, attempt, parent, keys, cap_bytes, payload)

    async def metadata_size(self, job_id: UUID, keys: dict[str, Any], *, parent: bool) -> int:
        """The size in bytes the job's (or its parent's) metadata would have with ``keys``
        merged in; 0 when there is no such job."""
        size = await self._run(
            lambda: self.pool.fetchval(QUERIES["metadata_size"], job_id, parent, keys)
        )
        return int(size or 0)

    async def append_stream(
        self, job_id: UUID, attempt: int, name: str, text: str, *, max_chars: int
    ) -> Event | None:
        """A flush of a stream's buffer, as one ``stream`` event; None when the attempt is
        fenced off or the stream would pass ``max_chars`` (``stream_length`` tells which)."""
        return await self._change("append_stream", job_id, attempt, name, text, max_chars)

    async def stream_length(self, job_id: UUID, attempt: int, name: str) -> tuple[int, bool]:
        """The stream's length in characters, and whether the attempt still runs."""
        row = await self._run(
            lambda: self.pool.fetchrow(QUERIES["stream_length"], job_id, attempt, name)
        )
        if row is None:  # the statement answers one row; never here
            return 0, False
        return int(row["length"] or 0), bool(row["running"])
